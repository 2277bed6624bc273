import { CollectorError } from '../typescript/src/errors';
import { defaultRetry, HttpSender, postWithRetry, type RetryOptions } from '../typescript/src/transport';

/** One HTTP body the model received or returned, with the payload-logging headers that describe it. */
export interface PayloadLogEvent {
  collection: 'request' | 'response';
  body: Buffer;
  headers: Record<string, string>;
}

export interface PayloadLoggerOptions {
  /** `<base>/api/collect/<endpoint>/<deployment>`. */
  deploymentUrl: string;
  key: string;
  /** Events waiting or being sent, at most. Default 1,000. */
  maxQueue?: number;
  /** Bytes of bodies waiting or being sent, at most. Default 64 MiB. */
  maxQueueBytes?: number;
  /** Requests to the collector at once. Default 8. */
  concurrency?: number;
  /** Default: 3 retries, 100 ms to 2 s. A proxy keeps little: what cannot be sent soon is dropped and counted. */
  retry?: RetryOptions;
  /** Per attempt. Default 10 s. */
  timeoutMs?: number;
  onError?: (error: CollectorError) => void;
}

export interface PayloadLoggerStats {
  sent: number;
  /** Dropped because the queue was full. */
  dropped: number;
  /** Given up after retries, or refused by the collector. */
  failed: number;
}

/**
 * Fire-and-forget delivery of payload logs: `log()` never waits, so a slow or absent collector cannot delay
 * the model's answers; a bounded queue caps the memory it may take, and what does not fit is counted.
 */
export class PayloadLogger {
  readonly stats: PayloadLoggerStats = { sent: 0, dropped: 0, failed: 0 };
  private readonly key: string;
  private readonly maxQueue: number;
  private readonly maxQueueBytes: number;
  private readonly concurrency: number;
  private readonly retry: Required<RetryOptions>;
  private readonly onError: ((error: CollectorError) => void) | undefined;
  private readonly sender: HttpSender;
  private readonly stopping = new AbortController();
  private readonly queue: PayloadLogEvent[] = [];
  private queuedBytes = 0;
  private active = 0;
  private idle: Array<() => void> = [];
  private scheduled = false;
  private readonly urls: Record<PayloadLogEvent['collection'], URL>;

  constructor(options: PayloadLoggerOptions) {
    const base = options.deploymentUrl.replace(/\/+$/, '');
    this.urls = { request: new URL(`${base}/request`), response: new URL(`${base}/response`) };
    this.key = options.key;
    this.maxQueue = options.maxQueue ?? 1000;
    this.maxQueueBytes = options.maxQueueBytes ?? 64 * 1024 * 1024;
    this.concurrency = options.concurrency ?? 8;
    this.retry = { ...defaultRetry, maxRetries: 3, baseDelayMs: 100, maxDelayMs: 2000, ...options.retry };
    this.onError = options.onError;
    this.sender = new HttpSender({ maxSockets: this.concurrency, timeoutMs: options.timeoutMs ?? 10_000 });
  }

  /** Events queued or being sent. */
  get pending(): number {
    return this.queue.length + this.active;
  }

  /** Queues the event; false when it was dropped because the queue is full. */
  log(event: PayloadLogEvent): boolean {
    if (this.queue.length + this.active >= this.maxQueue || this.queuedBytes + event.body.length > this.maxQueueBytes) {
      this.stats.dropped++;
      this.report(new CollectorError('QueueFull', `payload log queue is full: a ${event.collection} log was dropped`, { dropped: 1 }));
      return false;
    }
    this.queue.push(event);
    this.queuedBytes += event.body.length;
    // Start sending on the next turn of the event loop: the answer this log describes is flushed first.
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.pump();
      });
    }
    return true;
  }

  /** Resolves once nothing is queued or being sent. */
  flush(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Waits up to `timeoutMs` for what is queued, then drops the rest and frees the sockets. */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    const timer = setTimeout(() => this.stopping.abort(), options.timeoutMs ?? 5000);
    try {
      await this.flush();
    } finally {
      clearTimeout(timer);
      this.sender.destroy();
    }
  }

  private pump(): void {
    while (this.active < this.concurrency && this.queue.length > 0) {
      const event = this.queue.shift()!;
      this.active++;
      void this.send(event).finally(() => {
        this.active--;
        this.queuedBytes -= event.body.length;
        this.pump();
        if (this.pending === 0) {
          const waiters = this.idle;
          this.idle = [];
          for (const resolve of waiters) resolve();
        }
      });
    }
  }

  private async send(event: PayloadLogEvent): Promise<void> {
    try {
      await postWithRetry(this.sender, this.urls[event.collection], event.body, { ...event.headers, 'x-mdc-key': this.key }, {
        retry: this.retry,
        events: 1,
        signal: this.stopping.signal,
      });
      this.stats.sent++;
    } catch (error) {
      this.stats.failed++;
      this.report(error instanceof CollectorError ? error : new CollectorError('SendFailed', String(error), { dropped: 1, cause: error }));
    }
  }

  private report(error: CollectorError): void {
    try {
      this.onError?.(error);
    } catch {
      // a throwing handler must not break the proxy
    }
  }
}
