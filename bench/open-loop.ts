import net from 'node:net';

/**
 * An open-loop HTTP/1.1 load generator: requests are due at an even pace (`rate` per second), whatever the
 * server's latency, and are spread over `connections` keep-alive sockets with one request in flight on each.
 * A request that is due while every socket is busy waits in a backlog, and its latency counts from when it was
 * due, so a server that falls behind is charged for the queue it causes (no coordinated omission).
 *
 * autocannon's `overallRate` is not this: it gives each connection a per-second budget that it spends back to
 * back at the start of every second, so its "1000 req/s" is a burst at full speed followed by silence.
 */
export interface OpenLoopOptions {
  port: number;
  host?: string;
  path: string;
  body: string;
  contentType: string;
  rate: number;
  connections: number;
  durationMs: number;
}

export interface OpenLoopResult {
  /** Milliseconds from due time to the last byte of the answer, one per 2xx answer. */
  latencies: number[];
  /** Answers that were not 2xx. */
  non2xx: number;
  /** Connection errors and answers that could not be read. */
  errors: number;
  /** Requests sent. */
  requests: number;
  /** Requests that were due while every connection was busy. */
  queued: number;
}

interface Connection {
  socket: net.Socket;
  /** When the request in flight was due (ms, performance-clock), or undefined when idle. */
  due: number | undefined;
  buffer: Buffer;
}

const headerEnd = Buffer.from('\r\n\r\n');

/** Where a chunked body that starts at `at` ends, or -1 when the buffer does not hold all of it yet. */
function chunkedEnd(buffer: Buffer, at: number): number {
  for (;;) {
    const lineEnd = buffer.indexOf('\r\n', at);
    if (lineEnd === -1) return -1;
    const size = parseInt(buffer.subarray(at, lineEnd).toString('latin1'), 16);
    if (size === 0) return buffer.length >= lineEnd + 4 ? lineEnd + 4 : -1;
    at = lineEnd + 2 + size + 2;
    if (at > buffer.length) return -1;
  }
}

/** Runs the load and resolves when every request sent has been answered (or failed). */
export async function openLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const host = options.host ?? '127.0.0.1';
  const body = Buffer.from(options.body);
  const request = Buffer.concat([
    Buffer.from(
      `POST ${options.path} HTTP/1.1\r\nHost: ${host}:${options.port}\r\nContent-Type: ${options.contentType}\r\nContent-Length: ${body.length}\r\n\r\n`,
    ),
    body,
  ]);
  const result: OpenLoopResult = { latencies: [], non2xx: 0, errors: 0, requests: 0, queued: 0 };
  const backlog: number[] = [];
  const idle: Connection[] = [];
  let inFlight = 0;
  let stopped = false;
  let drained: () => void = () => {};

  const send = (connection: Connection, due: number) => {
    connection.due = due;
    inFlight++;
    result.requests++;
    connection.socket.write(request);
  };

  const finish = (connection: Connection) => {
    connection.due = undefined;
    inFlight--;
    const next = backlog.shift();
    if (next !== undefined) send(connection, next);
    else idle.push(connection);
    if (stopped && inFlight === 0) drained();
  };

  /** Reads as many whole answers as the buffer holds, framed by Content-Length or chunked (without trailers). */
  const read = (connection: Connection) => {
    for (;;) {
      const buffer = connection.buffer;
      const end = buffer.indexOf(headerEnd);
      if (end === -1) return;
      const head = buffer.subarray(0, end).toString('latin1');
      const bodyStart = end + headerEnd.length;
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      let total: number;
      if (length) total = bodyStart + Number(length[1]);
      else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) total = chunkedEnd(buffer, bodyStart);
      else {
        result.errors++;
        connection.socket.destroy();
        return;
      }
      if (total === -1 || buffer.length < total) return;
      const status = Number(head.slice(9, 12));
      const due = connection.due!;
      if (status >= 200 && status < 300) result.latencies.push(performance.now() - due);
      else result.non2xx++;
      connection.buffer = buffer.subarray(total);
      finish(connection);
    }
  };

  const connections = await Promise.all(
    Array.from(
      { length: options.connections },
      () =>
        new Promise<Connection>((resolve, reject) => {
          const socket = net.connect({ host, port: options.port, noDelay: true });
          const connection: Connection = { socket, due: undefined, buffer: Buffer.alloc(0) };
          socket.once('connect', () => resolve(connection));
          socket.once('error', reject);
        }),
    ),
  );
  for (const connection of connections) {
    connection.socket.removeAllListeners('error');
    connection.socket.on('data', (chunk: Buffer) => {
      connection.buffer = connection.buffer.length === 0 ? chunk : Buffer.concat([connection.buffer, chunk]);
      read(connection);
    });
    connection.socket.on('error', () => {});
    connection.socket.on('close', () => {
      if (connection.due !== undefined) {
        result.errors++;
        connection.due = undefined;
        inFlight--;
        if (stopped && inFlight === 0) drained();
      }
    });
    idle.push(connection);
  }

  const interval = 1000 / options.rate;
  const start = performance.now();
  const total = Math.round((options.durationMs / 1000) * options.rate);
  let issued = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      // Every request whose time has come goes now; its clock starts at this moment, when the generator could
      // first send it, so the generator's own timer lateness is not charged to the server.
      while (issued < total && start + issued * interval <= now) {
        issued++;
        const connection = idle.pop();
        if (connection && !connection.socket.destroyed) send(connection, now);
        else {
          result.queued++;
          backlog.push(now);
        }
      }
      if (issued < total) setTimeout(tick, Math.max(0, start + issued * interval - performance.now()));
      else resolve();
    };
    tick();
  });
  stopped = true;
  if (inFlight > 0 || backlog.length > 0) {
    // Answers still owed after 10 s are not coming: count them as errors rather than hang.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => (drained = resolve)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, 10_000))),
    ]);
    clearTimeout(timer);
    result.errors += inFlight + backlog.length;
  }
  for (const connection of connections) connection.socket.destroy();
  return result;
}
