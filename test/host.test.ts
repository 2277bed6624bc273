import { EventHubProducerClient } from '@azure/event-hubs';
import type { EventHubFunctionOptions, HttpFunctionOptions, InvocationContext, Timer, TimerFunctionOptions } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { healthOptions } from '../functions/health';
import { startLocalHost, type FunctionTables, type LocalHost } from '../local/host';
import { checkpointContainer } from '../local/host/event-hub-trigger';
import { consoleLog } from '../local/host/log';
import { eventually, startStack, type Stack } from './support/stack';

interface Invocation {
  bodies: unknown[];
  context: InvocationContext;
}

const received: Invocation[] = [];
const retried: Invocation[] = [];
const unretried: Invocation[] = [];
const ticks: Timer[] = [];
/** What the retried function saw in the checkpoint store while it was failing. */
const checkpointsWhileFailing: (number | undefined)[] = [];
let stack: Stack;
let host: LocalHost;

const echo: HttpFunctionOptions = {
  methods: ['POST'],
  route: 'echo/{name}/{rest?}',
  handler: async (request) => {
    const body = await request.text();
    return { status: 201, headers: { 'x-echo': 'yes' }, jsonBody: { params: request.params, q: request.query.get('q'), bytes: body.length } };
  },
};

const record: EventHubFunctionOptions = {
  connection: 'MDC_EVENTHUB',
  eventHubName: '%MDC_EVENTHUB_NAME%',
  cardinality: 'many',
  handler: async (bodies, context) => {
    received.push({ bodies: bodies as unknown[], context });
  },
};

const flaky: EventHubFunctionOptions = {
  connection: 'MDC_EVENTHUB',
  eventHubName: 'retry-hub',
  cardinality: 'many',
  retry: { strategy: 'fixedDelay', delayInterval: 50, maxRetryCount: -1 },
  handler: async (bodies, context) => {
    retried.push({ bodies: bodies as unknown[], context });
    if ((context.retryContext?.retryCount ?? 0) < 2) {
      checkpointsWhileFailing.push((await checkpoints('retry-hub')).get('0'));
      throw new Error('storage is having a bad day');
    }
  },
};

const failing: EventHubFunctionOptions = {
  connection: 'MDC_EVENTHUB',
  eventHubName: 'no-retry-hub',
  cardinality: 'many',
  handler: async (bodies, context) => {
    unretried.push({ bodies: bodies as unknown[], context });
    throw new Error('always fails');
  },
};

const tick: TimerFunctionOptions = {
  schedule: '0 0 0 1 1 *',
  handler: async (timer) => {
    ticks.push(timer);
  },
};

const functions: FunctionTables = {
  httpFunctions: { health: healthOptions, echo },
  eventHubFunctions: { record, flaky, failing },
  timerFunctions: { tick },
};

/** Partition id → checkpointed sequence number, read from the blobs the Functions host would write. */
async function checkpoints(hub: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  const container = stack.blobService.getContainerClient(checkpointContainer);
  if (!(await container.exists())) return found;
  for await (const blob of container.listBlobsFlat({ includeMetadata: true })) {
    const match = /\/([^/]+)\/[^/]+\/checkpoint\/(\d+)$/.exec(blob.name);
    if (match && match[1] === hub.toLowerCase() && blob.metadata?.sequencenumber) {
      found.set(match[2]!, Number(blob.metadata.sequencenumber));
    }
  }
  return found;
}

async function send(hub: string, bodies: unknown[], partitionKey: string): Promise<void> {
  const producer = new EventHubProducerClient(stack.eventHubConnectionString, hub);
  try {
    await producer.sendBatch(
      bodies.map((body, i) => ({ body, properties: { index: i } })),
      { partitionKey },
    );
  } finally {
    await producer.close();
  }
}

beforeAll(async () => {
  stack = await startStack({
    functions,
    hubs: [
      { name: 'mdc-events', partitionCount: 4 },
      { name: 'retry-hub', partitionCount: 1 },
      { name: 'no-retry-hub', partitionCount: 1 },
    ],
  });
  host = stack.host!;
});

afterAll(async () => {
  await host?.close();
  await stack?.stop();
});

