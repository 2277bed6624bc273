import { CollectorError } from '../typescript/src/errors';
import { backoffMs, defaultRetry, describeAnswer, isRetryableStatus, retryAfterMs, type HttpAnswer, type RetryOptions } from '../typescript/src/transport';
import { PipelinedConnection, type PipelinedRequest } from './pipeline';

/** One HTTP body the model received or returned, with the payload-logging headers that describe it. */
export interface PayloadLogEvent {
  collection: 'request' | 'response';
  body: Buffer;
  headers: Record<string, string>;
}

export interface BreakerOptions {
  /** Failed attempts in a row (refused or dropped connections, 5xx, 429, timeouts) that open the breaker. Default 3. */
  failures?: number;
  /** The first pause; each reopening doubles it, with jitter. Default 1 s. */
  cooldownMs?: number;
  /** The longest pause, `Retry-After` included. Default 30 s. */
  maxCooldownMs?: number;
}

export interface PayloadLoggerOptions {
  /** `<base>/api/collect/<endpoint>/<deployment>`. */
  deploymentUrl: string;
  key: string;
  /** Events waiting or being sent, at most. Default 1,000. */
  maxQueue?: number;
  /** Bytes of bodies waiting or being sent, at most. Default 64 MiB. */
  maxQueueBytes?: number;
  /** Connections to the collector, at most. Default 8. */
  concurrency?: number;
  /** Requests out on one connection before its answers come back. Default 64. */
  pipelineDepth?: number;
  /** How long a log may wait for others to leave in the same write. Default 5 ms. */
  lingerMs?: number;
  /** Default: 3 retries, 100 ms to 2 s. A proxy keeps little: what cannot be sent soon is dropped and counted. */
  retry?: RetryOptions;
  breaker?: BreakerOptions;
  /** No answer for this long while requests are out: they count as failed attempts. Default 10 s. */
  timeoutMs?: number;
  onError?: (error: CollectorError) => void;
}

export interface PayloadLoggerStats {
  sent: number;
  /** Never sent: the queue was full, or the collector was down (the breaker was open). */
  dropped: number;
  /** Given up after retries, or refused by the collector. */
  failed: number;
}

interface Entry extends PipelinedRequest {
  collection: PayloadLogEvent['collection'];
  bytes: number;
  attempts: number;
  /** When a retry may leave (ms since the epoch). */
  due: number;
  /** Until it is first sent; then `wire` holds it, built once so that a retry resends the same bytes. */
  event: PayloadLogEvent | undefined;
}

type BreakerState = 'closed' | 'open' | 'half-open';

/** Header values the collector would refuse, or that would break the request apart. */
const unsafeValue = /[\r\n\0]/;

/**
 * Fire-and-forget delivery of payload logs: `log()` never waits, so a slow or absent collector cannot delay the
 * model's answers. Logs leave in pipelined batches after a short linger, off the answer path. A bounded queue caps
 * the memory they take. When the collector keeps failing, a circuit breaker stops sending for a while and drops
 * (and counts) what is logged meanwhile, then lets one log through to probe: a dead collector costs a counter
 * increment per log, not a connection attempt, a retry timer and an error.
 */
export class PayloadLogger {
  readonly stats: PayloadLoggerStats = { sent: 0, dropped: 0, failed: 0 };
  private readonly key: string;
  private readonly url: URL;
  private readonly paths: Record<PayloadLogEvent['collection'], string>;
  private readonly maxQueue: number;
  private readonly maxQueueBytes: number;
  private readonly concurrency: number;
  private readonly depth: number;
  private readonly lingerMs: number;
  private readonly timeoutMs: number;
  private readonly retry: Required<RetryOptions>;
  private readonly breakerOptions: Required<BreakerOptions>;
  private readonly onError: ((error: CollectorError) => void) | undefined;
  private readonly connections: Array<PipelinedConnection<Entry>> = [];
  private readonly queue: Entry[] = [];
  private retrying: Entry[] = [];
  private inFlight = 0;
  private queuedBytes = 0;
  private idle: Array<() => void> = [];
  private pumpTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private breaker: BreakerState = 'closed';
  private failuresInARow = 0;
  private opensInARow = 0;
  private openUntil = 0;
  private probing = false;
  /** Logs lost while the breaker was open, not yet reported. */
  private unreportedDown = 0;
  private lastFailure = '';

  constructor(options: PayloadLoggerOptions) {
    this.url = new URL(options.deploymentUrl.replace(/\/+$/, ''));
    const base = this.url.pathname;
    this.paths = { request: `${base}/request`, response: `${base}/response` };
    this.key = options.key;
    this.maxQueue = options.maxQueue ?? 1000;
    this.maxQueueBytes = options.maxQueueBytes ?? 64 * 1024 * 1024;
    this.concurrency = Math.max(1, options.concurrency ?? 8);
    this.depth = Math.max(1, options.pipelineDepth ?? 64);
    this.lingerMs = options.lingerMs ?? 5;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retry = { ...defaultRetry, maxRetries: 3, baseDelayMs: 100, maxDelayMs: 2000, ...options.retry };
    this.breakerOptions = { failures: 3, cooldownMs: 1000, maxCooldownMs: 30_000, ...options.breaker };
    this.onError = options.onError;
  }

