import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';

/** One request as the fake collector (or fake model) received it. */
export interface Recorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export type Answer =
  | { kind: 'accept' }
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  /** Drops the connection without answering, as a crashing server would. */
  | { kind: 'close' }
  /** Holds the request until `release()`, as a stuck collector would. */
  | { kind: 'hang' };

/**
 * A real HTTP server on 127.0.0.1 that records what clients send and answers as told, so client tests see
 * real sockets, real 503s and real connection drops. It can stop and start again on the same port.
 */
export class Recorder {
  readonly requests: Recorded[] = [];
  /** Answers to give, in order; when empty, `fallback` answers. */
  readonly script: Answer[] = [];
  fallback: Answer = { kind: 'accept' };
  port = 0;
  /** Connections accepted since the first start. */
  connections = 0;
  private server: http.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private held: Array<() => void> = [];

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      this.connections++;
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  /** Closes the port and every open connection: clients see refused connections until `start()`. */
  async stop(): Promise<void> {
    this.release();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  release(): void {
    const held = this.held;
    this.held = [];
    for (const answer of held) answer();
  }

  /** Lines of every NDJSON body received for a path ending in `suffix`, parsed. */
  lines(suffix = ''): Array<Record<string, unknown>> {
    return this.requests
      .filter((r) => r.url.endsWith(suffix) && r.method === 'POST')
      .flatMap((r) => r.body.toString('utf8').split('\n').filter((l) => l.trim() !== ''))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const recorded: Recorded = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      const answer = this.script.shift() ?? this.fallback;
      if (answer.kind === 'close') {
        req.socket.destroy();
        return;
      }
      this.requests.push(recorded);
      const respond = () => {
        if (answer.kind === 'status') {
          res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
          res.end(JSON.stringify(answer.body ?? {}));
          return;
        }
        const lines = recorded.body.toString('utf8').split('\n').filter((l) => l.trim() !== '');
        res.writeHead(202, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ accepted: Math.max(1, lines.length), ids: [], correlationid: 'recorded', sampled: true }));
      };
      if (answer.kind === 'hang') this.held.push(respond);
      else respond();
    });
  }
}

/** Polls `check` until it returns true, or fails at the deadline. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
