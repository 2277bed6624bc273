import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { deploymentUrl } from '../typescript/src/config';
import type { CollectorError } from '../typescript/src/errors';
import type { RetryOptions } from '../typescript/src/transport';
import { PayloadLogger, type BreakerOptions } from './payload-logger';

export const proxyAgent = 'mdc-proxy/0.1.0';

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

/** Headers that describe one hop, never forwarded (RFC 9110 §7.6.1). */
const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);
/** Request headers not copied to the collector: secrets and framing. The collector keeps only the ones the deployment captures. */
const notLogged = new Set([...hopByHop, 'host', 'content-length', 'content-type', 'authorization', 'cookie', 'x-mdc-key', 'user-agent']);
/** The collector refuses longer ones (400); log a cut path rather than lose the line. */
const maxPathLength = 2048;

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function withoutHopByHop(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const connection = single(headers.connection);
  // Most requests name nothing but keep-alive or close in Connection: skip splitting it then.
  const connectionNamed = connection && !/^\s*(keep-alive|close)\s*$/i.test(connection) ? connection.split(',').map((h) => h.trim().toLowerCase()) : undefined;
  const out: http.OutgoingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !hopByHop.has(name) && !connectionNamed?.includes(name)) out[name] = value;
  }
  return out;
}

/** Keeps the first `limit` bytes of a stream that is passing through, and counts the rest. */
class Capture {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  total = 0;

  constructor(private readonly limit: number) {}

  add(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.kept >= this.limit) return;
    const part = this.kept + chunk.length <= this.limit ? chunk : chunk.subarray(0, this.limit - this.kept);
    this.chunks.push(part);
    this.kept += part.length;
  }

  get truncated(): boolean {
    return this.total > this.kept;
  }

  bytes(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
  }
}

/**
 * A reverse proxy in front of any model server that logs every request and response, failed ones included,
 * to the `request` and `response` collections under one correlation id. Bodies stream through as they come;
 * the logs are handed to a fire-and-forget logger, so the collector never delays an answer.
 */
export class PayloadProxy {
  readonly server: http.Server;
  readonly logger: PayloadLogger;
  private readonly target: URL;
  private readonly targetAgent: http.Agent;
  readonly maxLoggedBytes: number;
  private readonly targetPath: string;
  private readonly modelVersion: string | undefined;

  constructor(options: PayloadProxyOptions) {
    this.target = new URL(options.target);
    if (this.target.protocol !== 'http:' && this.target.protocol !== 'https:') throw new TypeError(`target "${options.target}" is not http(s)`);
    this.targetAgent = this.target.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
    this.maxLoggedBytes = options.maxLoggedBytes ?? 1024 * 1024;
    this.targetPath = this.target.pathname.replace(/\/+$/, '');
    this.modelVersion = options.modelVersion;
    this.logger = new PayloadLogger({
      deploymentUrl: deploymentUrl({ url: options.collector, ...(options.endpoint ? { endpoint: options.endpoint } : {}), ...(options.deployment ? { deployment: options.deployment } : {}) }, {}),
      key: options.key,
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
    this.targetAgent.destroy();
    await this.logger.close(options);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const requestId = single(req.headers['x-request-id']) || randomUUID();
    const exchange = new Exchange(this, req, requestId);

    const forwarded = withoutHopByHop(req.headers);
    forwarded['host'] = this.target.host;
    forwarded['x-request-id'] = requestId;
    const prior = single(req.headers['x-forwarded-for']);
    const client = req.socket.remoteAddress ?? '';
    forwarded['x-forwarded-for'] = prior ? `${prior}, ${client}` : client;

    const upstream = (this.target.protocol === 'https:' ? https : http).request({
      protocol: this.target.protocol,
      hostname: this.target.hostname,
      port: this.target.port,
      method: req.method ?? 'GET',
      path: this.targetPath + (req.url ?? '/'),
      headers: forwarded,
      agent: this.targetAgent,
    });

    req.on('data', (chunk: Buffer) => exchange.requestBody.add(chunk));
    // Log work waits for the next turn of the event loop, after the bytes of the answer have been written.
    req.on('end', () => setImmediate(logRequest, exchange));
    req.pipe(upstream);

    upstream.on('response', (answer) => {
      const status = answer.statusCode ?? 502;
      const headers = withoutHopByHop(answer.headers);
      if (headers['x-request-id'] === undefined) headers['x-request-id'] = requestId;
      res.writeHead(status, answer.statusMessage, headers);
      const responseBody = new Capture(this.maxLoggedBytes);
      answer.on('data', (chunk: Buffer) => responseBody.add(chunk));
      answer.pipe(res);
      answer.on('end', () => exchange.answered(status, single(answer.headers['content-type']), responseBody));
      answer.on('error', () => res.destroy());
    });

    upstream.on('error', (error) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const body = new Capture(this.maxLoggedBytes);
      body.add(Buffer.from(JSON.stringify({ error: { code: 'ModelUnreachable', message: `the model server at ${this.target.origin} did not answer: ${error.message}` } })));
      res.writeHead(502, { 'content-type': 'application/json', 'x-request-id': requestId });
      res.end(body.bytes());
      exchange.answered(502, 'application/json', body);
    });

    // A client that goes away mid-answer must not leave the model request running.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
  }

  /** The headers both logs of one exchange share. */
  logHeaders(req: http.IncomingMessage, requestId: string): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const name in req.headers) {
      const value = req.headers[name];
      if (value !== undefined && !notLogged.has(name) && !name.startsWith('x-mdc-')) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const path = req.url ?? '/';
    headers['x-request-id'] = requestId;
    headers['x-mdc-path'] = path.length > maxPathLength ? path.slice(0, maxPathLength) : path;
    headers['x-mdc-method'] = req.method ?? 'GET';
    headers['user-agent'] = proxyAgent;
    if (this.modelVersion) headers['x-mdc-model-version'] = this.modelVersion;
    return headers;
  }

