import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool, type Dispatcher } from 'undici';
import { deploymentUrl } from '../typescript/src/config';
import type { CollectorError } from '../typescript/src/errors';
import type { RetryOptions } from '../typescript/src/transport';
import { LogChannel, type BatchBuilder, type LogSource } from './log-channel';
import { hopByHop, proxyAgent, single } from './log-records';
import type { BreakerOptions } from './payload-logger';

export { proxyAgent };

export interface PayloadProxyOptions {
  /** The model server, e.g. `http://127.0.0.1:5001`. Paths are appended to it. */
  target: string;
  /** The collector: its base URL with `endpoint` and `deployment`, or `<base>/api/collect/<endpoint>/<deployment>`. */
  collector: string;
  endpoint?: string;
  deployment?: string;
  /** The deployment's ingest key. */
  key: string;
  /** Bytes of each body that are logged; the rest still streams through. Default 1 MiB. */
  maxLoggedBytes?: number;
  modelVersion?: string;
  maxQueue?: number;
  maxQueueBytes?: number;
  concurrency?: number;
  retry?: RetryOptions;
  breaker?: BreakerOptions;
  onError?: (error: CollectorError) => void;
}

/** Header names that the `Connection` header lists: hop-by-hop too. Undefined for the usual keep-alive or close. */
function connectionNamed(connection: string | undefined): string[] | undefined {
  return connection && !/^\s*(keep-alive|close)\s*$/i.test(connection) ? connection.split(',').map((h) => h.trim().toLowerCase()) : undefined;
}

/** What is forwarded to the model: the client's headers but the hop-by-hop ones, and `expect`, which this server has answered. */
function forwardedHeaders(headers: http.IncomingHttpHeaders): Record<string, string | string[]> {
  const named = connectionNamed(single(headers.connection));
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !hopByHop.has(name) && name !== 'expect' && !named?.includes(name)) out[name] = value;
  }
  return out;
}

/** Keeps the first `limit` bytes of a stream that is passing through, and counts the rest. */
class Capture {
  readonly chunks: Buffer[] = [];
  kept = 0;
  total = 0;

  constructor(private readonly limit: number) {}

  add(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.kept >= this.limit) return;
    const part = this.kept + chunk.length <= this.limit ? chunk : chunk.subarray(0, this.limit - this.kept);
    this.chunks.push(part);
    this.kept += part.length;
  }
}

/**
 * A reverse proxy in front of any model server that logs every request and response, failed ones included,
 * to the `request` and `response` collections under one correlation id. Bodies stream through as they come.
 * This thread only forwards and keeps the first bytes of each body: a worker thread builds and sends the logs
 * (`LogChannel`), so the collector never delays an answer and the logs' garbage never pauses one.
 */
export class PayloadProxy {
  readonly server: http.Server;
  readonly logger: LogChannel;
  private readonly target: URL;
  private readonly pool: Pool;
  readonly maxLoggedBytes: number;
  private readonly targetPath: string;