describe('local host: HTTP', () => {
  it('serves the health function over HTTP: 200 with storage and Event Hubs up', async () => {
    const response = await fetch(`${stack.url}/api/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok', storage: 'up', eventHubs: 'up' });
  });

  it('passes route parameters, query and the streamed body, and sends back status, headers and JSON', async () => {
    const response = await fetch(`${stack.url}/api/echo/blue%20one?q=7`, { method: 'POST', body: 'x'.repeat(300_000) });
    expect(response.status).toBe(201);
    expect(response.headers.get('x-echo')).toBe('yes');
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await response.json()).toEqual({ params: { name: 'blue one' }, q: '7', bytes: 300_000 });

    const withRest = await fetch(`${stack.url}/api/echo/a/b`, { method: 'POST' });
    expect(((await withRest.json()) as { params: unknown }).params).toEqual({ name: 'a', rest: 'b' });
  });

  it('answers an unknown route with 404 and a wrong method with 405, as JSON errors', async () => {
    const missing = await fetch(`${stack.url}/api/nothing-here`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('NotFound');

    const wrongMethod = await fetch(`${stack.url}/api/echo/a`, { method: 'GET' });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
  });
});

describe('local host: Event Hubs trigger', () => {
  it('delivers a batch with the metadata the Functions host gives', async () => {
    await send('mdc-events', [{ n: 1 }, { n: 2 }, { n: 3 }], 'ep/blue');
    const batch = await eventually('three events', () => {
      const all = received.flatMap((r) => r.bodies);
      return all.length >= 3 ? received : undefined;
    });
    expect(batch.flatMap((r) => r.bodies)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    const first = batch[0]!.context;
    const meta = first.triggerMetadata as Record<string, unknown[]> & { partitionContext: Record<string, string> };
    const count = batch[0]!.bodies.length;
    expect(first.functionName).toBe('record');
    expect(meta.sequenceNumberArray).toHaveLength(count);
    expect(meta.sequenceNumberArray).toEqual([...Array(count).keys()]);
    expect(meta.offsetArray.every((o) => typeof o === 'string')).toBe(true);
    expect(meta.enqueuedTimeUtcArray.every((t) => !Number.isNaN(Date.parse(String(t))))).toBe(true);
    expect(meta.partitionKeyArray).toEqual(Array(count).fill('ep/blue'));
    expect(meta.propertiesArray).toEqual([...Array(count).keys()].map((index) => ({ index })));
    expect(meta.systemPropertiesArray[0]).toMatchObject({ 'x-opt-sequence-number': 0, 'x-opt-partition-key': 'ep/blue' });
    expect(meta.partitionContext).toMatchObject({ eventHubName: 'mdc-events', consumerGroup: '$Default' });
    expect(meta.partitionContext.partitionId).toMatch(/^[0-3]$/);
    // The arrays are built when read; they still look like plain data to whoever copies or logs them.
    const copy = JSON.parse(JSON.stringify(meta)) as Record<string, unknown>;
    expect(Object.keys(copy).sort()).toEqual(
      ['enqueuedTimeUtcArray', 'offsetArray', 'partitionContext', 'partitionKeyArray', 'propertiesArray', 'sequenceNumberArray', 'systemPropertiesArray'],
    );
    expect(copy.sequenceNumberArray).toEqual(meta.sequenceNumberArray);
  });

  it('after a restart, delivers no event it had checkpointed again', async () => {
    const partition = (received[0]!.context.triggerMetadata!.partitionContext as { partitionId: string }).partitionId;
    await eventually('the checkpoint of the first batch', async () => (await checkpoints('mdc-events')).get(partition) === 2);
    await host.close();
    host = await startLocalHost({ port: 0, functions, log: consoleLog('warning'), ownershipExpiryMs: 3_000 });

    await send('mdc-events', [{ n: 4 }, { n: 5 }], 'ep/blue');
    await eventually('the two new events', () => received.flatMap((r) => r.bodies).length >= 5);
    // Same partition key, same partition: a replay of 1-3 would have come before 4 and 5.
    expect(received.flatMap((r) => r.bodies)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }, { n: 5 }]);
    await eventually('the checkpoint of the second batch', async () => (await checkpoints('mdc-events')).get(partition) === 4);
  });

  it('under a retry policy, retries a failing batch and checkpoints only once it succeeds', async () => {
    await send('retry-hub', [{ job: 'a' }, { job: 'b' }], 'k');
    await eventually('the successful retry', () => retried.length >= 3);
    expect(retried.map((r) => r.context.retryContext?.retryCount)).toEqual([0, 1, 2]);
    expect(retried.map((r) => r.bodies)).toEqual(Array(3).fill([{ job: 'a' }, { job: 'b' }]));
    expect(checkpointsWhileFailing).toEqual([undefined, undefined]);
    await eventually('the checkpoint after success', async () => (await checkpoints('retry-hub')).get('0') === 1);
  });

  it('without a retry policy, checkpoints a batch whose invocation threw, as the Functions host does', async () => {
    await send('no-retry-hub', [{ bad: true }], 'k');
    await eventually('the checkpoint of the failed batch', async () => (await checkpoints('no-retry-hub')).get('0') === 0);
    expect(unretried).toHaveLength(1);
  });
});

describe('local host: timers and the admin API', () => {
  it('runs a timer function at once on POST /admin/functions/{name}', async () => {
    expect(ticks).toHaveLength(0);
    const response = await fetch(`${host.url}/admin/functions/tick`, { method: 'POST', body: '{}' });
    expect(response.status).toBe(202);
    expect(ticks).toHaveLength(1);
    expect(ticks[0]).toMatchObject({ isPastDue: false, schedule: { adjustForDST: true } });

    const unknown = await fetch(`${host.url}/admin/functions/nope`, { method: 'POST' });
    expect(unknown.status).toBe(404);
  });
});

describe('local host: health when a dependency is down', () => {
  it('answers 503 naming Event Hubs once the emulator is gone', async () => {
    // Only the health function, so that no consumer is left reconnecting to a dead emulator.
    await host.close();
    host = await startLocalHost({ port: 0, functions: { httpFunctions: { health: healthOptions } }, log: consoleLog('error') });
    await stack.emulator.close();
    const response = await fetch(`${host.url}/api/health`);
    expect(response.status).toBe(503);
    const body = (await response.json()) as Record<string, string>;
    expect(body).toMatchObject({ status: 'down', storage: 'up', eventHubs: 'down' });
    expect(body.eventHubsError).toBeTruthy();
  });
});
