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

/** A body's logged bytes and how many streamed through. */
export interface BodySize {
  kept: number;
  total: number;
}

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

/** The headers both logs of exchange `i` share. */
export function logHeaders(batch: LogBatch, i: number, modelVersion: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  const request = batch.headers[i]!;
  for (const name in request) {
    const value = request[name];
    if (value !== undefined && !notLogged.has(name) && !name.startsWith('x-mdc-')) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const url = batch.urls[i]!;
  headers['x-request-id'] = batch.ids[i]!;
  headers['x-mdc-path'] = url.length > maxPathLength ? url.slice(0, maxPathLength) : url;
  headers['x-mdc-method'] = batch.methods[i]!;
  headers['user-agent'] = proxyAgent;
  if (modelVersion) headers['x-mdc-model-version'] = modelVersion;
  return headers;
}

export function bodyHeaders(base: Record<string, string>, contentType: string | undefined, body: BodySize): Record<string, string> {
  if (body.total > body.kept) {
    // A cut body is no longer the JSON it was: log its first bytes as bytes, and say how long it was.
    return { ...base, 'content-type': 'application/octet-stream', 'x-mdc-truncated-from': String(body.total) };
  }
  return contentType ? { ...base, 'content-type': contentType } : { ...base };
}
