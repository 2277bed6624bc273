/**
 * A problem the caller can act on, with the HTTP status it maps to. The core throws these; the function
 * adapters turn them into `{"error": {"code", "message", "path"?}}` answers, so a client mistake is never a 500.
 */
export class CollectorError extends Error {
  readonly status: number;
  readonly code: string;
  /** Where in the request the problem is: a field path (`data_collector.rolling_rate`), a header or a route part. */
  readonly path?: string;
  /** For 503: how long the caller should wait before retrying. */
  readonly retryAfterSeconds?: number;

  constructor(status: number, code: string, message: string, options: { path?: string; retryAfterSeconds?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CollectorError';
    this.status = status;
    this.code = code;
    if (options.path !== undefined) this.path = options.path;
    if (options.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export const badRequest = (code: string, message: string, path?: string) =>
  new CollectorError(400, code, message, path === undefined ? {} : { path });

export interface ErrorBody {
  error: { code: string; message: string; path?: string };
}

/** The answer for an error: shaped like an `HttpResponseInit`, without depending on the Functions library. */
export interface JsonAnswer {
  status: number;
  headers?: Record<string, string>;
  jsonBody: unknown;
}

export function errorAnswer(error: CollectorError): JsonAnswer {
  const body: ErrorBody = { error: { code: error.code, message: error.message, ...(error.path !== undefined ? { path: error.path } : {}) } };
  const headers: Record<string, string> = {};
  if (error.retryAfterSeconds !== undefined) headers['retry-after'] = String(error.retryAfterSeconds);
  if (error.status === 401) headers['www-authenticate'] = 'MDC-Key';
  return { status: error.status, headers, jsonBody: body };
}

/** Shows a caller's value in a message without letting a huge or odd value flood it. */
export function quote(value: string, max = 60): string {
  const shown = value.length > max ? `${value.slice(0, max)}…` : value;
  return JSON.stringify(shown);
}

function isUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const e = error as Error & { statusCode?: number; code?: string };
  if (e.name === 'AbortError' || e.name === 'TimeoutError') return true;
  if (typeof e.code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|REQUEST_SEND_ERROR)$/.test(e.code)) return true;
  if (e.name === 'RestError') return e.statusCode === undefined || e.statusCode === 408 || e.statusCode === 429 || e.statusCode >= 500;
  return false;
}

/**
 * Any error as an answer: a `CollectorError` as itself, storage being down or throttled as 503, anything else
 * as a 500 (a bug; `unexpected` tells the adapter to log it).
 */
export function answerFor(error: unknown): { answer: JsonAnswer; unexpected: boolean } {
  if (error instanceof CollectorError) return { answer: errorAnswer(error), unexpected: false };
  if (isUnavailable(error)) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return {
      answer: errorAnswer(new CollectorError(503, 'StorageUnavailable', `blob storage did not answer (${reason}); send again later`, { retryAfterSeconds: 5 })),
      unexpected: true,
    };
  }
  return { answer: errorAnswer(new CollectorError(500, 'InternalError', 'the collector failed unexpectedly; the error is logged')), unexpected: true };
}
