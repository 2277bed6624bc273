import type http from 'node:http';
import type net from 'node:net';
import { buildConnector, errors, Pool, type Dispatcher } from 'undici';
import { CollectorError } from '../typescript/src/errors';
import { backoffMs, defaultRetry, describeAnswer, isRetryableStatus, maxAnswerBytes, retryAfterMs, type HttpAnswer, type RetryOptions } from '../typescript/src/transport';

/** One HTTP body the model received or returned, with the payload-logging headers that describe it. */
export interface PayloadLogEvent {
  collection: 'request' | 'response';
  body: Buffer;
  /**
   * By name, or as a flat `[name, value, ...]` list. A list becomes the logger's: it is sent as it is when it
   * starts with `x-mdc-key` (the log worker's do, so that a log's headers are built once), else the key is put first.
   */
  headers: Record<string, string> | string[];
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
  /**
   * Logs gather this long before they leave together, in one write per connection. Default 20 ms: at 1,000
   * req/s a batch of ~40 logs per write and per wake-up of the collector, rather than ~10 at 5 ms.
   */
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

interface Entry {
  event: PayloadLogEvent;
  /** What is sent: the key and the event's headers whose values the collector would take. Built once, retries included. */
  headers: string[];
  attempts: number;
  /** When a retry may leave (ms since the epoch). */
  due: number;
  /** Its neighbours in `InFlight` while it is out; null otherwise. */
  prev?: Entry | null;
  next?: Entry | null;
  out?: boolean;
}

/**
 * The entries handed to the pool: a list threaded through them, each link cleared when it leaves. A `Set` (as
 * this was) rehashes into a new table each time it grows or shrinks, several times for each batch of logs that
 * goes out and comes back, and V8 keeps each old table pointing at the next one (for iterators): once one of them
 * was in the old generation, the tables after it and the entries they had held survived the log worker's
 * scavenges, and were promoted, until a full collection. With the Set, its scavenges promoted ~885 KB each
 * (4.5 ms average pause, and mark-compacts); with this list, 6 KB (1.4 ms), measured with --trace-gc-nvp.
 */
class InFlight {
  size = 0;
  private head: Entry | null = null;

  add(entry: Entry): void {
    entry.out = true;
    entry.prev = null;
    entry.next = this.head;
    if (this.head) this.head.prev = entry;
    this.head = entry;
    this.size++;
  }

  /** False when the entry was not out (settled already, or taken by `drain`). */
  delete(entry: Entry): boolean {
    if (!entry.out) return false;
    if (entry.prev) entry.prev.next = entry.next!;
    else this.head = entry.next!;
    if (entry.next) entry.next.prev = entry.prev;
    entry.out = false;
    entry.prev = entry.next = null;
    this.size--;
    return true;
  }

