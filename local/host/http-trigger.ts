import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { HttpRequest, HttpResponse, type Cookie, type HttpFunctionOptions, type HttpRequestInit } from '@azure/functions';
import { errorText, invocationContext } from './context';
import type { HostLog } from './log';
import { byPrecedence, matchRoute, parseRoute, type Route } from './routes';

/** The Functions host refuses request bodies over 100 MB (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT). */
export const defaultMaxRequestBodyBytes = 100 * 1024 * 1024;

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
 * Serves one request under the route prefix: finds the function by route and method, hands it a streaming
 * `HttpRequest` (the body is read only as the handler reads it, as with the library's HTTP streaming), and
 * writes back what it returns. `path` is the part after the prefix.
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

  const { binding, params } = found;
  const url = `http://${req.headers.host ?? '127.0.0.1'}${req.url ?? '/'}`;
  const hasBody = method !== 'GET' && method !== 'HEAD';
  const nativeRequest = new Request(url, {
    method,
    headers: requestHeaders(req),
    ...(hasBody ? { body: body() as unknown as RequestInit['body'], duplex: 'half' } : {}),
  } as RequestInit);
  // `nativeRequest` is how the library itself builds a streaming request (createStreamRequest).
  const request = new HttpRequest({ nativeRequest, params } as HttpRequestInit);
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
  let response: HttpResponse;
  try {
    response = result instanceof HttpResponse ? result : new HttpResponse(result as ConstructorParameters<typeof HttpResponse>[0]);
  } catch (error) {
    sendError(res, 500, 'InvalidResponse', `the function returned a response the host cannot send: ${errorText(error)}`);
    return;
  }
  for (const [name, value] of response.headers) {
    if (name !== 'set-cookie') res.setHeader(name, value);
  }
  const cookies = [...response.headers.getSetCookie(), ...response.cookies.map(serializeCookie)];
  if (cookies.length > 0) res.setHeader('set-cookie', cookies);
  res.statusCode = response.status;
  if (!response.body || method === 'HEAD') {
    res.end();
    return;
  }
  try {
    await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), res);
  } catch (error) {
    onError(error);
    res.destroy();
  }
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
