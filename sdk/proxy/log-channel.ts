import type { IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { CollectorError } from '../typescript/src/errors';
import type { FromLogWorker, LogState, LogWorkerData, ToLogWorker } from './log-records';
import type { PayloadLoggerOptions, PayloadLoggerStats } from './payload-logger';

/** Something with logs to hand over: asked once the batch leaves, it adds its ready ones and says how many. */
export interface LogSource {
  take(batch: BatchBuilder): number;
}

/** One batch of logs as it gathers (see `LogBatch`); the bodies' bytes are copied into one buffer when it leaves. */
export class BatchBuilder {
  readonly ids: string[] = [];
  readonly methods: string[] = [];
  readonly urls: string[] = [];
  readonly headers: IncomingHttpHeaders[] = [];
  readonly types: (string | undefined)[] = [];
  readonly numbers: number[] = [];
  private readonly parts: Buffer[] = [];
  private length = 0;

  /** Adds a body's kept chunks and says where they start. */
  body(chunks: readonly Buffer[]): number {
    const at = this.length;
    for (const chunk of chunks) {
      this.parts.push(chunk);
      this.length += chunk.length;
    }
    return at;
  }

  /** One exchange; the numbers in the order of `at` (log-records.ts). */
  add(
    id: string,
    method: string,
    url: string,
    headers: IncomingHttpHeaders,
    type: string | undefined,
    requestAt: number,
    requestKept: number,
    requestTotal: number,
    responseAt: number,
    responseKept: number,
    responseTotal: number,
    status: number,
    durationMs: number,
  ): void {
    this.ids.push(id);
    this.methods.push(method);
    this.urls.push(url);
    this.headers.push(headers);
    this.types.push(type);
    this.numbers.push(requestAt, requestKept, requestTotal, responseAt, responseKept, responseTotal, status, durationMs);
  }

  /**
   * The bodies in a fresh buffer of their own, to be moved to the worker, not copied: a pooled or sliced Buffer
   * would move (or copy) all of the memory it sits in.
   */
  bytes(): ArrayBuffer {
    const out = new ArrayBuffer(this.length);
    const view = new Uint8Array(out);
    let at = 0;
    for (const part of this.parts) {
      view.set(part, at);
      at += part.length;
    }
    return out;
  }
}

export interface LogChannelOptions extends Omit<PayloadLoggerOptions, 'onError'> {
  modelVersion?: string;
  /** How long sources gather before they leave in one message. Default 20 ms. */
  batchMs?: number;
  onError?: (error: CollectorError) => void;
}

interface Waiter {
  resolve(state: LogState): void;
}

/**
 * The proxy's side of its payload logs: exchanges that have something to log are gathered here and handed to a
 * worker thread in one message every `batchMs`, and the worker builds the logs and sends them (a `PayloadLogger`).
 * Building and sending logs, and the garbage they leave, then cost the thread that answers nothing but a copy of
 * the bodies. `stats`, `pending` and `collectorDown` are the worker's as of its latest message; `state()` and
 * `flush()` ask it.
 */
export class LogChannel {
  private readonly worker: Worker | undefined;
  private sources: LogSource[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly batchMs: number;
  /** Logs handed over and not yet taken by the worker, at most `maxUntaken`: a stalled worker cannot take the memory. */
  private untaken = 0;
  private readonly maxUntaken: number;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();
  private closed = false;
  private gone: Error | undefined;
  private readonly onError: ((error: CollectorError) => void) | undefined;
  private workerStats: PayloadLoggerStats = { sent: 0, dropped: 0, failed: 0 };
  /** Logs this thread dropped: the worker was gone, stalled, or the channel closed. */
  private droppedHere = 0;
  pending = 0;
  collectorDown = false;

  constructor(options: LogChannelOptions) {
    const { modelVersion, batchMs, onError, ...logger } = options;
    this.batchMs = batchMs ?? 20;
    this.maxUntaken = 2 * Math.max(options.maxQueue ?? 1000, 1000);
    this.onError = onError;
    // Logs arrive in batches already: the worker sends each one as it comes.
    const data: LogWorkerData = { logger: { lingerMs: 0, ...logger }, ...(modelVersion ? { modelVersion } : {}) };
    // Under tsx or vitest this file is TypeScript, and so is the worker's: it is then loaded through tsx's require hook.
    const typescript = __filename.endsWith('.ts');
    const file = path.join(__dirname, `log-worker.${typescript ? 'ts' : 'js'}`);
    try {
      this.worker = typescript
        ? new Worker(`require('tsx/cjs'); require(${JSON.stringify(file)});`, { eval: true, workerData: data })
        : new Worker(file, { workerData: data });
    } catch (error) {
      this.gone = error as Error;
      return;
    }
    this.worker.on('message', (message: FromLogWorker) => this.heard(message));
    const fail = (error: Error) => {
      if (this.gone) return;
      this.gone = error;
      // What the worker held is lost with it: count it with the rest.
      this.lose(this.untaken + this.pending, `the payload log worker stopped: ${error.message}`);
      this.untaken = 0;
      this.pending = 0;
      for (const waiter of this.waiting.values()) waiter.resolve(this.known);
      this.waiting.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`exited with ${code}`)));
    // Held only while a question is out, so the worker never keeps the proxy's process alive by itself (after the
    // listeners: adding a 'message' listener refs it again).
    this.worker.unref();
  }

  get stats(): PayloadLoggerStats {
    return { sent: this.workerStats.sent, dropped: this.workerStats.dropped + this.droppedHere, failed: this.workerStats.failed };
  }

  private get known(): LogState {
    return { stats: this.stats, pending: this.pending, collectorDown: this.collectorDown };
  }

  /** The source is asked for its logs when the current batch leaves, a few ms from now. */
  add(source: LogSource): void {
    this.sources.push(source);
    if (this.timer === undefined) {
      this.timer = setTimeout(handOver, this.batchMs, this);
      this.timer.unref();
    }
  }

  /** Moves what has gathered to the worker. */
  handOver(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const sources = this.sources;
    if (sources.length === 0) return;
    this.sources = [];
    const batch = new BatchBuilder();
    let logs = 0;
    for (const source of sources) logs += source.take(batch);
    if (logs === 0) return;
    if (this.closed || this.gone || this.untaken >= this.maxUntaken) {
      const why = this.closed ? 'the proxy is closing' : this.gone ? `the payload log worker stopped: ${this.gone.message}` : 'the payload log worker is behind';
      this.lose(logs, `${why}: ${logs} payload log(s) dropped`, this.closed ? 'Closed' : 'QueueFull');
      return;
    }
    this.untaken += logs;
    const bytes = batch.bytes();
    const { ids, methods, urls, headers, types, numbers } = batch;
    this.worker!.postMessage({ kind: 'logs', ids, methods, urls, headers, types, numbers, bytes } satisfies ToLogWorker, [bytes]);
  }

  /** The worker's state once it has taken what was handed over until now. */
  state(): Promise<LogState> {
    this.handOver();
    return this.ask((id) => ({ kind: 'state', id }));
  }

  /** Resolves once the worker has sent (or given up on) every log handed over until now. */
  async flush(): Promise<void> {
    this.handOver();
    await this.ask((id) => ({ kind: 'flush', id }));
  }

  /** Hands over what is left, lets the worker deliver it (up to `timeoutMs`), and stops the worker. */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.closed) return;
    this.handOver();
    this.closed = true;
    await this.ask((id) => ({ kind: 'close', id, ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) }));
    await this.worker?.terminate();
  }

  private ask(message: (id: number) => ToLogWorker): Promise<LogState> {
    if (this.gone || !this.worker) return Promise.resolve(this.known);
    const id = this.nextId++;
    if (this.waiting.size === 0) this.worker.ref();
    this.worker.postMessage(message(id));
    return new Promise((resolve) => this.waiting.set(id, { resolve }));
  }

  private heard(message: FromLogWorker): void {
    this.workerStats = message.stats;
    this.pending = message.pending;
    this.collectorDown = message.collectorDown;
    this.untaken -= message.took;
    for (const error of message.errors) {
      this.report(new CollectorError(error.code, error.message, { dropped: error.dropped, ...(error.status !== undefined ? { status: error.status } : {}) }));
    }
    if (message.reply === undefined) return;
    const waiter = this.waiting.get(message.reply);
    if (!waiter) return;
    this.waiting.delete(message.reply);
    if (this.waiting.size === 0) this.worker!.unref();
    waiter.resolve(this.known);
  }

  private lose(logs: number, message: string, code: 'QueueFull' | 'Closed' | 'SendFailed' = 'SendFailed'): void {
    if (logs === 0) return;
    this.droppedHere += logs;
    this.report(new CollectorError(code, message, { dropped: logs }));
  }

  private report(error: CollectorError): void {
    try {
      this.onError?.(error);
    } catch {
      // a throwing handler must not break the proxy
    }
  }
}

function handOver(channel: LogChannel): void {
  channel.handOver();
}