  /** Events queued, waiting to retry, or being sent. */
  get pending(): number {
    return this.queue.length + this.retrying.length + this.inFlight;
  }

  /** True while the breaker is open: the collector kept failing and logs are dropped unsent. */
  get collectorDown(): boolean {
    return this.breaker === 'open';
  }

  /** Queues the event; false when it was dropped (queue full, collector down, or closed). */
  log(event: PayloadLogEvent): boolean {
    if (this.breaker === 'open') {
      if (Date.now() < this.openUntil) {
        this.stats.dropped++;
        this.unreportedDown++;
        return false;
      }
      this.halfOpen();
    }
    if (this.closing) {
      this.stats.dropped++;
      this.report(new CollectorError('Closed', `the payload logger is closed: a ${event.collection} log was dropped`, { dropped: 1 }));
      return false;
    }
    if (this.pending >= this.maxQueue || this.queuedBytes + event.body.length > this.maxQueueBytes) {
      this.stats.dropped++;
      this.report(new CollectorError('QueueFull', `payload log queue is full: a ${event.collection} log was dropped`, { dropped: 1 }));
      return false;
    }
    this.queue.push({ collection: event.collection, bytes: event.body.length, attempts: 0, due: 0, wire: [], event });
    this.queuedBytes += event.body.length;
    this.schedule();
    return true;
  }

