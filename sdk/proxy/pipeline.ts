import type http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { maxAnswerBytes, type HttpAnswer } from '../typescript/src/transport';

/**
 * HTTP/1.1 keep-alive connection that pipelines requests (RFC 9112 §9.3.2): many POSTs leave in one write and
 * their answers come back in order. Payload logs are small and come two per proxied request, so one syscall per
 * POST (what `http.request` costs) was most of the proxy's CPU; here a batch costs one write and a few reads.
 */
export interface PipelinedRequest {
  /** The whole request as it goes on the wire: head, then body. */
  wire: Buffer[];
}

export interface ConnectionEvents<T extends PipelinedRequest> {
  answered(request: T, answer: HttpAnswer): void;
  /**
   * The connection ended with these requests unanswered. `error` is undefined only when the server had said it
   * would close (`Connection: close`): the requests after that answer were not processed.
   */
  lost(requests: T[], error: Error | undefined): void;
  /** The connection is gone and holds nothing: forget it. */
  closed(): void;
}

const crlf = Buffer.from('\r\n');
const headEnd = Buffer.from('\r\n\r\n');

/** Reads answers out of a byte stream as they complete; `undefined` until one is whole. */
class AnswerReader {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
  }

  /** The next whole answer, skipping 1xx; throws on bytes that are not HTTP/1.x. */
  next(): (HttpAnswer & { close: boolean }) | undefined {
    for (;;) {
      const end = this.buffer.indexOf(headEnd);
      if (end === -1) return undefined;
      const lines = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
      const statusLine = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0] ?? '');
      if (!statusLine) throw new Error(`not an HTTP/1.x answer: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
      const status = Number(statusLine[2]);
      const headers: http.IncomingHttpHeaders = {};
      for (let i = 1; i < lines.length; i++) {
        const colon = lines[i]!.indexOf(':');
        if (colon > 0) headers[lines[i]!.slice(0, colon).trim().toLowerCase()] = lines[i]!.slice(colon + 1).trim();
      }
      const start = end + headEnd.length;
      if (status < 200) {
        this.buffer = this.buffer.subarray(start);
        continue;
      }
      const framed = this.frame(headers, status, start);
      if (!framed) return undefined;
      this.buffer = this.buffer.subarray(framed.next);
      const connection = String(headers['connection'] ?? '').toLowerCase();
      const close = connection.includes('close') || (statusLine[1] === '0' && !connection.includes('keep-alive'));
      return { status, headers, body: framed.body.toString('utf8'), close };
    }
  }

  /** The body and where the next answer starts, or undefined when the body is not all here yet. */
  private frame(headers: http.IncomingHttpHeaders, status: number, start: number): { body: Buffer; next: number } | undefined {
    if (status === 204 || status === 304) return { body: Buffer.alloc(0), next: start };
    if (/chunked/i.test(String(headers['transfer-encoding'] ?? ''))) {
      const parts: Buffer[] = [];
      let kept = 0;
      let at = start;
      for (;;) {
        const lineEnd = this.buffer.indexOf(crlf, at);
        if (lineEnd === -1) return undefined;
        const size = parseInt(this.buffer.subarray(at, lineEnd).toString('latin1'), 16);
        if (Number.isNaN(size)) throw new Error('bad chunk size in answer');
        if (size === 0) {
          // The last chunk's line, then trailers if any, end with an empty line as the head does.
          const last = this.buffer.indexOf(headEnd, lineEnd);
          if (last === -1) return undefined;
          return { body: Buffer.concat(parts), next: last + headEnd.length };
        }
        const dataEnd = lineEnd + 2 + size;
        if (dataEnd + 2 > this.buffer.length) return undefined;
        if (kept < maxAnswerBytes) {
          parts.push(this.buffer.subarray(lineEnd + 2, dataEnd));
          kept += size;
        }
        at = dataEnd + 2;
      }
    }
    const length = Number(headers['content-length'] ?? NaN);
    if (!Number.isInteger(length) || length < 0) throw new Error('answer without a length cannot be pipelined');
    if (this.buffer.length < start + length) return undefined;
    return { body: this.buffer.subarray(start, start + Math.min(length, maxAnswerBytes)), next: start + length };
  }
}

export interface PipelinedConnectionOptions {
  url: URL;
  /** No answer for this long while requests are out: the connection is dropped and they count as lost. */
  timeoutMs: number;
  /** Idle this long, the connection is closed first, so the server's own keep-alive timeout never races a write. */
  idleMs: number;
}

export class PipelinedConnection<T extends PipelinedRequest> {
  /** Sent and not yet answered, oldest first. */
  readonly inFlight: T[] = [];
  private readonly socket: net.Socket;
  private readonly reader = new AnswerReader();
  private readonly options: PipelinedConnectionOptions;
  private writable = true;
  private failure: Error | undefined;
  private announcedClose = false;

  constructor(options: PipelinedConnectionOptions, private readonly events: ConnectionEvents<T>) {
    this.options = options;
    const { url } = options;
    const secure = url.protocol === 'https:';
    const port = Number(url.port) || (secure ? 443 : 80);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    this.socket = secure
      ? tls.connect({ host, port, ALPNProtocols: ['http/1.1'], ...(net.isIP(host) ? {} : { servername: host }) })
      : net.connect({ host, port });
    this.socket.setNoDelay(true);
    this.socket.setTimeout(options.timeoutMs);
    this.socket.on('data', (chunk: Buffer) => this.read(chunk));
    this.socket.on('timeout', () => {
      if (this.inFlight.length === 0) this.socket.destroy();
      else this.socket.destroy(new Error(`no answer from ${url.host} within ${options.timeoutMs} ms`));
    });
    this.socket.on('error', (error) => (this.failure = error));
    this.socket.on('close', () => this.closed());
  }

  /** True while new requests may be written. */
  get open(): boolean {
    return this.writable && !this.socket.destroyed;
  }

  /** Writes every request in one go; the caller keeps the pipeline's depth bounded. */
  send(requests: T[]): void {
    if (requests.length === 0) return;
    for (const request of requests) this.inFlight.push(request);
    this.socket.setTimeout(this.options.timeoutMs);
    // Corked, the parts leave in one writev without being copied together first.
    this.socket.cork();
    for (const request of requests) for (const part of request.wire) this.socket.write(part);
    this.socket.uncork();
  }

  destroy(): void {
    this.writable = false;
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    this.reader.push(chunk);
    for (;;) {
      let answer: ReturnType<AnswerReader['next']>;
      try {
        answer = this.reader.next();
      } catch (error) {
        this.socket.destroy(error as Error);
        return;
      }
      if (!answer) return;
      const request = this.inFlight.shift();
      if (!request) {
        this.socket.destroy(new Error('an answer came for no request'));
        return;
      }
      if (answer.close) {
        this.writable = false;
        this.announcedClose = true;
      }
      this.events.answered(request, answer);
      if (answer.close) {
        this.socket.destroy();
        return;
      }
      if (this.inFlight.length === 0) this.socket.setTimeout(this.options.idleMs);
    }
  }

  private closed(): void {
    this.writable = false;
    const lost = this.inFlight.splice(0);
    if (lost.length > 0) this.events.lost(lost, this.failure ?? (this.announcedClose ? undefined : new Error('the collector closed the connection without answering')));
    this.events.closed();
  }
}