  bodyHeaders(base: Record<string, string>, contentType: string | undefined, body: Capture): Record<string, string> {
    if (body.truncated) {
      // A cut body is no longer the JSON it was: log its first bytes as bytes, and say how long it was.
      return { ...base, 'content-type': 'application/octet-stream', 'x-mdc-truncated-from': String(body.total) };
    }
    return contentType ? { ...base, 'content-type': contentType } : base;
  }
}

/** One request passing through: what its two logs need, gathered on the way and logged once it is answered. */
class Exchange {
  readonly started = process.hrtime.bigint();
  readonly requestBody: Capture;
  private headers: Record<string, string> | undefined;
  private requestLogged = false;
  private responseLogged = false;
  private status = 0;
  private durationMs = 0;
  private responseType: string | undefined;
  private responseBody: Capture | undefined;

  constructor(
    private readonly proxy: PayloadProxy,
    private readonly req: http.IncomingMessage,
    private readonly requestId: string,
  ) {
    this.requestBody = new Capture(proxy.maxLoggedBytes);
  }

  /** The answer has been handed to the client: its log follows on the next turn of the event loop. */
  answered(status: number, contentType: string | undefined, body: Capture): void {
    if (this.status !== 0) return;
    this.durationMs = Number(process.hrtime.bigint() - this.started) / 1e6;
    this.status = status;
    this.responseType = contentType;
    this.responseBody = body;
    setImmediate(logResponse, this);
  }

  logRequest(): void {
    if (this.requestLogged) return;
    this.requestLogged = true;
    const type = single(this.req.headers['content-type']);
    this.proxy.logger.log({ collection: 'request', body: this.requestBody.bytes(), headers: this.proxy.bodyHeaders(this.shared(), type, this.requestBody) });
  }

  logResponse(): void {
    if (this.responseLogged || !this.responseBody) return;
    this.responseLogged = true;
    this.logRequest();
    const headers = { ...this.proxy.bodyHeaders(this.shared(), this.responseType, this.responseBody) };
    headers['x-mdc-status'] = String(this.status);
    headers['x-mdc-duration-ms'] = this.durationMs.toFixed(3);
    this.proxy.logger.log({ collection: 'response', body: this.responseBody.bytes(), headers });
  }

  private shared(): Record<string, string> {
    return (this.headers ??= this.proxy.logHeaders(this.req, this.requestId));
  }
}

function logRequest(exchange: Exchange): void {
  exchange.logRequest();
}

function logResponse(exchange: Exchange): void {
  exchange.logResponse();
}

export function createPayloadProxy(options: PayloadProxyOptions): PayloadProxy {
  return new PayloadProxy(options);
}
