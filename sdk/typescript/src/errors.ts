export type CollectorErrorCode =
  /** The queue was full: the call's data was dropped so that scoring is never slowed. */
  | 'QueueFull'
  /** The collector could not be reached, or kept answering 503/5xx, until the retries ran out. */
  | 'SendFailed'
  /** The collector kept failing, so sending is paused for a while: data logged meanwhile is dropped unsent. */
  | 'CollectorDown'
  /** The collector refused the data for good (400, 401, 403, 404, 413, 415...). */
  | 'Rejected'
  /** The data is neither records nor columns, or cannot be serialized as JSON. */
  | 'InvalidData'
  /** `collect` was called after `close`. */
  | 'Closed';

export class CollectorError extends Error {
  readonly code: CollectorErrorCode;
  /** How many `collect` calls (or payload-log events) were lost. */
  readonly dropped: number;
  /** The collector's HTTP status, when it answered. */
  readonly status?: number;
  /** For errors raised from `flush`/`close`: every error seen since the last flush (the first 100). */
  readonly errors?: readonly CollectorError[];

  constructor(
    code: CollectorErrorCode,
    message: string,
    options: { dropped?: number; status?: number; cause?: unknown; errors?: readonly CollectorError[] } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CollectorError';
    this.code = code;
    this.dropped = options.dropped ?? 0;
    if (options.status !== undefined) this.status = options.status;
    if (options.errors !== undefined) this.errors = options.errors;
  }
}