  constructor(options: PayloadProxyOptions) {
    this.target = new URL(options.target);
    if (this.target.protocol !== 'http:' && this.target.protocol !== 'https:') throw new TypeError(`target "${options.target}" is not http(s)`);
    // undici rather than http.request: less CPU per request on the thread that answers (a bare proxy at 1000 req/s
    // took 25% of a core through it, 30% through http.request). As many connections as requests in flight, and no
    // timeouts: a model may think, or stream, for as long as it needs.
    this.pool = new Pool(this.target.origin, { headersTimeout: 0, bodyTimeout: 0 });
    this.maxLoggedBytes = options.maxLoggedBytes ?? 1024 * 1024;
    this.targetPath = this.target.pathname.replace(/\/+$/, '');
    this.logger = new LogChannel({
      deploymentUrl: deploymentUrl({ url: options.collector, ...(options.endpoint ? { endpoint: options.endpoint } : {}), ...(options.deployment ? { deployment: options.deployment } : {}) }, {}),
      key: options.key,
      ...(options.modelVersion ? { modelVersion: options.modelVersion } : {}),
      ...(options.maxQueue !== undefined ? { maxQueue: options.maxQueue } : {}),
      ...(options.maxQueueBytes !== undefined ? { maxQueueBytes: options.maxQueueBytes } : {}),
      ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
      ...(options.retry ? { retry: options.retry } : {}),
      ...(options.breaker ? { breaker: options.breaker } : {}),
      ...(options.onError ? { onError: options.onError } : {}),
    });
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  /** Starts listening; resolves with the port (0 picks a free one). */
  listen(port: number, host = '127.0.0.1'): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /** Stops accepting, lets the logger deliver what it holds (up to `timeoutMs`), and frees the sockets. */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    await closed;
    await this.pool.destroy().catch(() => undefined);
    await this.logger.close(options);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const requestId = single(req.headers['x-request-id']) || randomUUID();
    const exchange = new Exchange(this.logger, req, requestId, this.maxLoggedBytes);
    const forwarded = forwardedHeaders(req.headers);
    forwarded['host'] = this.target.host;
    forwarded['x-request-id'] = requestId;
    const prior = single(req.headers['x-forwarded-for']);
    const client = req.socket.remoteAddress ?? '';
    forwarded['x-forwarded-for'] = prior ? `${prior}, ${client}` : client;
    const forward = new Forward(this, res, exchange, requestId);
    const request: Dispatcher.DispatchOptions = { path: this.targetPath + (req.url ?? '/'), method: (req.method ?? 'GET') as Dispatcher.HttpMethod, headers: forwarded, body: null };
    const length = req.headers['content-length'];
    if (req.headers['transfer-encoding'] === undefined && (length === undefined || Number(length) <= wholeBodyBytes)) {
      // A small body (most scoring requests) has come with the head: read it whole and send it in the request's
      // one write, without undici's stream machinery. No Content-Length nor Transfer-Encoding: no body (RFC 9112 §6.3).
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        exchange.requestBody.add(chunk);
      });
      req.on('end', () => {
        exchange.requestEnded();
        if (length !== undefined) request.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        if (!forward.aborted) this.pool.dispatch(request, forward);
      });
    } else {
      req.on('data', (chunk: Buffer) => exchange.requestBody.add(chunk));
      req.on('end', () => exchange.requestEnded());
      // Held until undici reads it (it resumes the stream once it writes the body): chunks that flowed before
      // would reach the log and not the model.
      req.pause();
      request.body = req;
      this.pool.dispatch(request, forward);
    }
    // A client that goes away before the end of the answer must not leave the model request running.
    res.on('close', () => {
      if (!res.writableFinished) forward.abort();
    });
  }

  /** What the client gets when the model server cannot be reached. */
  unreachable(error: Error): Buffer {
    return Buffer.from(JSON.stringify({ error: { code: 'ModelUnreachable', message: `the model server at ${this.target.origin} did not answer: ${error.message}` } }));
  }
}

/** Request bodies up to this size, with a Content-Length, are read whole before they are forwarded. */
const wholeBodyBytes = 64 * 1024;

/** The model's answer, streamed to the client as it comes, its first bytes kept for the log. */
class Forward implements Dispatcher.DispatchHandler {
  private status = 0;
  private contentType: string | undefined;
  private body: Capture | undefined;
  private aborter: ((reason?: Error) => void) | undefined;
  private resume: (() => void) | undefined;
  aborted = false;

  constructor(
    private readonly proxy: PayloadProxy,
    private readonly res: http.ServerResponse,
    private readonly exchange: Exchange,
    private readonly requestId: string,
  ) {}

