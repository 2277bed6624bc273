import { EventHubProducerClient } from '@azure/event-hubs';
import http from 'node:http';
import {
  HttpResponse,
  type EventHubFunctionOptions,
  type HttpFunctionOptions,
  type HttpRequest,
  type HttpResponseInit,
  type InvocationContext,
  type Timer,
  type TimerFunctionOptions,
} from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { healthOptions } from '../functions/health';
import { startLocalHost, type FunctionTables, type LocalHost } from '../local/host';
import { checkpointContainer } from '../local/host/event-hub-trigger';
import { bufferedRequestBodyBytes } from '../local/host/http-trigger';
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

/** What handlers return, by name: the host must answer each as the library's `HttpResponse` presents it. */
const answers: Record<string, () => HttpResponseInit | HttpResponse> = {
  json: () => ({ status: 202, headers: { 'x-mdc-correlation-id': 'c-1' }, jsonBody: { accepted: 1, ids: ['a'] } }),
  'json with its own type': () => ({ headers: { 'Content-Type': 'application/problem+json' }, jsonBody: { error: 'x' } }),
  'json over a body': () => ({ jsonBody: [1, 2], body: 'ignored' }),
  text: () => ({ status: 418, body: 'short and stout ✓' }),
  bytes: () => ({ body: Buffer.from([0, 1, 2, 255]), headers: [['content-type', 'application/octet-stream']] }),
  empty: () => ({ status: 201 }),
  cookies: () => ({
    headers: new Headers([['set-cookie', 'a=1'], ['x-two', '2']]),
    cookies: [{ name: 'b', value: 'two words', path: '/', httpOnly: true, sameSite: 'Strict' }],
    body: 'ok',
  }),
  'no content with a body': () => ({ status: 204, jsonBody: { dropped: true } }),
  stream: () => ({ body: new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode('streamed')), c.close()) }) }),
  'form fields': () => ({ body: new URLSearchParams({ a: '1', b: 'two' }) }),
  'HttpResponse instance': () => new HttpResponse({ status: 203, jsonBody: { made: 'by hand' } }),
};

const answer: HttpFunctionOptions = { methods: ['GET'], route: 'answer/{name}', handler: async (request) => answers[request.params.name!]!() };

const badStatus: HttpFunctionOptions = { methods: ['GET'], route: 'bad-status', handler: async () => ({ status: 99, body: 'no' }) };

/** Reports what a handler can see of the request, reading the body in the way `?read=` names. */
const inspect: HttpFunctionOptions = {
  methods: ['POST', 'PUT'],
  route: 'inspect/{id}',
  handler: async (request: HttpRequest) => {
    const read = request.query.get('read');
    let bytes: number;
    let parsed: unknown;
    if (read === 'json') {
      parsed = await request.json();
      bytes = JSON.stringify(parsed).length;
    } else if (read === 'text') bytes = (await request.text()).length;
    else {
      bytes = 0;
      for await (const chunk of request.body! as unknown as AsyncIterable<Uint8Array>) bytes += chunk.byteLength;
    }
    let again: string;
    try {
      await request.text();
      again = 'read twice';
    } catch (error) {
      again = (error as Error).name;
    }
    return {
      jsonBody: { id: request.params.id, read, bytes, parsed, again, bodyUsed: request.bodyUsed, type: request.headers.get('content-type'), method: request.method },
    };
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
  httpFunctions: { health: healthOptions, echo, answer, badStatus, inspect },
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

  it('passes route parameters, query and the body, and sends back status, headers and JSON', async () => {
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

/** Headers the host or Node add or frame themselves, which a `Response` object does not have; cookies are compared apart. */
const framing = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'set-cookie']);

function headersOf(headers: Headers): [string, string][] {
  return [...headers].filter(([name]) => !framing.has(name));
}

/** A chunked upload (no Content-Length), as `http.request` sends it. */
function postChunked(url: string, chunks: string[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'text/plain' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

describe('local host: what handlers return and receive', () => {
  it.each(Object.keys(answers))('answers "%s" as the library\'s HttpResponse presents it', async (name) => {
    const expected = (() => {
      const made = answers[name]!();
      return made instanceof HttpResponse ? made : new HttpResponse(made);
    })();
    const response = await fetch(`${stack.url}/api/answer/${encodeURIComponent(name)}`);
    expect(response.status).toBe(expected.status);
    const cookies = [...expected.headers.getSetCookie(), ...expected.cookies.map((c) => `${c.name}=${encodeURIComponent(c.value)}`)];
    expect(response.headers.getSetCookie().map((c) => c.split(';')[0])).toEqual(cookies);
    expect(headersOf(response.headers)).toEqual(headersOf(expected.headers));
    expect(Buffer.from(await response.arrayBuffer())).toEqual(Buffer.from(await expected.arrayBuffer()));
  });

  it('answers 500 InvalidResponse when the library would refuse what the handler returned', async () => {
    const response = await fetch(`${stack.url}/api/bad-status`);
    expect(response.status).toBe(500);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('InvalidResponse');
  });

  it.each(['body', 'text', 'json'])('gives a small declared body whole, read through request.%s, once only', async (read) => {
    const sent = { rows: [{ a: 1 }, { b: 'two' }] };
    const response = await fetch(`${stack.url}/api/inspect/small?read=${read}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(sent),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      id: 'small',
      read,
      bytes: JSON.stringify(sent).length,
      ...(read === 'json' ? { parsed: sent } : {}),
      again: 'TypeError',
      bodyUsed: true,
      type: 'application/json',
      method: 'PUT',
    });
  });

  it('streams a body larger than it buffers, and a chunked one, to the handler', async () => {
    const large = 'y'.repeat(bufferedRequestBodyBytes + 1);
    const big = await fetch(`${stack.url}/api/inspect/large`, { method: 'POST', body: large });
    expect(await big.json()).toMatchObject({ id: 'large', bytes: large.length, again: 'TypeError', bodyUsed: true });

    const chunked = await postChunked(`${stack.url}/api/inspect/chunked?read=text`, ['first,', 'second,', 'third']);
    expect(chunked.status).toBe(200);
    expect(JSON.parse(chunked.body)).toMatchObject({ id: 'chunked', read: 'text', bytes: 'first,second,third'.length, type: 'text/plain' });
  });

  it('gives an empty declared body as an empty stream, as the library does', async () => {
    const response = await fetch(`${stack.url}/api/inspect/empty`, { method: 'POST', headers: { 'content-length': '0' } });
    expect(await response.json()).toMatchObject({ id: 'empty', bytes: 0, bodyUsed: true });
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
