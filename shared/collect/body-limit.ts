import { CollectorError } from '../http-errors';

export interface ReadBodyOptions {
  /** Largest body accepted, in bytes (MDC_MAX_BODY_BYTES). */
  maxBytes: number;
  /** The request's Content-Length header, checked before anything is read. */
  contentLength?: string | null;
}

export function bodyTooLarge(maxBytes: number): CollectorError {
  return new CollectorError(413, 'BodyTooLarge', `the body is larger than ${maxBytes} bytes (MDC_MAX_BODY_BYTES); split it into several calls`);
}

/**
 * Reads a request body, refusing it as soon as it passes the limit: a declared Content-Length over the limit
 * is refused before reading, and bytes are counted as they arrive for chunked bodies.
 */
export async function readBody(stream: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | null | undefined, options: ReadBodyOptions): Promise<Buffer> {
  const declared = options.contentLength ? Number(options.contentLength) : undefined;
  if (declared !== undefined && Number.isFinite(declared) && declared > options.maxBytes) throw bodyTooLarge(options.maxBytes);
  if (!stream) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  const iterable = Symbol.asyncIterator in stream ? (stream as AsyncIterable<Uint8Array>) : iterate(stream as ReadableStream<Uint8Array>);
  for await (const chunk of iterable) {
    total += chunk.byteLength;
    if (total > options.maxBytes) throw bodyTooLarge(options.maxBytes);
    chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

/** What `readRequestBody` uses of an `HttpRequest` (or a fetch `Request`). */
export interface RequestWithBody {
  readonly body: ReadableStream<Uint8Array> | null;
  readonly headers: Headers;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/**
 * A request's body within the limit. A declared Content-Length bounds the body (the HTTP framing holds it to
 * that many bytes), so once it is checked the body is taken in one piece, which spares a web stream read per
 * request; without one, bytes are counted as they stream in.
 */
export async function readRequestBody(request: RequestWithBody, maxBytes: number): Promise<Buffer> {
  const contentLength = request.headers.get('content-length');
  const declared = contentLength === null ? NaN : Number(contentLength);
  if (!Number.isInteger(declared) || declared < 0) return readBody(request.body, { maxBytes, contentLength });
  if (declared > maxBytes) throw bodyTooLarge(maxBytes);
  const bytes = Buffer.from(await request.arrayBuffer());
  if (bytes.byteLength > maxBytes) throw bodyTooLarge(maxBytes);
  return bytes;
}

async function* iterate(stream: ReadableStream<Uint8Array>): AsyncIterable<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    // Stops the upload when the body is refused part-way; harmless once the stream has ended.
    await reader.cancel().catch(() => undefined);
  }
}
