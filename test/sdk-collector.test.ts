import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BasicCorrelationContext, Collector, CollectorError, deploymentUrl } from '../sdk/typescript/src/index';
import { Recorder } from './support/sdk-recorder';

const fastRetry = { maxRetries: 1000, baseDelayMs: 5, maxDelayMs: 50 };

describe('TypeScript Collector', () => {
  let collector: Recorder;
  const open: Collector[] = [];

  function client(options: Partial<ConstructorParameters<typeof Collector>[0]> = {}): Collector {
    const c = new Collector({ name: 'model_inputs', url: `${collector.url}/api/collect/ep/blue`, key: 'ingest-key', retry: fastRetry, ...options });
    open.push(c);
    return c;
  }

  beforeEach(async () => {
    collector = await new Recorder().start();
  });

  afterEach(async () => {
    for (const c of open.splice(0)) await c.close().catch(() => undefined);
    await collector.stop();
  });

  it('batches several collect calls into one NDJSON request, inputs and outputs tied by one correlation id', async () => {
    const inputs = client({ flushIntervalMs: 60_000 });
    const outputs = client({ name: 'model_outputs', flushIntervalMs: 60_000 });

    const contexts = [1, 2, 3].map((n) => inputs.collect([{ LIMIT_BAL: n, AGE: 30 + n }]));
    outputs.collect({ score: [0.5] }, contexts[0]);
    expect(new Set(contexts.map((c) => c.getId())).size).toBe(3);
    expect(collector.requests).toHaveLength(0); // nothing leaves before the batch is due

    await inputs.flush();
    await outputs.flush();

    const posts = collector.requests.filter((r) => r.url === '/api/collect/ep/blue/model_inputs');
    expect(posts).toHaveLength(1);
    expect(posts[0]!.headers['x-mdc-key']).toBe('ingest-key');
    expect(posts[0]!.headers['content-type']).toBe('application/x-ndjson');
    const lines = collector.lines('/model_inputs');
    expect(lines.map((l) => l.data)).toEqual([1, 2, 3].map((n) => [{ LIMIT_BAL: n, AGE: 30 + n }]));
    expect(lines.map((l) => l.correlationid)).toEqual(contexts.map((c) => c.getId()));
    expect(lines[0]!.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);

    const [out] = collector.lines('/model_outputs');
    expect(out!.data).toEqual({ score: [0.5] });
    expect(out!.correlationid).toBe(contexts[0]!.getId());
  });

  it('sends on its own after flushIntervalMs, and keeps a caller-given correlation id', async () => {
    const inputs = client({ flushIntervalMs: 10 });
    const context = inputs.collect([{ a: 1 }], new BasicCorrelationContext('req-42'));
    expect(context.getId()).toBe('req-42');
    const deadline = Date.now() + 10_000;
    while (collector.requests.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(collector.lines('/model_inputs').map((l) => l.correlationid)).toEqual(['req-42']);
  });

  it('retries 503 (honouring Retry-After) and dropped connections, delivering each call once', async () => {
    collector.script.push(
      { kind: 'status', status: 503, body: { error: { code: 'EventHubsUnavailable', message: 'down' } }, headers: { 'retry-after': '0' } },
      { kind: 'close' },
      { kind: 'status', status: 503 },
    );
    const errors: CollectorError[] = [];
    const inputs = client({ onError: (e) => errors.push(e) });
    inputs.collect([{ a: 1 }]);
    inputs.collect([{ a: 2 }]);
    await inputs.flush();
    expect(errors).toEqual([]);
    // Recorded: 503, 503, then the accepted one (the dropped connection is not recorded).
    expect(collector.requests).toHaveLength(3);
    const accepted = collector.requests[2]!.body.toString('utf8').trim().split('\n').map((l) => JSON.parse(l).data);
    expect(accepted).toEqual([[{ a: 1 }], [{ a: 2 }]]);
  });

  it('reports a refused batch (400) once, without retrying it', async () => {
    collector.fallback = { kind: 'status', status: 400, body: { error: { code: 'InvalidBody', message: 'line 1: data is missing' } } };
    const errors: CollectorError[] = [];
    const inputs = client({ onError: (e) => errors.push(e) });
    inputs.collect([{ a: 1 }]);
    inputs.collect([{ a: 2 }]);
    await inputs.flush();
    expect(collector.requests).toHaveLength(1);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'Rejected', status: 400, dropped: 2 });
    expect(errors[0]!.message).toContain('line 1: data is missing');
  });

  it('without onError, never throws from collect but throws the losses from flush, once', async () => {
    collector.fallback = { kind: 'status', status: 401, body: { error: { code: 'Unauthorized', message: 'wrong key' } } };
    const inputs = client({ maxQueue: 2, flushIntervalMs: 60_000 });
    expect(() => {
      for (let i = 0; i < 5; i++) inputs.collect([{ i }]);
      inputs.collect('not data' as never);
    }).not.toThrow();
    const thrown = await inputs.flush().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(thrown).toBeInstanceOf(CollectorError);
    // 3 dropped on the full queue, 1 invalid, 2 refused by the collector.
    expect(thrown).toMatchObject({ code: 'QueueFull', dropped: 6 });
    expect((thrown as CollectorError).errors!.map((e) => e.code)).toEqual(['QueueFull', 'QueueFull', 'QueueFull', 'QueueFull', 'Rejected']);
    await expect(inputs.flush()).resolves.toBeUndefined();
  });

  it('reports data that is neither records nor columns', async () => {
    const errors: CollectorError[] = [];
    const inputs = client({ onError: (e) => errors.push(e) });
    const context = inputs.collect({ a: [1, 2], b: [3] });
    inputs.collect([1, 2] as never);
    inputs.collect([]);
    inputs.collect([{ a: 1 }], new BasicCorrelationContext('x'.repeat(257)));
    expect(context.getId()).toMatch(/^[0-9a-f-]{36}$/);
    await inputs.flush();
    expect(errors.map((e) => [e.code, e.message])).toEqual([
      ['InvalidData', 'column "b" has 1 values, the others 2'],
      ['InvalidData', 'row 0 is not an object: records are [{"column": value, ...}, ...]'],
      ['InvalidData', 'data has no rows'],
      ['InvalidData', 'the correlation id must be 1-256 characters without control characters'],
    ]);
    expect(collector.requests).toHaveLength(0);
  });

  it('bounded queue: with the collector stopped, 10,000 calls return, drops are reported, and it recovers after a restart', async () => {
    await collector.stop();
    const errors: CollectorError[] = [];
    const inputs = client({ maxQueue: 100, onError: (e) => errors.push(e), flushIntervalMs: 0 });

    const contexts = [];
    for (let i = 0; i < 10_000; i++) contexts.push(inputs.collect([{ i }]));

    expect(contexts).toHaveLength(10_000);
    expect(errors).toHaveLength(9_900);
    expect(errors.every((e) => e.code === 'QueueFull' && e.dropped === 1)).toBe(true);
    expect(inputs.pending).toBe(100);

    await collector.start(); // same port
    await inputs.flush();
    inputs.collect([{ i: 'after' }]);
    await inputs.flush();

    const rows = collector.lines('/model_inputs').map((l) => (l.data as Array<{ i: unknown }>)[0]!.i);
    expect(rows).toEqual([...Array.from({ length: 100 }, (_, i) => i), 'after']);
    expect(errors).toHaveLength(9_900);
  });

  it('close() waits for what is queued, then refuses more', async () => {
    const errors: CollectorError[] = [];
    const inputs = client({ onError: (e) => errors.push(e), flushIntervalMs: 60_000 });
    inputs.collect([{ a: 1 }]);
    await inputs.close();
    expect(collector.lines('/model_inputs')).toHaveLength(1);
    inputs.collect([{ a: 2 }]);
    expect(errors.map((e) => e.code)).toEqual(['Closed']);
  });

  it('close() with an abort signal gives up on a stuck collector and reports the loss', async () => {
    collector.fallback = { kind: 'hang' };
    const errors: CollectorError[] = [];
    const inputs = client({ onError: (e) => errors.push(e) });
    inputs.collect([{ a: 1 }]);
    const controller = new AbortController();
    const closing = inputs.close({ abortSignal: controller.signal });
    await new Promise((r) => setTimeout(r, 0));
    controller.abort();
    await closing;
    expect(errors.map((e) => [e.code, e.dropped])).toEqual([['SendFailed', 1]]);
  });

  it('builds the deployment URL from a base URL plus endpoint and deployment, or from the environment', () => {
    expect(deploymentUrl({ url: 'http://127.0.0.1:7071/', endpoint: 'ep', deployment: 'blue' })).toBe('http://127.0.0.1:7071/api/collect/ep/blue');
    expect(deploymentUrl({ url: 'http://h:1/api/collect/ep/green/', endpoint: 'x', deployment: 'y' })).toBe('http://h:1/api/collect/ep/green');
    expect(deploymentUrl({}, { MDC_URL: 'https://mdc.example.net', MDC_ENDPOINT: 'ep', MDC_DEPLOYMENT: 'blue' })).toBe(
      'https://mdc.example.net/api/collect/ep/blue',
    );
    expect(() => deploymentUrl({ url: 'http://127.0.0.1:7071' }, {})).toThrow(/names no deployment/);
    expect(() => deploymentUrl({}, {})).toThrow(/MDC_URL/);
    expect(() => new Collector({ name: 'bad-name', url: 'http://h/api/collect/a/b', key: 'k' })).toThrow(/collection name/);
  });
});
