import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { HttpRequest, HttpResponse, type Cookie, type HttpFunctionOptions, type HttpRequestInit, type HttpResponseInit } from '@azure/functions';
import { BufferedRequest } from './buffered-request';
import { errorText, invocationContext } from './context';
import type { HostLog } from './log';
import { byPrecedence, matchRoute, parseRoute, type Route } from './routes';

/** The Functions host refuses request bodies over 100 MB (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT). */
export const defaultMaxRequestBodyBytes = 100 * 1024 * 1024;

/**
 * A body whose Content-Length is at most this is read whole before the handler runs and handed over as bytes
 * (`BufferedRequest`): a fetch `Request` over a stream costs more per request than all of a small `collect`
 * call. Larger or chunked bodies stay streamed, read only as the handler reads them.
 */
export const bufferedRequestBodyBytes = 1024 * 1024;

/** Methods a fetch `Request` takes with a body; others (TRACE, ...) keep to a real `Request`, and its refusal. */
const bodyMethods = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export interface HttpBinding {
  readonly name: string;
  readonly options: HttpFunctionOptions;
  readonly route: Route;
  /** Upper case; the library's default is GET and POST. */
  readonly methods: ReadonlySet<string>;
}

export function httpBindings(functions: Record<string, HttpFunctionOptions>): HttpBinding[] {
  return Object.entries(functions)
    .map(([name, options]) => ({
      name,
      options,
      route: parseRoute(options.route ?? name),
      methods: new Set((options.methods ?? ['GET', 'POST']).map((m) => m.toUpperCase())),
    }))
    .sort((a, b) => byPrecedence(a.route, b.route));
}

export interface HttpDispatchOptions {
  log: HostLog;
  maxRequestBodyBytes?: number;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, code: string, message: string, headers?: Record<string, string>): void {
  sendJson(res, status, { error: { code, message } }, headers);
}

class RequestBodyTooLargeError extends Error {
  readonly code = 'RequestBodyTooLarge';
}

/**
 * Serves one request under the route prefix: finds the function by route and method, hands it an `HttpRequest`
 * (streaming, as with the library's HTTP streaming, unless the body is small and declared: see
 * `bufferedRequestBodyBytes`), and writes back what it returns. `path` is the part after the prefix.
 */
export async function dispatchHttp(
  bindings: readonly HttpBinding[],
  path: string,
  req: IncomingMessage,
  res: ServerResponse,
  options: HttpDispatchOptions,
): Promise<void> {
  const method = (req.method ?? 'GET').toUpperCase();
  let found: { binding: HttpBinding; params: Record<string, string> } | undefined;
  const allowed = new Set<string>();
  for (const binding of bindings) {
    const params = matchRoute(binding.route, path);
    if (!params) continue;
    if (binding.methods.has(method)) {
      found = { binding, params };
      break;
    }
    binding.methods.forEach((m) => allowed.add(m));
  }
  if (!found) {
    if (allowed.size > 0) {
      sendError(res, 405, 'MethodNotAllowed', `${method} is not allowed on ${req.url}; use ${[...allowed].join(', ')}`, {
        allow: [...allowed].join(', '),
      });
    } else {
      sendError(res, 404, 'NotFound', `no function serves ${method} ${(req.url ?? '').split('?')[0]}`);
    }
    return;
  }

  const limit = options.maxRequestBodyBytes ?? defaultMaxRequestBodyBytes;
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    sendError(res, 413, 'RequestBodyTooLarge', `the request body is ${declared} bytes; the host takes at most ${limit}`);
    return;
  }
  let tooLarge = false;
  const { binding, params } = found;
  const url = `http://${req.headers.host ?? '127.0.0.1'}${req.url ?? '/'}`;
  let nativeRequest: Request | BufferedRequest;
  if (bodyMethods.has(method) && req.headers['content-length'] !== undefined && declared <= bufferedRequestBodyBytes) {
    const bytes = await readWhole(req);
    // The client went away before sending its body: there is no one to answer.
    if (!bytes) return;
    nativeRequest = new BufferedRequest(url, method, new Headers(requestHeaders(req)), bytes);
  } else {
    const body = async function* () {
      let seen = 0;
      for await (const chunk of req as AsyncIterable<Buffer>) {
        seen += chunk.length;
        if (seen > limit) {
          tooLarge = true;
          throw new RequestBodyTooLargeError(`the request body exceeds ${limit} bytes`);
        }
        yield chunk;
      }
    };
    const hasBody = method !== 'GET' && method !== 'HEAD';
    nativeRequest = new Request(url, {
      method,
      headers: requestHeaders(req),
      ...(hasBody ? { body: body() as unknown as RequestInit['body'], duplex: 'half' } : {}),
    } as RequestInit);
  }
  // A native request plus route params is how the library itself builds a streaming request (createStreamRequest).
  const request = new HttpRequest({ nativeRequest, params } as unknown as HttpRequestInit);
  const context = invocationContext({
    functionName: binding.name,
    trigger: { type: 'httpTrigger', name: 'request', authLevel: binding.options.authLevel ?? 'anonymous', methods: [...binding.methods] },
    log: options.log,
  });

  let result: unknown;
  try {
    result = await binding.options.handler(request, context);
  } catch (error) {
    if (tooLarge) {
      sendError(res, 413, 'RequestBodyTooLarge', `the request body exceeds ${limit} bytes`);
      return;
    }
    options.log('error', `Functions.${binding.name}`, `Executed (Failed, Id=${context.invocationId}):`, error);
    sendError(res, 500, 'FunctionFailed', `function ${binding.name} failed: ${errorText(error)}`);
    return;
  }
  if (tooLarge) {
    sendError(res, 413, 'RequestBodyTooLarge', `the request body exceeds ${limit} bytes`);
    return;
  }
  await sendResponse(res, result, method, (error) =>
    options.log('error', `Functions.${binding.name}`, 'could not send the response:', error),
  );
}