  /** The client went away first: logged as 499 (nginx's "client closed request"), with what had come of the answer. */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.aborter?.(new Error('the client went away'));
    this.exchange.answered(499, this.contentType, this.body ?? new Capture(0));
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.aborter = abort;
    if (this.aborted) abort(new Error('the client went away'));
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText?: string): boolean {
    // 1xx answers (100 Continue) are this hop's: the client has had its own.
    if (status < 200) return true;
    this.status = status;
    let named: string[] | undefined;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      if (rawHeaders[i]!.length === 10 && rawHeaders[i]!.toString('latin1').toLowerCase() === 'connection') named = connectionNamed(rawHeaders[i + 1]!.toString('latin1'));
    }
    const headers: string[] = [];
    let hasRequestId = false;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!.toString('latin1');
      const lower = name.toLowerCase();
      if (hopByHop.has(lower) || named?.includes(lower)) continue;
      const value = rawHeaders[i + 1]!.toString('latin1');
      if (lower === 'x-request-id') hasRequestId = true;
      else if (lower === 'content-type' && this.contentType === undefined) this.contentType = value;
      headers.push(name, value);
    }
    if (!hasRequestId) headers.push('x-request-id', this.requestId);
    this.res.writeHead(status, statusText || undefined, headers);
    this.body = new Capture(this.proxy.maxLoggedBytes);
    this.resume = resume;
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.body!.add(chunk);
    if (this.res.write(chunk)) return true;
    // undici holds the model's answer until the client has taken what was written.
    this.res.once('drain', this.resume!);
    return false;
  }

  onComplete(): void {
    this.res.end();
    this.exchange.answered(this.status, this.contentType, this.body!);
  }

  onError(error: Error): void {
    const { res } = this;
    if (res.headersSent || this.aborted) {
      res.destroy();
      return;
    }
    const body = new Capture(this.proxy.maxLoggedBytes);
    const bytes = this.proxy.unreachable(error);
    body.add(bytes);
    res.writeHead(502, { 'content-type': 'application/json', 'x-request-id': this.requestId });
    res.end(bytes);
    this.exchange.answered(502, 'application/json', body);
  }
}

/**
 * One request passing through: what its two logs need, gathered on the way and handed to the log worker. It keeps
 * what the logs need of the request, not the request.
 */
class Exchange implements LogSource {
  private readonly started = performance.now();
  private readonly method: string;
  private readonly url: string;
  private readonly headers: http.IncomingHttpHeaders;
  readonly requestBody: Capture;
  private requestDone = false;
  private requestTaken = false;
  private status = 0;
  private durationMs = 0;
  private responseType: string | undefined;
  private responseBody: Capture | undefined;
  private responseTaken = false;
  private queued = false;

  constructor(
    private readonly channel: LogChannel,
    req: http.IncomingMessage,
    private readonly requestId: string,
    maxLoggedBytes: number,
  ) {
    this.method = req.method ?? 'GET';
    this.url = req.url ?? '/';
    this.headers = req.headers;
    this.requestBody = new Capture(maxLoggedBytes);
  }

  requestEnded(): void {
    this.requestDone = true;
    this.ready();
  }

  /** The answer has been handed to the client. */
  answered(status: number, contentType: string | undefined, body: Capture): void {
    if (this.status !== 0) return;
    this.durationMs = performance.now() - this.started;
    this.status = status;
    this.responseType = contentType;
    this.responseBody = body;
    this.ready();
  }

  private ready(): void {
    if (this.queued) return;
    this.queued = true;
    this.channel.add(this);
  }

  take(batch: BatchBuilder): number {
    this.queued = false;
    let requestAt = -1;
    let responseAt = -1;
    // An answer that came before the request's end is logged with what had been read of the request.
    if (!this.requestTaken && (this.requestDone || this.responseBody)) {
      this.requestTaken = true;
      requestAt = batch.body(this.requestBody.chunks);
    }
    const response = this.responseBody;
    if (response && !this.responseTaken) {
      this.responseTaken = true;
      responseAt = batch.body(response.chunks);
    }
    if (requestAt < 0 && responseAt < 0) return 0;
    const request = this.requestBody;
    batch.add(
      this.requestId,
      this.method,
      this.url,
      this.headers,
      this.responseType,
      requestAt,
      request.kept,
      request.total,
      responseAt,
      response ? response.kept : 0,
      response ? response.total : 0,
      this.status,
      this.durationMs,
    );
    return (requestAt < 0 ? 0 : 1) + (responseAt < 0 ? 0 : 1);
  }
}

export function createPayloadProxy(options: PayloadProxyOptions): PayloadProxy {
  return new PayloadProxy(options);
}
