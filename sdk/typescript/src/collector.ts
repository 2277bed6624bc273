import { BasicCorrelationContext, type CorrelationContext } from './context';
import { shapeOf, type Columns, type Records } from './data';
import { CollectorError } from './errors';
import { defaultRetry, HttpSender, postWithRetry, type RetryOptions } from './transport';
import { deploymentUrl, envNames } from './config';

export const sdkVersion = '0.1.0';

export interface CollectorOptions {
  /** The collection, e.g. `model_inputs` or `model_outputs`, as named in the deployment's `data_collector`. */
  name: string;
  /**
   * `<base>/api/collect/<endpoint>/<deployment>`, or the collector's base URL together with `endpoint` and
   * `deployment`. Default: `MDC_URL`.
   */
  url?: string;
  /** Default: `MDC_ENDPOINT`. */
  endpoint?: string;
  /** Default: `MDC_DEPLOYMENT`. */
  deployment?: string;
  /** The deployment's ingest key. Default: `MDC_KEY`. */
  key?: string;
  /**
   * Called with every loss (full queue, refused or undeliverable batch). Without it, losses are thrown from
   * the next `flush()`/`close()`, never from `collect()`.
   */
  onError?: (error: CollectorError) => void;
  /** Collect calls waiting to be sent, at most; beyond it calls are dropped and reported. Default 10,000. */
  maxQueue?: number;
  /** How long a call may wait for others to share its request. Default 100 ms. */
  flushIntervalMs?: number;
  /** Collect calls per request, at most. Default 500. */
  maxBatchCalls?: number;
  /** Request body size above which a batch is cut. Default 512 KiB. */
  maxBatchBytes?: number;
  retry?: RetryOptions;
  /** Per attempt. Default 30 s. */
  timeoutMs?: number;
  modelVersion?: string;
}

interface Queued {
  line: string;
  bytes: number;
}

/** Errors kept for `flush()` when there is no `onError`; the count stays exact past it. */
const keptErrors = 100;

/**
 * Sends model data to the collector in the background, in the manner of azureml-ai-monitoring's `Collector`:
 * `collect()` returns a correlation context at once and never throws, calls are batched into NDJSON requests,
 * throttling and outages are retried with backoff, and a bounded queue sheds load instead of slowing scoring.
 */
export class Collector {
  readonly name: string;
  readonly url: string;
  private readonly key: string;
  private readonly onError: ((error: CollectorError) => void) | undefined;
  private readonly maxQueue: number;
  private readonly flushIntervalMs: number;
  private readonly maxBatchCalls: number;
  private readonly maxBatchBytes: number;
  private readonly retry: Required<RetryOptions>;
  private readonly modelVersion: string | undefined;
  private readonly sender: HttpSender;
  private readonly stopping = new AbortController();

  private queue: Queued[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sending = false;
  private closed = false;
  private drained: Array<() => void> = [];
  private errors: CollectorError[] = [];
  private errorCount = 0;
  private droppedCount = 0;

  constructor(options: CollectorOptions) {
    if (!options.name || !/^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/.test(options.name)) {
      throw new TypeError(`collection name "${options.name}" must match ^[a-zA-Z_][a-zA-Z0-9_]{0,63}$`);
    }
    const key = options.key ?? process.env[envNames.key];
    if (!key) throw new TypeError(`no ingest key: pass key or set ${envNames.key}`);
    this.name = options.name;
    this.url = `${deploymentUrl(options)}/${options.name}`;
    this.key = key;
    this.onError = options.onError;
    this.maxQueue = positive('maxQueue', options.maxQueue, 10_000);
    this.flushIntervalMs = nonNegative('flushIntervalMs', options.flushIntervalMs, 100);
    this.maxBatchCalls = positive('maxBatchCalls', options.maxBatchCalls, 500);
    this.maxBatchBytes = positive('maxBatchBytes', options.maxBatchBytes, 512 * 1024);
    this.retry = { ...defaultRetry, ...options.retry };
    this.modelVersion = options.modelVersion;
    this.sender = new HttpSender({ maxSockets: 1, ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) });
  }

  /** Collect calls waiting or being sent. */
  get pending(): number {
    return this.queue.length;
  }

  /**
   * Queues `data` (records or columns) and returns at once with the correlation context to pass to the
   * outputs' `collect`. Problems are reported to `onError` or thrown from `flush()`, never from here.
   */
  collect(data: Records | Columns, context?: CorrelationContext): CorrelationContext {
    const correlation = context ?? new BasicCorrelationContext();
    if (this.closed) {
      this.fail(new CollectorError('Closed', `collector "${this.name}" is closed`, { dropped: 1 }));
      return correlation;
    }
    if (this.queue.length >= this.maxQueue) {
      this.fail(new CollectorError('QueueFull', `collector "${this.name}" queue is full (${this.maxQueue} calls): data dropped`, { dropped: 1 }));
      return correlation;
    }
    const shape = shapeOf(data);
    if ('problem' in shape) {
      this.fail(new CollectorError('InvalidData', shape.problem, { dropped: 1 }));
      return correlation;
    }
    const id = correlation.getId();
    if (typeof id !== 'string' || id.length === 0 || id.length > 256 || /[\u0000-\u001f]/.test(id)) {
      this.fail(new CollectorError('InvalidData', 'the correlation id must be 1-256 characters without control characters', { dropped: 1 }));
      return correlation;
    }
    let line: string;
    try {
      line = JSON.stringify(this.envelope(data, shape.shape, correlation));
    } catch (error) {
      this.fail(new CollectorError('InvalidData', `data cannot be serialized as JSON: ${(error as Error).message}`, { dropped: 1, cause: error }));
      return correlation;
    }
    this.queue.push({ line, bytes: Buffer.byteLength(line) + 1 });
    this.schedule(false);
    return correlation;
  }