  /** Sends what is queued now, and resolves once nothing is queued, waiting to retry, or being sent. */
  flush(): Promise<void> {
    this.pump();
    this.reportDown();
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Waits up to `timeoutMs` for what is queued, then drops the rest and frees the sockets. */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, options.timeoutMs ?? 5000)));
    try {
      await Promise.race([this.flush(), gaveUp]);
    } finally {
      clearTimeout(timer);
      this.closing = true;
      clearTimeout(this.pumpTimer);
      clearTimeout(this.retryTimer);
      const left = [...this.queue.splice(0), ...this.retrying.splice(0)];
      for (const connection of this.connections.splice(0)) {
        const cut = connection.inFlight.splice(0);
        this.inFlight -= cut.length;
        left.push(...cut);
        connection.destroy();
      }
      this.retrying = [];
      for (const entry of left) this.lose(entry);
      const lost = left.length;
      if (lost > 0) this.report(new CollectorError('SendFailed', `stopped before ${lost} payload log(s) could be sent`, { dropped: lost }));
      this.reportDown();
      this.settle();
    }
  }

  /** The request as it goes on the wire. */
  private serialize(event: PayloadLogEvent): Buffer[] {
    let head = `POST ${this.paths[event.collection]} HTTP/1.1\r\nhost: ${this.url.host}\r\ncontent-length: ${event.body.length}\r\nx-mdc-key: ${this.key}\r\n`;
    for (const name in event.headers) {
      const value = event.headers[name]!;
      if (!unsafeValue.test(value)) head += `${name}: ${value}\r\n`;
    }
    const headBytes = Buffer.from(`${head}\r\n`, 'latin1');
    return event.body.length === 0 ? [headBytes] : [headBytes, event.body];
  }

  /** Lets logs gather for `lingerMs` so that they leave together. */
  private schedule(): void {
    if (this.pumpTimer !== undefined) return;
    this.pumpTimer = setTimeout(() => this.pump(), this.lingerMs);
    this.pumpTimer.unref();
  }

  private pump(): void {
    clearTimeout(this.pumpTimer);
    this.pumpTimer = undefined;
    if (this.breaker === 'open' || this.closing) return;
    while (this.queue.length > 0) {
      if (this.breaker === 'half-open' && this.probing) return;
      const connection = this.pick();
      if (!connection) return;
      const room = this.breaker === 'half-open' ? 1 : this.depth - connection.inFlight.length;
      const batch = this.queue.splice(0, room);
      if (this.breaker === 'half-open') this.probing = true;
      for (const entry of batch) {
        if (entry.event) {
          entry.wire = this.serialize(entry.event);
          entry.event = undefined;
        }
      }
      this.inFlight += batch.length;
      connection.send(batch);
    }
  }

  /** An idle connection, else a new one, else the least busy one with room; sequential servers get spread. */
  private pick(): PipelinedConnection<Entry> | undefined {
    let best: PipelinedConnection<Entry> | undefined;
    for (const connection of this.connections) {
      if (!connection.open) continue;
      if (connection.inFlight.length === 0) return connection;
      if (connection.inFlight.length < this.depth && (!best || connection.inFlight.length < best.inFlight.length)) best = connection;
    }
    if (this.connections.length < this.concurrency) {
      const connection: PipelinedConnection<Entry> = new PipelinedConnection<Entry>(
        { url: this.url, timeoutMs: this.timeoutMs, idleMs: 2000 },
        {
          answered: (entry, answer) => this.answered(entry, answer),
          lost: (entries, error) => this.lost(entries, error),
          closed: () => {
            const at = this.connections.indexOf(connection);
            if (at !== -1) this.connections.splice(at, 1);
            if (this.queue.length > 0) this.schedule();
          },
        },
      );
      this.connections.push(connection);
      return connection;
    }
    return best;
  }

  private answered(entry: Entry, answer: HttpAnswer): void {
    this.inFlight--;
    if (answer.status >= 200 && answer.status < 300) {
      this.stats.sent++;
      this.succeeded();
    } else if (isRetryableStatus(answer.status)) {
      this.failedAttempt(describeAnswer(answer), retryAfterMs(answer));
      this.retryOrLose(entry, describeAnswer(answer), answer.status);
    } else {
      // The collector is up and has answered: a refusal is about this log, not an outage.
      this.succeeded();
      this.lose(entry);
      this.report(new CollectorError('Rejected', `the collector refused a ${entry.collection} log: ${describeAnswer(answer)}`, { dropped: 1, status: answer.status }));
    }
    this.settle();
  }

  private lost(entries: Entry[], error: Error | undefined): void {
    this.inFlight -= entries.length;
    const reason = error?.message ?? 'the collector closed the connection as it had said';
    if (error) this.failedAttempt(reason, undefined);
    // A probe cut off by a close the server had announced proves nothing: let the next one go.
    else if (this.breaker === 'half-open') this.probing = false;
    for (const entry of entries) this.retryOrLose(entry, reason, undefined);
    this.settle();
  }

  private retryOrLose(entry: Entry, reason: string, status: number | undefined): void {
    entry.attempts++;
    if (this.breaker === 'open') {
      // Counted with the rest of the outage, in one report, rather than one error each.
      this.lose(entry);
      this.unreportedDown++;
      return;
    }
    if (entry.attempts > this.retry.maxRetries) {
      this.lose(entry);
      this.report(
        new CollectorError('SendFailed', `gave up sending a ${entry.collection} log after ${entry.attempts} attempt(s): ${reason}`, {
          dropped: 1,
          ...(status !== undefined ? { status } : {}),
        }),
      );
      return;
    }
    entry.due = Date.now() + backoffMs(entry.attempts - 1, this.retry);
    this.retrying.push(entry);
    this.armRetry();
  }

  private lose(entry: Entry): void {
    this.stats.failed++;
    this.queuedBytes -= entry.bytes;
  }

  private armRetry(): void {
    if (this.retryTimer !== undefined || this.retrying.length === 0) return;
    const next = Math.min(...this.retrying.map((e) => e.due));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const now = Date.now();
      const ready = this.retrying.filter((e) => e.due <= now);
      this.retrying = this.retrying.filter((e) => e.due > now);
      this.queue.unshift(...ready);
      this.pump();
      this.armRetry();
    }, Math.max(0, next - Date.now()));
    this.retryTimer.unref();
  }

  private succeeded(): void {
    this.failuresInARow = 0;
    if (this.breaker === 'half-open') {
      this.breaker = 'closed';
      this.opensInARow = 0;
      this.probing = false;
      if (this.queue.length > 0) this.schedule();
    }
  }

  private failedAttempt(reason: string, retryAfter: number | undefined): void {
    this.lastFailure = reason;
    this.failuresInARow++;
    if (this.breaker === 'open') return;
    if (this.breaker === 'half-open' || this.failuresInARow >= this.breakerOptions.failures) this.open(retryAfter);
  }

  private open(retryAfter: number | undefined): void {
    this.breaker = 'open';
    this.probing = false;
    this.opensInARow++;
    const { cooldownMs, maxCooldownMs } = this.breakerOptions;
    const pause = Math.min(maxCooldownMs, Math.max(retryAfter ?? 0, cooldownMs * 2 ** (this.opensInARow - 1) * (0.5 + Math.random() / 2)));
    this.openUntil = Date.now() + pause;
    const shed = [...this.queue.splice(0), ...this.retrying.splice(0)];
    this.retrying = [];
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const entry of shed) this.queuedBytes -= entry.bytes;
    this.stats.dropped += shed.length;
    this.unreportedDown += shed.length;
    this.reportDown(`the collector failed ${this.failuresInARow} time(s) in a row, so payload logs are dropped for ${Math.round(pause)} ms, then one probes`);
  }

  private halfOpen(): void {
    this.breaker = 'half-open';
    this.reportDown();
  }

  private reportDown(opening?: string): void {
    if (this.unreportedDown === 0 && !opening) return;
    const dropped = this.unreportedDown;
    this.unreportedDown = 0;
    const what = opening ?? 'the collector was down';
    this.report(new CollectorError('CollectorDown', `${what}: ${dropped} payload log(s) lost; latest failure: ${this.lastFailure}`, { dropped }));
  }

  /** Wakes `flush()` callers once nothing is left. */
  private settle(): void {
    if (this.queue.length > 0 && this.breaker !== 'open') this.schedule();
    if (this.pending !== 0) return;
    this.reportDown();
    const waiters = this.idle;
    this.idle = [];
    for (const resolve of waiters) resolve();
  }

  private report(error: CollectorError): void {
    try {
      this.onError?.(error);
    } catch {
      // a throwing handler must not break the proxy
    }
  }
}