  /** Takes every entry out. */
  drain(): Entry[] {
    const all: Entry[] = [];
    while (this.head) {
      all.push(this.head);
      this.delete(this.head);
    }
    return all;
  }
}

type BreakerState = 'closed' | 'open' | 'half-open';

/** Header values the collector would refuse, or that would break the request apart. */
const unsafeValue = /[\r\n\0]/;

/**
 * Fire-and-forget delivery of payload logs: `log()` never waits, so a slow or absent collector cannot delay the
 * model's answers. Logs leave pipelined over a few keep-alive connections (an undici `Pool`). A bounded queue caps
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
  private readonly timeoutMs: number;
  private readonly lingerMs: number;
  private readonly retry: Required<RetryOptions>;
  private readonly breakerOptions: Required<BreakerOptions>;
  private readonly onError: ((error: CollectorError) => void) | undefined;
  private pool: Pool | undefined;
  /** The pool's open sockets, corked while a batch is handed over so that it leaves in one write each. */
  private readonly sockets = new Set<net.Socket>();
  private pumpTimer: NodeJS.Timeout | undefined;
  private readonly queue: Entry[] = [];
  private retrying: Entry[] = [];
  /** Handed to the pool and not yet settled; an entry taken out of it is no longer this request's to count. */
  private readonly inFlight = new InFlight();
  private queuedBytes = 0;
  private idle: Array<() => void> = [];
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
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.lingerMs = Math.max(0, options.lingerMs ?? 20);
    this.retry = { ...defaultRetry, maxRetries: 3, baseDelayMs: 100, maxDelayMs: 2000, ...options.retry };
    this.breakerOptions = { failures: 3, cooldownMs: 1000, maxCooldownMs: 30_000, ...options.breaker };
    this.onError = options.onError;
  }

  /** Events queued, waiting to retry, or being sent. */
  get pending(): number {
    return this.queue.length + this.retrying.length + this.inFlight.size;
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
    this.queue.push({ event, headers: this.headerList(event.headers), attempts: 0, due: 0, prev: null, next: null, out: false });
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
      clearTimeout(this.retryTimer);
      clearTimeout(this.pumpTimer);
      this.pumpTimer = undefined;
      const left = [...this.queue.splice(0), ...this.retrying.splice(0), ...this.inFlight.drain()];
      for (const entry of left) this.lose(entry);
      const lost = left.length;
      if (lost > 0) this.report(new CollectorError('SendFailed', `stopped before ${lost} payload log(s) could be sent`, { dropped: lost }));
      this.reportDown();
      this.settle();
      await this.dropPool();
    }
  }

  /** Lets logs gather for `lingerMs` so that they leave together: one write and one wake-up for many logs. */
  private schedule(): void {
    if (this.pumpTimer !== undefined) return;
    this.pumpTimer = setTimeout(() => {
      this.pumpTimer = undefined;
      this.pump();
    }, this.lingerMs);
    this.pumpTimer.unref();
  }

  /** Hands queued logs to the pool, as many as its connections can have out at once (one while probing). */
  private pump(): void {
    if (this.breaker === 'open' || this.closing) return;
    const room = this.breaker === 'half-open' ? (this.probing ? 0 : 1) : this.concurrency * this.depth - this.inFlight.size;
    const batch = this.queue.splice(0, room);
    if (batch.length === 0) return;
    if (this.breaker === 'half-open') this.probing = true;
    // undici writes each request on its own (cork, head, body, uncork), and on a keep-alive socket that has
    // gone idle it waits for the next turn (setImmediate) before writing. Corked until just after that turn,
    // the sockets send the batch in one writev each instead of one per log.
    const corked = [...this.sockets];
    for (const socket of corked) socket.cork();
    try {
      for (const entry of batch) this.send(entry);
    } finally {
      if (corked.length > 0) setImmediate(uncorkAll, corked);
    }
  }

  private createPool(): Pool {
    const connect = buildConnector({ timeout: this.timeoutMs });
    const sockets = this.sockets;
    return new Pool(this.url.origin, {
      connections: this.concurrency,
      pipelining: this.depth,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      // Closing idle connections well before the server would means a write never races the server's close.
      keepAliveTimeout: 2000,
      keepAliveMaxTimeout: 2000,
      connect: (options, callback) =>
        connect(options, (error, socket) => {
          if (socket) {
            sockets.add(socket as net.Socket);
            socket.once('close', () => sockets.delete(socket as net.Socket));
          }
          // The connector's callback type is a union of (error, null) and (null, socket): pass it on as it came.
          (callback as (error: Error | null, socket: net.Socket | null) => void)(error, socket as net.Socket | null);
        }),
    });
  }

  /** The key and the headers to send, as a flat list: a list from the caller is kept, not copied. */
  private headerList(headers: Record<string, string> | string[]): string[] {
    if (Array.isArray(headers)) {
      for (let i = headers.length - 1; i > 0; i -= 2) if (unsafeValue.test(headers[i]!)) headers.splice(i - 1, 2);
      if (headers[0] !== 'x-mdc-key') headers.unshift('x-mdc-key', this.key);
      return headers;
    }
    // By name, the event's own `x-mdc-key` (if any) replaced the logger's: as a list, the logger's is left out.
    const own = headers['x-mdc-key'];
    const list = own !== undefined && !unsafeValue.test(own) ? [] : ['x-mdc-key', this.key];
    for (const name in headers) {
      const value = headers[name]!;
      if (!unsafeValue.test(value)) list.push(name, value);
    }
    return list;
  }

  private send(entry: Entry): void {
    const { event, headers } = entry;
    this.pool ??= this.createPool();
    this.inFlight.add(entry);
    // `dispatch` with a small handler rather than `request`: no promise, no body stream, no async iterator per
    // log, and the answer's headers stay raw unless the answer is an error worth reading.
    this.pool.dispatch(
      {
        path: this.paths[event.collection],
        method: 'POST',
        headers,
        body: event.body,
        // undici pipelines only idempotent, non-blocking requests. A log resent after a dropped connection may
        // be stored twice, which retrying it would risk anyway.
        idempotent: true,
        blocking: false,
      },
      new LogSend(this, entry),
    );
  }

  /** A `LogSend` heard back: the entry is this request's to count unless `close()` or the breaker took it. */
  settled(entry: Entry, answer: HttpAnswer | undefined, error: Error | undefined): void {
    if (!this.inFlight.delete(entry)) return;
    if (answer) this.answered(entry, answer);
    else this.lost(entry, error!);
  }

  /** Frees the sockets, failing what the pool still holds: its entries have been taken out of `inFlight`. */
  private async dropPool(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.destroy().catch(() => undefined);
  }

  private answered(entry: Entry, answer: HttpAnswer): void {
    const { collection } = entry.event;
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
      this.report(new CollectorError('Rejected', `the collector refused a ${collection} log: ${describeAnswer(answer)}`, { dropped: 1, status: answer.status }));
    }
    this.settle();
  }

  private lost(entry: Entry, error: Error): void {
    if (error instanceof errors.InvalidArgumentError || error instanceof errors.NotSupportedError) {
      // undici refused the request before sending it (a header it will not send, say): about this log, not an outage.
      this.lose(entry);
      this.report(new CollectorError('Rejected', `a ${entry.event.collection} log could not be sent: ${error.message}`, { dropped: 1 }));
    } else {
      const reason = error instanceof errors.HeadersTimeoutError || error instanceof errors.BodyTimeoutError ? `no answer from ${this.url.host} within ${this.timeoutMs} ms` : error.message;
      this.failedAttempt(reason, undefined);
      this.retryOrLose(entry, reason, undefined);
    }
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
        new CollectorError('SendFailed', `gave up sending a ${entry.event.collection} log after ${entry.attempts} attempt(s): ${reason}`, {
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
    this.queuedBytes -= entry.event.body.length;
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
      this.pump();
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
    for (const entry of shed) this.queuedBytes -= entry.event.body.length;
    this.stats.dropped += shed.length;
    this.unreportedDown += shed.length;
    // undici resends what a dropped connection left unanswered, on new connections: the breaker means to stop.
    for (const entry of this.inFlight.drain()) {
      this.lose(entry);
      this.unreportedDown++;
    }
    void this.dropPool();
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
    // What was logged meanwhile keeps lingering, so that it leaves with the logs that follow it.
    if (this.queue.length > 0) this.schedule();
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

function uncorkAll(sockets: net.Socket[]): void {
  for (const socket of sockets) socket.uncork();
}

/** One log's request: keeps the status, and headers and body only of an answer that is not a 2xx. */
class LogSend implements Dispatcher.DispatchHandler {
  private status = 0;
  private rawHeaders: Buffer[] | undefined;
  private chunks: Buffer[] | undefined;
  private size = 0;
  private done = false;

  constructor(
    private readonly logger: PayloadLogger,
    private readonly entry: Entry,
  ) {}

  onConnect(): void {}

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    this.status = statusCode;
    if (statusCode < 200 || statusCode >= 300) {
      this.rawHeaders = rawHeaders;
      this.chunks = [];
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.chunks && this.size < maxAnswerBytes) this.chunks.push(chunk);
    this.size += chunk.length;
    return true;
  }

  onComplete(): void {
    if (this.done) return;
    this.done = true;
    const answer: HttpAnswer = this.chunks
      ? { status: this.status, headers: parseRawHeaders(this.rawHeaders), body: Buffer.concat(this.chunks).toString('utf8') }
      : { status: this.status, headers: {}, body: '' };
    this.logger.settled(this.entry, answer, undefined);
  }

  onError(error: Error): void {
    if (this.done) return;
    this.done = true;
    // undici may call this before `dispatch` returns (a header it refuses): settle on a later tick, not inside `send`.
    queueMicrotask(() => this.logger.settled(this.entry, undefined, error));
  }
}

function parseRawHeaders(raw: Buffer[] | undefined): http.IncomingHttpHeaders {
  const headers: http.IncomingHttpHeaders = {};
  if (!raw) return headers;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    if (headers[name] === undefined) headers[name] = raw[i + 1]!.toString('latin1');
  }
  return headers;
}
