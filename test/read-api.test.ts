import type { ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as functions from '../local/functions';
import { eventually, startStack, type Stack } from './support/stack';

/**
 * The read API and the assets timer through the local host, over real HTTP: data goes in with `collect`,
 * reaches the files through Event Hubs and `append`, the timer is run with `POST /admin/functions/...`, and a
 * monitor reads it back with its read key.
 */

let stack: Stack;
let data: ContainerClient;
const keys: Record<string, { ingestKey: string; readKey: string }> = {};
const inputsPath = 'modelDataCollector/ep-read/blue/model_inputs';

async function call(method: string, path: string, options: { headers?: Record<string, string>; body?: unknown } = {}): Promise<Response> {
  return fetch(`${stack.url}${path}`, {
    method,
    headers: { ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers },
    ...(options.body !== undefined ? { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) } : {}),
  });
}

async function register(endpoint: string, deployment: string, collections: string[]): Promise<void> {
  const body = { data_collector: { collections: Object.fromEntries(collections.map((c) => [c, { enabled: 'True' }])) } };
  const response = await call('PUT', `/api/deployments/${endpoint}/${deployment}`, { headers: { 'x-mdc-admin-key': stack.adminKey }, body });
  expect(response.status).toBe(201);
  const created = (await response.json()) as { ingestKey: string; readKey: string };
  keys[`${endpoint}/${deployment}`] = { ingestKey: created.ingestKey, readKey: created.readKey };
}

async function collect(collection: string, envelope: Record<string, unknown>): Promise<void> {
  const response = await call('POST', `/api/collect/ep-read/blue/${collection}`, { headers: { 'x-mdc-key': keys['ep-read/blue']!.ingestKey }, body: envelope });
  expect(response.status, await response.clone().text()).toBe(202);
}

/** Lines in the collection's files, as a user would count them. */
async function lineCount(prefix: string): Promise<number> {
  let count = 0;
  for await (const blob of data.listBlobsFlat({ prefix })) {
    if (!blob.name.endsWith('.jsonl')) continue;
    count += (await data.getBlobClient(blob.name).downloadToBuffer()).toString('utf8').split('\n').filter(Boolean).length;
  }
  return count;
}

async function blobTotals(prefix: string): Promise<{ count: number; bytes: number }> {
  let count = 0;
  let bytes = 0;
  for await (const blob of data.listBlobsFlat({ prefix })) {
    count += 1;
    bytes += blob.properties.contentLength ?? 0;
  }
  return { count, bytes };
}

async function runTimer(): Promise<void> {
  const response = await fetch(`${stack.url}/admin/functions/register-assets`, { method: 'POST' });
  expect(response.status, await response.clone().text()).toBe(202);
}

const admin = () => ({ 'x-mdc-admin-key': stack.adminKey });
const reader = (deployment = 'ep-read/blue') => ({ 'x-mdc-key': keys[deployment]!.readKey });
const jsonLines = (text: string) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
const window = 'start=2024-03-05T10:00:00Z&end=2024-03-05T11:00:00Z';