/** The whole body, or undefined when the request was aborted first. Node's parser holds it to Content-Length. */
function readWhole(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.once('error', () => resolve(undefined));
    req.once('close', () => {
      if (!req.complete) resolve(undefined);
    });
  });
}

function requestHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

async function sendResponse(res: ServerResponse, result: unknown, method: string, onError: (error: unknown) => void): Promise<void> {
  if (result === undefined || result === null) {
    res.writeHead(204).end();
    return;
  }
  let plain: PlainResponse | undefined;
  let response: HttpResponse | undefined;
  try {
    if (!(result instanceof HttpResponse)) plain = plainResponse(result as HttpResponseInit);
    if (!plain) response = result instanceof HttpResponse ? result : new HttpResponse(result as HttpResponseInit);
  } catch (error) {
    sendError(res, 500, 'InvalidResponse', `the function returned a response the host cannot send: ${errorText(error)}`);
    return;
  }
  let stream: Readable | undefined;
  if (plain) {
    writeHead(res, plain.status, plain.headers, plain.cookies);
    if (!plain.stream) {
      if (plain.body === undefined || method === 'HEAD') res.end();
      else res.end(plain.body);
      return;
    }
    stream = plain.stream;
  } else {
    writeHead(res, response!.status, response!.headers, response!.cookies);
    if (response!.body) stream = Readable.fromWeb(response!.body as WebReadableStream<Uint8Array>);
  }
  if (!stream || method === 'HEAD') {
    stream?.destroy();
    res.end();
    return;
  }
  try {
    await pipeline(stream, res);
  } catch (error) {
    onError(error);
    res.destroy();
  }
}

function writeHead(res: ServerResponse, status: number, headers: Headers, extraCookies: readonly Cookie[]): void {
  for (const [name, value] of headers) {
    if (name !== 'set-cookie') res.setHeader(name, value);
  }
  const cookies = [...headers.getSetCookie(), ...extraCookies.map(serializeCookie)];
  if (cookies.length > 0) res.setHeader('set-cookie', cookies);
  res.statusCode = status;
}

interface PlainResponse {
  status: number;
  headers: Headers;
  cookies: readonly Cookie[];
  body?: string | Uint8Array;
  /** A Node stream, piped as it is rather than through a web stream and back (the read API's rows). */
  stream?: Readable;
}

/** Statuses the fetch `Response` gives no body (the library drops one for them). */
const nullBodyStatuses = new Set([204, 205, 304]);

/**
 * A returned `HttpResponseInit` whose body is already whole (`jsonBody`, a string or bytes) or a Node stream, as the library's
 * `HttpResponse` would present it: the same status, headers and default content type. Writing it directly
 * spares a fetch `Response` and a web stream per request. Undefined for anything else (streams, blobs, forms,
 * statuses the library treats specially), which goes through `HttpResponse` as before.
 */
export function plainResponse(init: HttpResponseInit): PlainResponse | undefined {
  const status = init.status ?? 200;
  if (!Number.isInteger(status) || status < 200 || status > 599 || nullBodyStatuses.has(status)) return undefined;
  let body: string | Uint8Array | undefined;
  let contentType: string | undefined;
  if (init.jsonBody !== undefined && init.jsonBody !== null) {
    body = JSON.stringify(init.jsonBody) as string | undefined;
    if (body === undefined) return undefined;
    contentType = 'application/json';
  } else if (typeof init.body === 'string') {
    body = init.body;
    contentType = 'text/plain;charset=UTF-8';
  } else if (init.body instanceof Uint8Array) {
    body = init.body;
  } else if (init.body instanceof Readable) {
    // As an async iterable, the library's Response gives it no content type either.
    return { status, headers: new Headers(init.headers), cookies: init.cookies ?? [], stream: init.body };
  } else if (init.body !== undefined && init.body !== null) {
    return undefined;
  }
  const headers = new Headers(init.headers);
  if (contentType && !headers.has('content-type')) headers.set('content-type', contentType);
  return { status, headers, cookies: init.cookies ?? [], ...(body === undefined ? {} : { body }) };
}

function serializeCookie(cookie: Cookie): string {
  const parts = [`${cookie.name}=${encodeURIComponent(cookie.value)}`];
  if (cookie.domain) parts.push(`Domain=${cookie.domain}`);
  if (cookie.path) parts.push(`Path=${cookie.path}`);
  if (cookie.expires !== undefined) parts.push(`Expires=${new Date(cookie.expires).toUTCString()}`);
  if (cookie.maxAge !== undefined) parts.push(`Max-Age=${cookie.maxAge}`);
  if (cookie.secure) parts.push('Secure');
  if (cookie.httpOnly) parts.push('HttpOnly');
  if (cookie.sameSite) parts.push(`SameSite=${cookie.sameSite}`);
  return parts.join('; ');
}
