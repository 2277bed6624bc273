import type http from 'node:http';
import type { CollectorErrorCode } from '../typescript/src/errors';
import type { PayloadLoggerOptions, PayloadLoggerStats } from './payload-logger';

/**
 * What the proxy's request thread hands to the log worker: the raw material of one exchange's two logs, as it
 * was seen. The worker builds the log headers from it, so the request thread only copies bytes.
 */
export interface LogRecord {
  /** The correlation id: the caller's `x-request-id`, or the one the proxy added. */
  id: string;
  method: string;
  url: string;
  /** The request's headers, as Node parsed them. */
  headers: http.IncomingHttpHeaders;
  /** The request's body, once it has been read whole; absent when it was logged in an earlier record. */
  request?: BodySlice;
  /** The answer, once it has been handed to the client. */
  response?: BodySlice & { status: number; type: string | undefined; durationMs: number };
}

/** A body's logged bytes, at `at` in the batch's buffer; `total` counts the bytes that streamed through. */
export interface BodySlice {
  at: number;
  kept: number;
  total: number;
}

export interface LogWorkerData {
  logger: Omit<PayloadLoggerOptions, 'onError'>;
  modelVersion?: string;
}

export type ToLogWorker =
  | { kind: 'logs'; records: LogRecord[]; bytes: ArrayBuffer }
  /** Answer with the state now, after the logs handed over before. */
  | { kind: 'state'; id: number }
  | { kind: 'flush'; id: number }
  | { kind: 'close'; id: number; timeoutMs?: number };

export interface LoggedError {
  code: CollectorErrorCode;
  message: string;
  dropped: number;
  status?: number;
}

export interface LogState {
  stats: PayloadLoggerStats;
  pending: number;
  collectorDown: boolean;
}

export interface FromLogWorker extends LogState {
  /** Logs of `logs` messages taken since the last message (queued or dropped). */
  took: number;
  /** Losses reported since the last message. */
  errors: LoggedError[];
  /** The request this answers. */
  reply?: number;
}

/** Headers that describe one hop, never forwarded (RFC 9110 §7.6.1). */
export const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);
/**
 * Request headers not copied to the collector: secrets and framing (`expect` is about this hop, and undici would
 * refuse to send the log). The collector keeps only the ones the deployment captures.
 */
const notLogged = new Set([...hopByHop, 'host', 'content-length', 'content-type', 'expect', 'authorization', 'cookie', 'x-mdc-key', 'user-agent']);
/** The collector refuses longer ones (400); log a cut path rather than lose the line. */
const maxPathLength = 2048;

export const proxyAgent = 'mdc-proxy/0.1.0';

export function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The headers both logs of one exchange share. */
export function logHeaders(record: LogRecord, modelVersion: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name in record.headers) {
    const value = record.headers[name];
    if (value !== undefined && !notLogged.has(name) && !name.startsWith('x-mdc-')) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  headers['x-request-id'] = record.id;
  headers['x-mdc-path'] = record.url.length > maxPathLength ? record.url.slice(0, maxPathLength) : record.url;
  headers['x-mdc-method'] = record.method;
  headers['user-agent'] = proxyAgent;
  if (modelVersion) headers['x-mdc-model-version'] = modelVersion;
  return headers;
}

export function bodyHeaders(base: Record<string, string>, contentType: string | undefined, body: BodySlice): Record<string, string> {
  if (body.total > body.kept) {
    // A cut body is no longer the JSON it was: log its first bytes as bytes, and say how long it was.
    return { ...base, 'content-type': 'application/octet-stream', 'x-mdc-truncated-from': String(body.total) };
  }
  return contentType ? { ...base, 'content-type': contentType } : { ...base };
}