beforeAll(async () => {
  stack = await startStack({ functions });
  data = stack.blobService.getContainerClient('azureml-blobstore');
  await register('ep-read', 'blue', ['model_inputs', 'model_outputs', 'request']);
  await register('ep-read', 'green', ['model_inputs']);
  await collect('model_inputs', { correlationid: 'req-1', time: '2024-03-05T10:15:00Z', data: [{ a: 1, b: 'x, "y"' }, { a: 2, b: 'z' }] });
  await collect('model_outputs', { correlationid: 'req-1', time: '2024-03-05T10:15:01Z', data: [{ score: 0.5 }] });
  await collect('model_inputs', { correlationid: 'req-2', time: '2024-03-05T10:40:00Z', data: [{ a: 3, b: 'w' }] });
  await eventually('the inputs and outputs in the files', async () => (await lineCount(`${inputsPath}/`)) === 2 && (await lineCount('modelDataCollector/ep-read/blue/model_outputs/')) === 1);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('register-assets through the local host', () => {
  it('registers exactly the collections that have data, with their stats', async () => {
    await runTimer();
    const response = await call('GET', '/api/assets', { headers: admin() });
    expect(response.status).toBe(200);
    const { assets } = (await response.json()) as { assets: Record<string, unknown>[] };
    expect(assets.map((a) => a.name)).toEqual(['ep-read-blue-model_inputs', 'ep-read-blue-model_outputs']);
    const totals = await blobTotals(`${inputsPath}/`);
    expect(assets[0]).toMatchObject({
      version: '1',
      type: 'uri_folder',
      path: `azureml://datastores/workspaceblobstore/paths/${inputsPath}`,
      endpoint: 'ep-read',
      deployment: 'blue',
      collection: 'model_inputs',
      firstDataTime: '2024-03-05T10:15:00Z',
      lastDataTime: '2024-03-05T10:40:00Z',
      blobCount: totals.count,
      bytes: totals.bytes,
      columns: ['a', 'b'],
    });
    expect(assets[0]).not.toHaveProperty('progress');
    expect(assets[1]).toMatchObject({ firstDataTime: '2024-03-05T10:15:01Z', lastDataTime: '2024-03-05T10:15:01Z', columns: ['score'] });
  });

  it('moves the last data time when a new hour of data arrives', async () => {
    await collect('model_inputs', { correlationid: 'req-3', time: '2024-03-05T11:05:00Z', data: [{ a: 4, b: 'v' }] });
    await eventually('the new hour in the files', async () => (await lineCount(`${inputsPath}/2024/03/05/11/`)) === 1);
    await runTimer();
    const asset = (await (await call('GET', '/api/assets/ep-read-blue-model_inputs', { headers: reader() })).json()) as Record<string, unknown>;
    expect(asset).toMatchObject({ firstDataTime: '2024-03-05T10:15:00Z', lastDataTime: '2024-03-05T11:05:00Z', blobCount: (await blobTotals(`${inputsPath}/`)).count });
  });
});

describe('rows over HTTP', () => {
  it('streams the rows of a window as JSONL, each with correlationid, rowid and time first', async () => {
    const response = await call('GET', `/api/assets/ep-read-blue-model_inputs/data?${window}`, { headers: reader() });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    const rows = jsonLines(await response.text());
    expect(rows).toEqual([
      { correlationid: 'req-1', rowid: 'req-1_0', time: '2024-03-05T10:15:00Z', a: 1, b: 'x, "y"' },
      { correlationid: 'req-1', rowid: 'req-1_1', time: '2024-03-05T10:15:00Z', a: 2, b: 'z' },
      { correlationid: 'req-2', rowid: 'req-2_0', time: '2024-03-05T10:40:00Z', a: 3, b: 'w' },
    ]);
    expect(Object.keys(rows[0]!)).toEqual(['correlationid', 'rowid', 'time', 'a', 'b']);
  });

  it('writes CSV with a header and quoting, honours limit, and answers an empty window with no rows', async () => {
    const csv = await call('GET', `/api/assets/ep-read-blue-model_inputs/data?${window}&format=csv`, { headers: reader() });
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(await csv.text()).toBe(
      'correlationid,rowid,time,a,b\r\nreq-1,req-1_0,2024-03-05T10:15:00Z,1,"x, ""y"""\r\nreq-1,req-1_1,2024-03-05T10:15:00Z,2,z\r\nreq-2,req-2_0,2024-03-05T10:40:00Z,3,w\r\n',
    );
    const limited = await call('GET', `/api/assets/ep-read-blue-model_inputs/data?${window}&limit=2`, { headers: reader() });
    expect(jsonLines(await limited.text()).map((r) => r.rowid)).toEqual(['req-1_0', 'req-1_1']);
    const empty = await call('GET', '/api/assets/ep-read-blue-model_inputs/data?start=2023-01-01T00:00:00Z&end=2023-01-02T00:00:00Z', { headers: reader() });
    expect(empty.status).toBe(200);
    expect(await empty.text()).toBe('');
  });

  it('joins inputs to outputs on correlation id and row index, reporting unmatched rows', async () => {
    const response = await call('GET', `/api/deployments/ep-read/blue/joined?${window}`, { headers: reader() });
    expect(response.status).toBe(200);
    const rows = jsonLines(await response.text()).sort((x, y) => String(x.rowid).localeCompare(String(y.rowid)));
    expect(rows).toEqual([
      { correlationid: 'req-1', rowid: 'req-1_0', time: '2024-03-05T10:15:00Z', inputs: { a: 1, b: 'x, "y"' }, outputs: { score: 0.5 } },
      { correlationid: 'req-1', rowid: 'req-1_1', time: '2024-03-05T10:15:00Z', inputs: { a: 2, b: 'z' }, outputs: null },
      { correlationid: 'req-2', rowid: 'req-2_0', time: '2024-03-05T10:40:00Z', inputs: { a: 3, b: 'w' }, outputs: null },
    ]);
  });
});

describe('auth and bad requests', () => {
  const data = `/api/assets/ep-read-blue-model_inputs/data?${window}`;

  it.each([
    ['no key', {}, 401, 'MissingKey'],
    ['a wrong key', { 'x-mdc-key': 'mdc_read_not-a-key' }, 401, 'InvalidKey'],
    ['the read key of another deployment', 'green', 403, 'KeyOfAnotherDeployment'],
    ['the ingest key of the deployment', 'ingest', 403, 'WrongKeyKind'],
  ])('refuses %s', async (_, headers, status, code) => {
    const sent =
      headers === 'green' ? reader('ep-read/green') : headers === 'ingest' ? { 'x-mdc-key': keys['ep-read/blue']!.ingestKey } : (headers as Record<string, string>);
    for (const path of [data, '/api/assets/ep-read-blue-model_inputs', `/api/deployments/ep-read/blue/joined?${window}`]) {
      const response = await call('GET', path, { headers: sent });
      expect(response.status, path).toBe(status);
      expect(((await response.json()) as { error: { code: string } }).error.code, path).toBe(code);
    }
  });

  it('lets the admin key read everything, and a read key list only its own deployment', async () => {
    expect((await call('GET', data, { headers: admin() })).status).toBe(200);
    const green = (await (await call('GET', '/api/assets', { headers: reader('ep-read/green') })).json()) as { assets: unknown[] };
    expect(green.assets).toEqual([]);
    const blue = (await (await call('GET', '/api/assets', { headers: reader() })).json()) as { assets: { name: string }[] };
    expect(blue.assets.map((a) => a.name)).toEqual(['ep-read-blue-model_inputs', 'ep-read-blue-model_outputs']);
    expect((await call('GET', '/api/assets')).status).toBe(401);
  });

  it('answers 404 for an unknown asset', async () => {
    const response = await call('GET', `/api/assets/no-such-asset/data?${window}`, { headers: admin() });
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('AssetNotFound');
    expect((await call('GET', '/api/assets/no-such-asset', { headers: reader() })).status).toBe(404);
  });

  it.each([
    ['start', 'start=yesterday&end=2024-03-05T11:00:00Z'],
    ['start', 'end=2024-03-05T11:00:00Z'],
    ['start', 'start=2024-03-05T10:00:00&end=2024-03-05T11:00:00Z'],
    ['end', 'start=2024-03-05T10:00:00Z&end=2024-13-45T99:00:00Z'],
    ['end', 'start=2024-03-05T11:00:00Z&end=2024-03-05T10:00:00Z'],
    ['format', `${window}&format=parquet`],
    ['limit', `${window}&limit=0`],
    ['limit', `${window}&limit=ten`],
  ])('answers 400 naming %s for %s', async (path, query) => {
    const response = await call('GET', `/api/assets/ep-read-blue-model_inputs/data?${query}`, { headers: reader() });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: string; message: string; path: string } };
    expect(body.error.path).toBe(path);
    expect(body.error.message).toContain(path);
  });

  it('answers 400 for CSV from the join, which only speaks JSONL', async () => {
    const response = await call('GET', `/api/deployments/ep-read/blue/joined?${window}&format=csv`, { headers: reader() });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { path: string } }).error.path).toBe('format');
  });
});
