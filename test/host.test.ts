import { EventHubProducerClient } from '@azure/event-hubs';
import http from 'node:http';
import { Readable } from 'node:stream';
import {
  HttpRequest,
  HttpResponse,
  type EventHubFunctionOptions,
  type HttpFunctionOptions,
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
const inBytes: Invocation[] = [];
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
  'node stream': () => ({ status: 200, headers: { 'content-type': 'text/csv' }, body: Readable.from([Buffer.from('a,b\n'), Buffer.from('1,2\n')]) as unknown as ReadableStream }),
  'form fields': () => ({ body: new URLSearchParams({ a: '1', b: 'two' }) }),
  'HttpResponse instance': () => new HttpResponse({ status: 203, jsonBody: { made: 'by hand' } }),
};

const answer: HttpFunctionOptions = { methods: ['GET'], route: 'answer/{name}', handler: async (request) => answers[request.params.name!]!() };

const badStatus: HttpFunctionOptions = { methods: ['GET'], route: 'bad-status', handler: async () => ({ status: 99, body: 'no' }) };

/** What a handler can see of a request, reading the body in the way `?read=` names, then trying to read it again. */
async function inspectRequest(request: HttpRequest): Promise<Record<string, unknown>> {
  const read = request.query.get('read') ?? 'body';
  let seen: unknown;
  if (read === 'json') seen = await request.json();
  else if (read === 'text') seen = await request.text();
  else if (read === 'arrayBuffer') seen = Buffer.from(await request.arrayBuffer()).toString('base64');
  else if (read === 'blob') {
    const blob = await request.blob();
    seen = { type: blob.type, text: await blob.text() };
  } else if (read === 'formData') seen = [...(await request.formData())].map(([k, v]) => [k, String(v)]);
  else if (read === 'clone') seen = [await request.clone().text(), await request.text()];
  else {
    let bytes = 0;
    for await (const chunk of request.body! as unknown as AsyncIterable<Uint8Array>) bytes += chunk.byteLength;
    seen = bytes;
  }
  let again: string;
  try {
    await request.text();
    again = 'read twice';
  } catch (error) {
    again = `${(error as Error).name}: ${(error as Error).message}`;
  }
  let clonedAfter: string;
  try {
    request.clone();
    clonedAfter = 'cloned';
  } catch (error) {
    clonedAfter = `${(error as Error).name}: ${(error as Error).message}`;
  }
  return {
    url: request.url,
    method: request.method,
    params: request.params,
    query: [...request.query],
    headers: ['content-type', 'x-custom'].map((name) => request.headers.get(name)),
    read,
    seen,
    again,
    clonedAfter,
    bodyUsed: request.bodyUsed,
  };
}

const inspect: HttpFunctionOptions = {
  methods: ['POST', 'PUT', 'PATCH'],
  route: 'inspect/{id}',
  handler: async (request) => ({ jsonBody: await inspectRequest(request) }),
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

/** `dataType: 'binary'` asks for each body's bytes, as the Node worker hands a collectionBytes binding. */
const bytes: EventHubFunctionOptions & { dataType: 'binary' } = {
  connection: 'MDC_EVENTHUB',
  eventHubName: 'bytes-hub',
  cardinality: 'many',
  dataType: 'binary',
  handler: async (bodies, context) => {
    inBytes.push({ bodies: bodies as unknown[], context });
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
  eventHubFunctions: { record, flaky, failing, bytes },
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
      { name: 'bytes-hub', partitionCount: 1 },
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

  const small = JSON.stringify({ rows: [{ a: 1 }, { b: 'twó' }] });
  const uploads: Array<[string, string, string, string]> = [
    ['body', 'POST', 'application/json', small],
    ['text', 'PUT', 'text/plain; charset=utf-8', '\ufeffwith a byte order mark'],
    ['json', 'POST', 'application/json', small],
    ['json', 'PATCH', 'application/json', '{"not json'],
    ['arrayBuffer', 'POST', 'application/octet-stream', 'bytes'],
    ['blob', 'POST', 'Application/JSON; Charset=UTF-8', small],
    ['formData', 'POST', 'application/x-www-form-urlencoded', 'a=1&b=two+words&a=3'],
    ['clone', 'PUT', 'text/plain', 'cloned twice'],
    ['body', 'POST', 'text/plain', ''],
    ['text', 'POST', 'text/plain', ''],
  ];

  it.each(uploads)('hands a small declared body, read by %s (%s, %s), as the library\'s own HttpRequest does', async (read, method, type, body) => {
    const path = `/api/inspect/small?read=${read}&q=1&q=2`;
    const headers = { 'content-type': type, 'x-custom': 'yes' };
    const response = await fetch(stack.url + path, { method, headers, body });
    const library = new HttpRequest({
      url: stack.url + path,
      method,
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      body: { bytes: Buffer.from(body) },
      params: { id: 'small' },
    });
    const expected = await inspectRequest(library).then(
      (value) => ({ status: 200, value }),
      (error: Error) => ({ status: 500, value: error.message }),
    );
    expect(response.status).toBe(expected.status);
    if (expected.status === 200) expect(await response.json()).toEqual(expected.value);
    else expect(((await response.json()) as { error: { message: string } }).error.message).toContain(expected.value);
  });

  it('streams a body larger than it buffers, and a chunked one, to the handler', async () => {
    const large = 'y'.repeat(bufferedRequestBodyBytes + 1);
    const big = await fetch(`${stack.url}/api/inspect/large`, { method: 'POST', body: large });
    expect(await big.json()).toMatchObject({ params: { id: 'large' }, seen: large.length, again: expect.stringMatching(/^TypeError/), bodyUsed: true });

    const chunked = await postChunked(`${stack.url}/api/inspect/chunked?read=text`, ['first,', 'second,', 'third']);
    expect(chunked.status).toBe(200);
    expect(JSON.parse(chunked.body)).toMatchObject({ params: { id: 'chunked' }, read: 'text', seen: 'first,second,third', headers: ['text/plain', null] });
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

  it("with dataType 'binary', hands each body as its bytes, unparsed", async () => {
    await send('bytes-hub', [{ n: 1 }, 'text', [1, 2]], 'k');
    const bodies = await eventually('three bodies', () => {
      const all = inBytes.flatMap((r) => r.bodies);
      return all.length >= 3 ? all : undefined;
    });
    expect(bodies.every((body) => Buffer.isBuffer(body))).toBe(true);
    expect(bodies.map((body) => (body as Buffer).toString('utf8'))).toEqual(['{"n":1}', '"text"', '[1,2]']);
    expect(inBytes[0]!.context.triggerMetadata!.sequenceNumberArray).toEqual([...Array(inBytes[0]!.bodies.length).keys()]);
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
