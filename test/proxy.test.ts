import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseProxyArgs, UsageError } from '../sdk/proxy/main';
import { PayloadLogger } from '../sdk/proxy/payload-logger';
import { PayloadProxy } from '../sdk/proxy/proxy';
import type { CollectorError } from '../sdk/typescript/src/errors';
import { freePort } from '../local/ports';
import { eventually, Recorder } from './support/sdk-recorder';

interface ModelServer {
  url: string;
  seen: http.IncomingHttpHeaders[];
  close(): Promise<void>;
}

/** A stand-in model server: /score echoes a prediction, /fail answers 500, /big streams 3 MB. */
async function startModel(): Promise<ModelServer> {
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/fail') {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":"model crashed"}');
      } else if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/json' });
        const block = Buffer.alloc(64 * 1024, 'a');
        for (let i = 0; i < 48; i++) res.write(block);
        res.end();
      } else {
        const input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { data?: number[] };
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ predictions: (input.data ?? []).map((x) => x * 2) }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function send(url: string, options: { method?: string; body?: string; headers?: Record<string, string> } = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'POST', headers: { 'content-type': 'application/json', ...options.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

describe('payload-logging proxy', () => {
  let model: ModelServer;
  let collector: Recorder;
  let proxy: PayloadProxy;
  let proxyUrl: string;

  async function startProxy(options: Partial<ConstructorParameters<typeof PayloadProxy>[0]> = {}) {
    proxy = new PayloadProxy({ target: model.url, collector: collector.url, endpoint: 'ep', deployment: 'blue', key: 'ingest-key', ...options });
    proxyUrl = `http://127.0.0.1:${await proxy.listen(0)}`;
  }

  beforeEach(async () => {
    model = await startModel();
    collector = await new Recorder().start();
  });

  afterEach(async () => {
    collector.release();
    await proxy.close({ timeoutMs: 100 });
    await collector.stop();
    await model.close();
  });

  it('passes the answer through and logs request and response under one x-request-id it adds', async () => {
    await startProxy();
    const answer = await send(`${proxyUrl}/score?v=1`, { body: '{"data":[1,2,3]}', headers: { 'x-user-id': 'u-7', authorization: 'Bearer secret' } });

    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body.toString())).toEqual({ predictions: [2, 4, 6] });
    const requestId = answer.headers['x-request-id'] as string;
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(model.seen[0]!['x-request-id']).toBe(requestId);

    await eventually(() => collector.requests.length === 2, 'two payload logs');
    const request = collector.requests.find((r) => r.url === '/api/collect/ep/blue/request')!;
    const response = collector.requests.find((r) => r.url === '/api/collect/ep/blue/response')!;
    expect(request.body.toString()).toBe('{"data":[1,2,3]}');
    expect(request.headers).toMatchObject({
      'x-mdc-key': 'ingest-key',
      'x-request-id': requestId,
      'x-mdc-path': '/score?v=1',
      'x-mdc-method': 'POST',
      'content-type': 'application/json',
      'x-user-id': 'u-7',
    });
    expect(request.headers.authorization).toBeUndefined();
    expect(response.body.toString()).toBe('{"predictions":[2,4,6]}');
    expect(response.headers).toMatchObject({ 'x-request-id': requestId, 'x-mdc-status': '200', 'x-mdc-path': '/score?v=1' });
    expect(Number(response.headers['x-mdc-duration-ms'])).toBeGreaterThan(0);
  });

  it("keeps the caller's x-request-id and x-ms-client-request-id on both logs", async () => {
    await startProxy();
    const answer = await send(`${proxyUrl}/score`, { body: '{"data":[1]}', headers: { 'x-request-id': 'req-1', 'x-ms-client-request-id': 'client-1' } });
    expect(answer.headers['x-request-id']).toBe('req-1');
    await eventually(() => collector.requests.length === 2, 'two payload logs');
    for (const log of collector.requests) {
      expect(log.headers['x-request-id']).toBe('req-1');
      expect(log.headers['x-ms-client-request-id']).toBe('client-1');
    }
  });

  it('logs a 500 from the model with its status and body, and a GET with an empty body', async () => {
    await startProxy();
    const failed = await send(`${proxyUrl}/fail`, { body: '{"data":[1]}' });
    expect(failed.status).toBe(500);
    expect(failed.body.toString()).toBe('{"error":"model crashed"}');
    const got = await send(`${proxyUrl}/health`, { method: 'GET', headers: {} });
    expect(got.status).toBe(200);

    await eventually(() => collector.requests.length === 4, 'four payload logs');
    const fail = collector.requests.find((r) => r.url.endsWith('/response') && r.headers['x-mdc-path'] === '/fail')!;
    expect(fail.headers['x-mdc-status']).toBe('500');
    expect(fail.body.toString()).toBe('{"error":"model crashed"}');
    const getLog = collector.requests.find((r) => r.url.endsWith('/request') && r.headers['x-mdc-path'] === '/health')!;
    expect(getLog.headers['x-mdc-method']).toBe('GET');
    expect(getLog.body.length).toBe(0);
  });

  it('answers 502 when the model server is down, and logs that too', async () => {
    const deadPort = await freePort();
    await startProxy({ target: `http://127.0.0.1:${deadPort}` });
    const answer = await send(`${proxyUrl}/score`, { body: '{}' });
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.body.toString()).error.code).toBe('ModelUnreachable');
    await eventually(() => collector.requests.some((r) => r.url.endsWith('/response')), 'the response log');
    expect(collector.requests.find((r) => r.url.endsWith('/response'))!.headers['x-mdc-status']).toBe('502');
  });

  it('streams a body larger than the log cap through whole, and logs its first bytes', async () => {
    await startProxy({ maxLoggedBytes: 1000 });
    const answer = await send(`${proxyUrl}/big`, { method: 'GET' });
    expect(answer.body.length).toBe(48 * 64 * 1024);
    await eventually(() => collector.requests.some((r) => r.url.endsWith('/response')), 'the response log');
    const log = collector.requests.find((r) => r.url.endsWith('/response'))!;
    expect(log.body.length).toBe(1000);
    expect(log.headers['content-type']).toBe('application/octet-stream');
    expect(log.headers['x-mdc-truncated-from']).toBe(String(48 * 64 * 1024));
  });

  it('forwards a chunked upload and an Expect: 100-continue request whole, and logs both', async () => {
    await startProxy();
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${proxyUrl}/score`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'chunked' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.write('{"data":');
      setImmediate(() => req.end('[5,6]}'));
    });
    expect(chunked).toEqual({ status: 200, body: '{"predictions":[10,12]}' });
    const continued = await send(`${proxyUrl}/score`, { body: '{"data":[7]}', headers: { expect: '100-continue', 'x-request-id': 'continued' } });
    expect(continued.status).toBe(200);
    expect(continued.body.toString()).toBe('{"predictions":[14]}');
    expect(model.seen[1]!.expect).toBeUndefined();

    await eventually(() => collector.requests.length === 4, 'four payload logs');
    const log = (id: string, collection: string) => collector.requests.find((r) => r.headers['x-request-id'] === id && r.url.endsWith(collection))!.body.toString();
    expect(log('chunked', '/request')).toBe('{"data":[5,6]}');
    expect(log('continued', '/request')).toBe('{"data":[7]}');
    expect(log('continued', '/response')).toBe('{"predictions":[14]}');
  });

  it('streams an upload larger than it reads whole to the model, and logs its first bytes', async () => {
    await startProxy({ maxLoggedBytes: 1000 });
    const data = Array.from({ length: 30_000 }, (_, i) => i);
    const body = JSON.stringify({ data });
    expect(body.length).toBeGreaterThan(128 * 1024);
    const answer = await send(`${proxyUrl}/score`, { body });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body.toString()).predictions).toHaveLength(30_000);
    await eventually(() => collector.requests.some((r) => r.url.endsWith('/request')), 'the request log');
    const log = collector.requests.find((r) => r.url.endsWith('/request'))!;
    expect(log.body.toString()).toBe(body.slice(0, 1000));
    expect(log.headers['x-mdc-truncated-from']).toBe(String(body.length));
  });

  it('logs a request whose client went away mid-upload, its answer as 499', async () => {
    await startProxy();
    const req = http.request(`${proxyUrl}/score`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '100', 'x-request-id': 'gone' } });
    req.on('error', () => undefined);
    await new Promise<void>((resolve) => req.write('{"data":', () => resolve()));
    req.destroy();
    await eventually(() => collector.requests.length === 2, 'two payload logs');
    const request = collector.requests.find((r) => r.url.endsWith('/request'))!;
    const response = collector.requests.find((r) => r.url.endsWith('/response'))!;
    expect(request.headers['x-request-id']).toBe('gone');
    expect(request.body.toString()).toBe('{"data":');
    expect(response.headers).toMatchObject({ 'x-request-id': 'gone', 'x-mdc-status': '499' });
    expect(model.seen).toHaveLength(0);
  });

  it('with the collector down, every proxied request still succeeds and the losses are counted', async () => {
    await collector.stop();
    const losses: CollectorError[] = [];
    await startProxy({ retry: { maxRetries: 1, baseDelayMs: 1, maxDelayMs: 5 }, onError: (e) => losses.push(e) });
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => send(`${proxyUrl}/score`, { body: JSON.stringify({ data: [i] }) })));
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(200));
    expect(answers.map((a) => JSON.parse(a.body.toString()).predictions[0])).toEqual(Array.from({ length: 50 }, (_, i) => i * 2));
    await proxy.logger.flush();
    expect(proxy.logger.stats.sent).toBe(0);
    expect(proxy.logger.stats.failed + proxy.logger.stats.dropped).toBe(100);
    expect(losses.reduce((n, e) => n + e.dropped, 0)).toBe(100);
  });

  it('with the collector stuck, answers still flow and the log queue stays bounded', async () => {
    collector.fallback = { kind: 'hang' };
    await startProxy({ maxQueue: 10, concurrency: 8 });
    for (let i = 0; i < 30; i++) {
      const answer = await send(`${proxyUrl}/score`, { body: JSON.stringify({ data: [i] }) });
      expect(answer.status).toBe(200);
    }
    const state = await proxy.logger.state();
    expect(state.pending).toBe(10);
    expect(state.stats.dropped).toBe(50);
    collector.release();
  });

  it('pipelines its logs over a few keep-alive connections', async () => {
    await startProxy();
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => send(`${proxyUrl}/score`, { body: JSON.stringify({ data: [i] }) })));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    await eventually(() => collector.requests.length === 200, 'two hundred payload logs');
    await proxy.logger.flush();
    expect(proxy.logger.stats).toEqual({ sent: 200, dropped: 0, failed: 0 });
    expect(collector.connections).toBeLessThanOrEqual(8);
    const bodies = collector.requests.filter((r) => r.url.endsWith('/request')).map((r) => JSON.parse(r.body.toString()).data[0]);
    expect(bodies.sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('while the collector is down, stops trying, drops and counts logs, then probes and resumes', async () => {
    await collector.stop();
    // The collector's port accepts and hangs up at once, so every connection the proxy makes is counted.
    let attempts = 0;
    const refusing = net.createServer((socket) => {
      attempts++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => refusing.listen(collector.port, '127.0.0.1', resolve));
    const losses: CollectorError[] = [];
    await startProxy({ retry: { maxRetries: 0 }, breaker: { failures: 2, cooldownMs: 300, maxCooldownMs: 300 }, onError: (e) => losses.push(e) });

    await eventually(async () => {
      expect((await send(`${proxyUrl}/score`, { body: '{"data":[1]}' })).status).toBe(200);
      return (await proxy.logger.state()).collectorDown;
    }, 'the breaker to open');
    const attemptsWhenOpened = attempts;
    const droppedWhenOpened = (await proxy.logger.state()).stats.dropped;
    for (let i = 0; i < 20; i++) expect((await send(`${proxyUrl}/score`, { body: JSON.stringify({ data: [i] }) })).status).toBe(200);
    const afterwards = await proxy.logger.state();
    if (afterwards.collectorDown) {
      expect(attempts).toBe(attemptsWhenOpened);
      expect(afterwards.stats.dropped).toBeGreaterThanOrEqual(droppedWhenOpened + 40);
    }

    await new Promise<void>((resolve) => refusing.close(() => resolve()));
    await collector.start();
    await eventually(async () => {
      await send(`${proxyUrl}/score`, { body: '{"data":[2]}' });
      return !(await proxy.logger.state()).collectorDown && collector.requests.some((r) => r.url.endsWith('/response'));
    }, 'logs to flow again');
    await proxy.logger.flush();
    const { sent, dropped, failed } = proxy.logger.stats;
    expect(sent).toBe(collector.requests.length);
    expect(dropped).toBeGreaterThan(0);
    expect(losses.some((e) => e.code === 'CollectorDown')).toBe(true);
    expect(losses.reduce((n, e) => n + e.dropped, 0)).toBe(dropped + failed);
  });

  it('as a command, sends what is left when stopped, says how much, and exits', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', 'sdk/proxy/main.ts', '--target', model.url, '--port', String(port), '--collector', collector.url, '--endpoint', 'ep', '--deployment', 'blue', '--key', 'k'], {
      cwd: path.resolve(__dirname, '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await eventually(() => out.includes('mdc-proxy: http://'), 'the proxy to listen');
      // Logs linger before they leave: stopped at once, the proxy still has them to send.
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => send(`http://127.0.0.1:${port}/score`, { body: JSON.stringify({ data: [i] }) })));
      expect(answers.every((a) => a.status === 200)).toBe(true);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    expect(out).toContain('stopped; 40 payload log(s) sent, 0 dropped, 0 failed');
    expect(collector.requests.length).toBe(40);
  });

  it('reads its command line and environment', () => {
    const command = parseProxyArgs(['--target', 'http://127.0.0.1:5001', '--port', '5002', '--endpoint', 'ep', '--deployment', 'blue'], {
      MDC_KEY: 'k',
      MDC_URL: 'http://collector:7071',
    });
    expect(command).toMatchObject({ port: 5002, host: '127.0.0.1', options: { target: 'http://127.0.0.1:5001', collector: 'http://collector:7071', key: 'k', endpoint: 'ep', deployment: 'blue' } });
    expect(() => parseProxyArgs(['--port', '1'], { MDC_KEY: 'k' })).toThrow(/--target is required/);
    expect(() => parseProxyArgs(['--target', 'http://m'], {})).toThrow(/ingest key/);
    expect(() => parseProxyArgs(['--target', 'http://m', '--key', 'k'], {})).toThrow(/--endpoint and --deployment/);
    expect(() => parseProxyArgs(['--target', 'http://m', '--bogus'], {})).toThrow(UsageError);
  });
});

