import type http from 'node:http';
import type { CollectorErrorCode } from '../typescript/src/errors';
import type { PayloadLoggerOptions, PayloadLoggerStats } from './payload-logger';

/**
 * What the proxy's request thread hands to the log worker in one message: the raw material of the exchanges' logs,
 * as it was seen, in columns (entry `i` of each array is one exchange). The worker builds the log headers from it,
 * so the request thread only copies bytes. Columns rather than an object per exchange: objects built per request
 * on that thread, even ones dropped at once, doubled what its scavenges copied and promoted, and so their pauses
 * (measured with --trace-gc-nvp); the same values pushed onto a few arrays did not.
 */
export interface LogBatch {
  /** The correlation id: the caller's `x-request-id`, or the one the proxy added. */
  ids: string[];
  methods: string[];
  urls: string[];
  /** The requests' headers, as Node parsed them. */
  headers: http.IncomingHttpHeaders[];
  /** The answers' content types. */
  types: (string | undefined)[];
  /** `numbersPerExchange` numbers per exchange, at the offsets of `at`. */
  numbers: number[];
  /** The logged bytes of the bodies, one after the other. */
  bytes: ArrayBuffer;
}

/**
 * Where each number of an exchange sits among its `numbersPerExchange`. A body is at `requestAt`/`responseAt` in
 * `bytes`, -1 when it is not in this batch (the request was logged in an earlier one, or the answer is to come);
 * `total` counts the bytes that streamed through, `kept` those logged.
 */
export const at = { requestAt: 0, requestKept: 1, requestTotal: 2, responseAt: 3, responseKept: 4, responseTotal: 5, status: 6, durationMs: 7 } as const;
export const numbersPerExchange = 8;

export interface LogWorkerData {
  logger: Omit<PayloadLoggerOptions, 'onError'>;
  modelVersion?: string;
}

export type ToLogWorker =
  | ({ kind: 'logs' } & LogBatch)
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

/**
 * The headers both logs of exchange `i` share, as the flat name/value list a `PayloadLogger` takes, led by the
 * collector's key so that the logger sends the list as it is. Lists rather than objects: the worker built three
 * objects per log (these, a copy per body, the logger's copy with the key), and undici takes a list without the
 * `Object.keys` of an object.
 */
export function logHeaders(batch: LogBatch, i: number, key: string, modelVersion: string | undefined): string[] {
  const headers = ['x-mdc-key', key];
  const request = batch.headers[i]!;
  for (const name in request) {
    const value = request[name];
    // `x-request-id` and `user-agent` are set below: as object keys they replaced the caller's values.
    if (value !== undefined && !notLogged.has(name) && name !== 'x-request-id' && !name.startsWith('x-mdc-')) headers.push(name, Array.isArray(value) ? value.join(', ') : value);
  }
  const url = batch.urls[i]!;
  headers.push('x-request-id', batch.ids[i]!, 'x-mdc-path', url.length > maxPathLength ? url.slice(0, maxPathLength) : url, 'x-mdc-method', batch.methods[i]!, 'user-agent', proxyAgent);
  if (modelVersion) headers.push('x-mdc-model-version', modelVersion);
  return headers;
}

/** One body's headers: `base` and its content type, and room for `extra` more names and values. */
export function bodyHeaders(base: readonly string[], contentType: string | undefined, kept: number, total: number, extra = 0): string[] {
  const cut = total > kept;
  // Sized once: growing the list with each push would copy it.
  const headers = new Array<string>(base.length + (cut ? 4 : contentType ? 2 : 0) + extra);
  let n = 0;
  for (; n < base.length; n++) headers[n] = base[n]!;
  if (cut) {
    // A cut body is no longer the JSON it was: log its first bytes as bytes, and say how long it was.
    headers[n++] = 'content-type';
    headers[n++] = 'application/octet-stream';
    headers[n++] = 'x-mdc-truncated-from';
    headers[n++] = String(total);
  } else if (contentType) {
    headers[n++] = 'content-type';
    headers[n++] = contentType;
  }
  return headers;
}