  /**
   * Sends everything queued and waits until it is delivered or given up. Without `onError`, throws a
   * `CollectorError` summing the losses since the last flush.
   */
  async flush(options: { abortSignal?: AbortSignal } = {}): Promise<void> {
    if (this.queue.length > 0 || this.sending) {
      await new Promise<void>((resolve, reject) => {
        const signal = options.abortSignal;
        if (signal?.aborted) return reject(signal.reason);
        const done = () => {
          signal?.removeEventListener('abort', aborted);
          resolve();
        };
        const aborted = () => {
          this.drained = this.drained.filter((waiter) => waiter !== done);
          reject(signal?.reason);
        };
        signal?.addEventListener('abort', aborted, { once: true });
        this.drained.push(done);
        this.schedule(true);
      });
    }
    this.throwPending();
  }

  /**
   * Flushes, then refuses further data. With `abortSignal`, stops retrying when it fires and drops what is
   * left (reported as `SendFailed`).
   */
  async close(options: { abortSignal?: AbortSignal } = {}): Promise<void> {
    this.closed = true;
    const stop = () => this.stopping.abort(options.abortSignal?.reason);
    if (options.abortSignal?.aborted) stop();
    options.abortSignal?.addEventListener('abort', stop, { once: true });
    try {
      await this.flush();
    } finally {
      options.abortSignal?.removeEventListener('abort', stop);
      this.sender.destroy();
    }
  }

  private envelope(data: Records | Columns, shape: string, context: CorrelationContext): Record<string, unknown> {
    const requestId = context.getHeaders()['x-request-id'];
    return {
      data,
      correlationid: context.getId(),
      ...(requestId ? { xrequestid: requestId } : {}),
      ...(this.modelVersion ? { modelversion: this.modelVersion } : {}),
      collectdatatype: shape,
      agent: `mdc-collector-js/${sdkVersion}`,
      // The call's own time: a batch may leave later, and the line must say when the model saw the data.
      time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    };
  }

  private schedule(now: boolean): void {
    if (this.sending) return; // the running pump picks up whatever is queued
    if (now || this.queue.length >= this.maxBatchCalls) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      void this.pump();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.pump();
      }, this.flushIntervalMs);
    }
  }

  /** The only sender: one request at a time keeps a deployment's lines in order and the load on the collector bounded. */
  private async pump(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        let count = 0;
        let bytes = 0;
        while (count < this.queue.length && count < this.maxBatchCalls) {
          const next = this.queue[count]!;
          if (count > 0 && bytes + next.bytes > this.maxBatchBytes) break;
          bytes += next.bytes;
          count++;
        }
        const body = this.queue.slice(0, count).map((item) => item.line).join('\n') + '\n';
        try {
          await postWithRetry(
            this.sender,
            new URL(this.url),
            body,
            { 'content-type': 'application/x-ndjson', 'x-mdc-key': this.key, 'user-agent': `mdc-collector-js/${sdkVersion}` },
            { retry: this.retry, events: count, signal: this.stopping.signal },
          );
        } catch (error) {
          this.fail(error instanceof CollectorError ? error : new CollectorError('SendFailed', String(error), { dropped: count, cause: error }));
        }
        this.queue.splice(0, count);
      }
    } finally {
      this.sending = false;
      const waiters = this.drained;
      this.drained = [];
      for (const resolve of waiters) resolve();
    }
  }

  private fail(error: CollectorError): void {
    if (this.onError) {
      try {
        this.onError(error);
      } catch {
        // a throwing handler must not reach the scoring path
      }
      return;
    }
    this.errorCount++;
    this.droppedCount += error.dropped;
    if (this.errors.length < keptErrors) this.errors.push(error);
  }

  private throwPending(): void {
    if (this.errorCount === 0) return;
    const [first] = this.errors;
    const error = new CollectorError(
      first!.code,
      `${this.errorCount} error(s), ${this.droppedCount} collect call(s) lost since the last flush; first: ${first!.message}`,
      { dropped: this.droppedCount, errors: this.errors, cause: first, ...(first!.status !== undefined ? { status: first!.status } : {}) },
    );
    this.errors = [];
    this.errorCount = 0;
    this.droppedCount = 0;
    throw error;
  }
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new TypeError(`${name} must be a number ≥ 0, got ${value}`);
  return value;
}