describe('payload logger', () => {
  let collector: Recorder;
  let logger: PayloadLogger;
  const losses: CollectorError[] = [];

  function start(options: Partial<ConstructorParameters<typeof PayloadLogger>[0]> = {}) {
    logger = new PayloadLogger({ deploymentUrl: `${collector.url}/api/collect/ep/blue`, key: 'k', onError: (e) => losses.push(e), ...options });
  }

  beforeEach(async () => {
    losses.length = 0;
    collector = await new Recorder().start();
  });

  afterEach(async () => {
    collector.release();
    await logger.close({ timeoutMs: 100 });
    await collector.stop();
  });

  it('counts a collector that does not answer in time as a failure, and names the wait', async () => {
    collector.fallback = { kind: 'hang' };
    start({ timeoutMs: 100, retry: { maxRetries: 0 }, breaker: { failures: 1 } });
    logger.log({ collection: 'request', body: Buffer.from('{}'), headers: {} });
    await logger.flush();
    expect(logger.stats).toEqual({ sent: 0, dropped: 0, failed: 1 });
    expect(logger.collectorDown).toBe(true);
    expect(losses.at(-1)!.message).toContain('within 100 ms');
  });

  it("keeps the breaker open for the collector's Retry-After", async () => {
    collector.fallback = { kind: 'status', status: 503, headers: { 'retry-after': '7' } };
    start({ breaker: { failures: 1 } });
    logger.log({ collection: 'response', body: Buffer.from('{}'), headers: {} });
    await logger.flush();
    expect(logger.collectorDown).toBe(true);
    expect(losses[0]!.message).toContain('dropped for 7000 ms');
  });

  it('loses only the log that carries a header the client will not send, without counting an outage', async () => {
    start({ breaker: { failures: 1 } });
    logger.log({ collection: 'request', body: Buffer.from('{}'), headers: { expect: '100-continue' } });
    logger.log({ collection: 'request', body: Buffer.from('{}'), headers: { 'x-user-id': 'u-1' } });
    await logger.flush();
    expect(logger.stats).toEqual({ sent: 1, dropped: 0, failed: 1 });
    expect(logger.collectorDown).toBe(false);
    expect(losses.map((e) => e.code)).toEqual(['Rejected']);
    expect(collector.requests[0]!.headers).toMatchObject({ 'x-user-id': 'u-1', 'x-mdc-key': 'k' });
  });
});
