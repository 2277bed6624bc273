import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectOptions } from '../functions/collect';
import { deploymentsOptions } from '../functions/deployments';
import { isSampledIn } from '../shared/collect/sampling';
import { manualClock, setClock, systemClock } from '../shared/clock';
import { HubWatcher, send, type RawAnswer } from './support/collect-client';
import { startStack, type Stack } from './support/stack';

const workspaceId = '/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/workspaces/ws-1';
const maxBodyBytes = 3 * 1024 * 1024;

let stack: Stack;
let hub: HubWatcher;
const keys: Record<string, { ingestKey: string; readKey: string }> = {};

function put(endpoint: string, deployment: string, yaml: string, query = ''): Promise<RawAnswer> {
  return send(stack.url, 'PUT', `/api/deployments/${endpoint}/${deployment}${query}`, {
    headers: { 'x-mdc-admin-key': stack.adminKey, 'content-type': 'application/yaml' },
    body: yaml,
  });
}

function post(path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return send(stack.url, 'POST', `/api/collect/${path}`, { headers: { 'content-type': 'application/json', ...headers }, body });
}

async function register(endpoint: string, deployment: string, yaml: string): Promise<void> {
  const answer = await put(endpoint, deployment, yaml);
  expect(answer.status, answer.text).toBe(201);
  keys[`${endpoint}/${deployment}`] = { ingestKey: answer.json.ingestKey, readKey: answer.json.readKey };
}

const ingest = (endpoint: string, deployment: string) => ({ 'x-mdc-key': keys[`${endpoint}/${deployment}`]!.ingestKey });

const basic = `
name: blue
endpoint_name: credit-ep
model: azureml:credit:1
data_collector:
  request_logging:
    capture_headers: [x-user-id]
  collections:
    model_inputs:
      enabled: 'True'
    model_outputs:
      enabled: 'True'
    off_collection:
      enabled: 'False'
    request:
      enabled: 'True'
    response:
      enabled: 'True'
`;

beforeAll(async () => {
  stack = await startStack({
    functions: { httpFunctions: { collect: collectOptions, deployments: deploymentsOptions } },
    env: { MDC_AML_WORKSPACE_ID: workspaceId, MDC_MAX_BODY_BYTES: String(maxBodyBytes) },
  });
  hub = new HubWatcher(stack.eventHubConnectionString, stack.hubName);
  hub.start();
  await register('credit-ep', 'blue', basic);
  await register('credit-ep', 'green', basic);
});

afterAll(async () => {
  setClock(systemClock);
  await hub?.close();
  await stack?.stop();
});

const source = '/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/workspaces/ws-1/onlineEndpoints/credit-ep/deployments/blue';
const rows = [
  { LIMIT_BAL: 502970, AGE: 54 },
  { LIMIT_BAL: 20000, AGE: 31 },
];

describe('deployment admin API (SPEC §9)', () => {
  it('creates, shows, updates, rotates and deletes a deployment behind the admin key', async () => {
    const created = await put('admin-ep', 'blue', '{"data_collector":{"rolling_rate":"day","collections":{"model_inputs":{"enabled":"true"}}}}');
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ endpoint: 'admin-ep', deployment: 'blue', created: true, config: { rolling_rate: 'Day' } });
    const { ingestKey } = created.json;

    const shown = await send(stack.url, 'GET', '/api/deployments/admin-ep/blue', { headers: { 'x-mdc-admin-key': stack.adminKey } });
    expect(shown.status).toBe(200);
    expect(shown.json.config.collections.model_inputs.data.name).toBe('admin-ep-blue-model_inputs');
    expect(shown.text).not.toMatch(/key/i);

    const updated = await put('admin-ep', 'blue', 'data_collector:\n  collections:\n    model_inputs:\n      enabled: true\n');
    expect(updated.status).toBe(200);
    expect(updated.json.ingestKey).toBeUndefined();
    expect((await post('admin-ep/blue/model_inputs', JSON.stringify(rows), { 'x-mdc-key': ingestKey })).status).toBe(202);

    const rotated = await put('admin-ep', 'blue', 'data_collector:\n  collections:\n    model_inputs:\n      enabled: true\n', '?rotateKeys=true');
    expect(rotated.status).toBe(200);
    expect(rotated.json.ingestKey).toMatch(/^mdc_ingest_/);
    expect((await post('admin-ep/blue/model_inputs', JSON.stringify(rows), { 'x-mdc-key': ingestKey })).status).toBe(401);
    expect((await post('admin-ep/blue/model_inputs', JSON.stringify(rows), { 'x-mdc-key': rotated.json.ingestKey })).status).toBe(202);

    for (const headers of [{}, { 'x-mdc-admin-key': 'not-the-admin-key-at-all' }] as Record<string, string>[]) {
      const refused = await send(stack.url, 'GET', '/api/deployments/admin-ep/blue', { headers });
      expect(refused.status).toBe(401);
      expect(refused.json.error.code).toBe('InvalidAdminKey');
    }

    const deleted = await send(stack.url, 'DELETE', '/api/deployments/admin-ep/blue', { headers: { 'x-mdc-admin-key': stack.adminKey } });
    expect(deleted.status).toBe(204);
    const after = await post('admin-ep/blue/model_inputs', JSON.stringify(rows), { 'x-mdc-key': rotated.json.ingestKey });
    expect(after.status).toBe(404);
    expect(after.json.error.code).toBe('DeploymentNotFound');
    expect((await send(stack.url, 'GET', '/api/deployments/admin-ep/blue', { headers: { 'x-mdc-admin-key': stack.adminKey } })).status).toBe(404);
  });
});

describe('custom logging (SPEC §4, §5)', () => {
  it('records: one event with every §5 field, keyed by deployment', async () => {
    setClock(manualClock('2024-03-05T18:16:25.700Z'));
    const answer = await post('credit-ep/blue/model_inputs', JSON.stringify(rows), {
      ...ingest('credit-ep', 'blue'),
      'x-ms-client-request-id': 'client-req-1',
      'x-request-id': 'xreq-1',
      'user-agent': 'azureml-ai-monitoring/0.1.0b4',
    });
    setClock(systemClock);
    expect(answer.status, answer.text).toBe(202);
    expect(answer.json).toMatchObject({ accepted: 1, correlationid: 'client-req-1', sampled: true });
    expect(answer.headers['x-mdc-correlation-id']).toBe('client-req-1');
    const [seen] = await hub.events(answer.json.ids);
    expect(seen!.partitionKey).toBe('credit-ep/blue');
    expect(seen!.body).toEqual({
      v: 1,
      id: answer.json.ids[0],
      endpoint: 'credit-ep',
      deployment: 'blue',
      collection: 'model_inputs',
      source,
      type: 'azureml.inference.model_inputs',
      datacontenttype: 'application/json',
      time: '2024-03-05T18:16:25Z',
      correlationid: 'client-req-1',
      xrequestid: 'xreq-1',
      modelversion: 'default',
      collectdatatype: 'pandas.core.frame.DataFrame',
      agent: 'azureml-ai-monitoring/0.1.0b4',
      target: { container: 'azureml-blobstore', path: 'modelDataCollector/credit-ep/blue/model_inputs', rollingRate: 'Hour' },
      payload: { kind: 'inline', data: rows },
    });
  });

  it('forwards a records body as sent, whether or not blank space or a byte order mark surrounds it', async () => {
    const text = '[{"name": "zoë ✓", "n": 1.50}, {"name": "\\u00e9", "n": -2e3}]';
    const answers = [];
    for (const body of [text, ` \n${text}\r\n`, `\ufeff${text}`]) {
      const answer = await post('credit-ep/blue/model_inputs', body, ingest('credit-ep', 'blue'));
      expect(answer.status, answer.text).toBe(202);
      answers.push(answer);
    }
    const events = await hub.events(answers.map((a) => a.json.ids[0] as string));
    for (const event of events) expect(event.body.payload).toEqual({ kind: 'inline', data: JSON.parse(text) });
  });

  it('sends events of a collection to where its configuration says now, after a change as before it', async () => {
    const yaml = (path: string) => `data_collector:\n  collections:\n    model_inputs:\n      enabled: true\n      data:\n        path: azureml://datastores/workspaceblobstore/paths/${path}\n`;
    const created = await put('move-ep', 'blue', yaml('first/place'));
    expect(created.status).toBe(201);
    const key = { 'x-mdc-key': created.json.ingestKey as string };
    const before = await post('move-ep/blue/model_inputs', JSON.stringify(rows), key);
    expect((await put('move-ep', 'blue', yaml('second/place'))).status).toBe(200);
    const after = await post('move-ep/blue/model_inputs', JSON.stringify(rows), key);
    const [first, second] = await hub.events([before.json.ids[0] as string, after.json.ids[0] as string]);
    expect(first!.body.target.path).toBe('first/place');
    expect(second!.body.target.path).toBe('second/place');
  });

  it('columns and an envelope: the outputs call reuses the correlation id the inputs call returned', async () => {
    const inputs = await post('credit-ep/blue/model_inputs', JSON.stringify({ LIMIT_BAL: [502970, 20000], AGE: [54, 31] }), ingest('credit-ep', 'blue'));
    expect(inputs.status).toBe(202);
    const correlationid = inputs.json.correlationid as string;
    expect(correlationid).toMatch(/^[0-9a-f-]{36}$/);

    const envelope = { data: [{ score: 0.91 }, { score: 0.12 }], correlationid, modelversion: '7', agent: 'score.py/1', time: '2024-03-05T19:00:00.9+01:00' };
    const outputs = await post('credit-ep/blue/model_outputs', JSON.stringify(envelope), ingest('credit-ep', 'blue'));
    expect(outputs.status).toBe(202);
    expect(outputs.json.correlationid).toBe(correlationid);

    const [input, output] = await hub.events([...inputs.json.ids, ...outputs.json.ids]);
    expect(input!.body).toMatchObject({ correlationid, xrequestid: correlationid, payload: { kind: 'inline', data: rows }, type: 'azureml.inference.model_inputs' });
    expect(output!.body).toMatchObject({
      correlationid,
      modelversion: '7',
      agent: 'score.py/1',
      time: '2024-03-05T18:00:00Z',
      type: 'azureml.inference.model_outputs',
      target: { path: 'modelDataCollector/credit-ep/blue/model_outputs' },
      payload: { kind: 'inline', data: envelope.data },
    });
  });

  it('NDJSON: one event per line, each with its own correlation id', async () => {
    const body = [JSON.stringify(rows), JSON.stringify({ AGE: [1, 2, 3] }), JSON.stringify({ data: [{ AGE: 9 }], correlationid: 'nd-3' })].join('\n');
    const answer = await post('credit-ep/blue/model_inputs', body, { ...ingest('credit-ep', 'blue'), 'content-type': 'application/x-ndjson' });
    expect(answer.status, answer.text).toBe(202);
    expect(answer.json.accepted).toBe(3);
    expect(new Set(answer.json.correlationids).size).toBe(3);
    expect(answer.json.correlationids[2]).toBe('nd-3');
    const events = await hub.events(answer.json.ids);
    expect(events.map((e) => e.body.payload)).toEqual([
      { kind: 'inline', data: rows },
      { kind: 'inline', data: [{ AGE: 1 }, { AGE: 2 }, { AGE: 3 }] },
      { kind: 'inline', data: [{ AGE: 9 }] },
    ]);
    expect(events.map((e) => e.body.correlationid)).toEqual(answer.json.correlationids);
  });

  it('a disabled collection answers dropped with the reason and sends nothing', async () => {
    const before = await hub.count();
    expect(before).toBeGreaterThan(0);
    const answer = await post('credit-ep/blue/off_collection', JSON.stringify(rows), ingest('credit-ep', 'blue'));
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({ accepted: 0, dropped: 1, reason: 'collection_disabled', ids: [] });
    expect(await hub.count()).toBe(before);
  });

  it('a 2 MB JSON body is staged in blob storage and referenced', async () => {
    const big = Array.from({ length: 20_000 }, (_, i) => ({ id: i, text: 'x'.repeat(90) }));
    const body = JSON.stringify(big);
    expect(body.length).toBeGreaterThan(2_000_000);
    const answer = await post('credit-ep/blue/model_inputs', body, ingest('credit-ep', 'blue'));
    expect(answer.status, answer.text).toBe(202);
    const [seen] = await hub.events(answer.json.ids);
    const payload = seen!.body.payload;
    expect(payload).toMatchObject({ kind: 'staged', contentType: 'application/json', json: true, blob: `staging/credit-ep/blue/model_inputs/${answer.json.ids[0]}` });
    const staged = await stack.blobService.getContainerClient('mdc-system').getBlockBlobClient(payload.kind === 'staged' ? payload.blob : '').downloadToBuffer();
    expect(payload.kind === 'staged' && payload.bytes).toBe(staged.length);
    expect(JSON.parse(staged.toString('utf8'))).toEqual(big);
  });
});

describe('payload logging (SPEC §4, §5)', () => {
  it('logs the request as JSON and a failed response as raw bytes, with the x-mdc headers', async () => {
    const request = await post('credit-ep/blue/request', JSON.stringify({ input_data: [[1, 2]] }), {
      ...ingest('credit-ep', 'blue'),
      'x-request-id': 'req-42',
      'x-mdc-path': '/score',
      'x-mdc-method': 'post',
      'x-user-id': 'user-7',
      'x-not-captured': 'secret',
    });
    expect(request.status, request.text).toBe(202);
    expect(request.json.correlationid).toBe('req-42');

    const response = await post('credit-ep/blue/response', 'model crashed', {
      ...ingest('credit-ep', 'blue'),
      'content-type': 'text/plain; charset=utf-8',
      'x-request-id': 'req-42',
      'x-mdc-path': '/score',
      'x-mdc-method': 'POST',
      'x-mdc-status': '500',
      'x-mdc-duration-ms': '12.5',
    });
    expect(response.status, response.text).toBe(202);
    expect(response.json.correlationid).toBe('req-42');

    const [req, res] = await hub.events([...request.json.ids, ...response.json.ids]);
    expect(req!.body).toMatchObject({
      type: 'azureml.inference.request',
      correlationid: 'req-42',
      xrequestid: 'req-42',
      path: '/score',
      method: 'POST',
      headers: { 'x-user-id': 'user-7' },
      datacontenttype: 'application/json',
      payload: { kind: 'inline', data: { input_data: [[1, 2]] } },
    });
    expect(req!.body.headers).toEqual({ 'x-user-id': 'user-7' });
    expect(res!.body).toMatchObject({ type: 'azureml.inference.response', statuscode: 500, durationms: 12.5, datacontenttype: 'text/plain; charset=utf-8' });
    const payload = res!.body.payload;
    expect(payload).toMatchObject({ kind: 'staged', json: false, contentType: 'text/plain; charset=utf-8', bytes: 13 });
    const staged = await stack.blobService.getContainerClient('mdc-system').getBlockBlobClient(payload.kind === 'staged' ? payload.blob : '').downloadToBuffer();
    expect(staged.toString('utf8')).toBe('model crashed');
  });

  it('a 2 MB binary body is stored raw and referenced', async () => {
    const bytes = Buffer.alloc(2 * 1024 * 1024 + 17);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 0xff;
    const answer = await post('credit-ep/blue/request', bytes, { ...ingest('credit-ep', 'blue'), 'content-type': 'image/png' });
    expect(answer.status, answer.text).toBe(202);
    const [seen] = await hub.events(answer.json.ids);
    expect(seen!.body.datacontenttype).toBe('image/png');
    const payload = seen!.body.payload;
    expect(payload).toMatchObject({ kind: 'staged', json: false, contentType: 'image/png', bytes: bytes.length });
    const staged = await stack.blobService.getContainerClient('mdc-system').getBlockBlobClient(payload.kind === 'staged' ? payload.blob : '').downloadToBuffer();
    expect(staged.equals(bytes)).toBe(true);
  });
});

describe('sampling (SPEC §4)', () => {
  it('keeps or drops the inputs and outputs of one correlation id together, and per-collection rates override', async () => {
    await register(
      'sample-ep',
      'blue',
      `data_collector:
  sampling_rate: 0.5
  collections:
    model_inputs: { enabled: 'True' }
    model_outputs: { enabled: 'True' }
    never: { enabled: 'True', sampling_rate: 0 }
    always: { enabled: 'True', sampling_rate: 1.0 }
`,
    );
    const key = ingest('sample-ep', 'blue');
    const ids = Array.from({ length: 30 }, () => randomUUID());
    const keptIds: string[] = [];
    for (const id of ids) {
      const inputs = await post('sample-ep/blue/model_inputs', JSON.stringify({ data: rows, correlationid: id }), key);
      const outputs = await post('sample-ep/blue/model_outputs', JSON.stringify([{ score: 1 }]), { ...key, 'x-ms-client-request-id': id });
      expect(inputs.json.sampled).toBe(outputs.json.sampled);
      expect(inputs.json.accepted).toBe(outputs.json.accepted);
      expect(inputs.json.sampled).toBe(isSampledIn(id, 0.5));
      if (!inputs.json.sampled) expect(inputs.json).toMatchObject({ accepted: 0, dropped: 1, reason: 'sampled_out' });
      keptIds.push(...inputs.json.ids, ...outputs.json.ids);
      const never = await post('sample-ep/blue/never', JSON.stringify(rows), { ...key, 'x-request-id': id });
      const always = await post('sample-ep/blue/always', JSON.stringify(rows), { ...key, 'x-request-id': id });
      expect(never.json).toMatchObject({ accepted: 0, sampled: false });
      expect(always.json).toMatchObject({ accepted: 1, sampled: true });
    }
    const kept = ids.filter((id) => isSampledIn(id, 0.5)).length;
    expect(keptIds.length).toBe(2 * kept);
    const events = await hub.events(keptIds);
    expect(events.every((e) => isSampledIn(e.body.correlationid, 0.5))).toBe(true);
  });
});

describe('auth (SPEC §4)', () => {
  it.each([
    ['no key', {}, 'credit-ep/blue', 401, 'MissingKey'],
    ['a wrong key', { 'x-mdc-key': 'mdc_ingest_not-a-real-key' }, 'credit-ep/blue', 401, 'InvalidKey'],
    ["another deployment's key", 'green-ingest', 'credit-ep/blue', 403, 'KeyOfAnotherDeployment'],
    ['the read key', 'blue-read', 'credit-ep/blue', 403, 'WrongKeyKind'],
    ['an unknown deployment', 'blue-ingest', 'credit-ep/nosuch', 404, 'DeploymentNotFound'],
  ] as const)('%s gives %i', async (_case, key, deployment, status, code) => {
    const before = await hub.count();
    const headers =
      key === 'green-ingest'
        ? ingest('credit-ep', 'green')
        : key === 'blue-read'
          ? { 'x-mdc-key': keys['credit-ep/blue']!.readKey }
          : key === 'blue-ingest'
            ? ingest('credit-ep', 'blue')
            : key;
    const answer = await post(`${deployment}/model_inputs`, JSON.stringify(rows), headers);
    expect(answer.status).toBe(status);
    expect(answer.json.error.code).toBe(code);
    expect(answer.json.error.message.length).toBeGreaterThan(10);
    expect(await hub.count()).toBe(before);
  });
});

describe('bad input (SPEC §2, §3, §4)', () => {
  const tooBig = JSON.stringify([{ x: 'y'.repeat(maxBodyBytes) }]);
  const cases: Array<[string, () => Promise<RawAnswer>, number, string, string?]> = [
    ['malformed JSON', () => post('credit-ep/blue/model_inputs', '{"a": [1,', ingest('credit-ep', 'blue')), 400, 'InvalidJson'],
    ['records of the wrong type', () => post('credit-ep/blue/model_inputs', '[1, 2]', ingest('credit-ep', 'blue')), 400, 'InvalidData', '[0]'],
    ['columns of different lengths', () => post('credit-ep/blue/model_inputs', '{"a":[1,2],"b":[1]}', ingest('credit-ep', 'blue')), 400, 'InvalidData', 'b'],
    ['an envelope time that is not a time', () => post('credit-ep/blue/model_inputs', '{"data":[{"a":1}],"time":"yesterday"}', ingest('credit-ep', 'blue')), 400, 'InvalidEnvelope', 'time'],
    ['an empty body', () => post('credit-ep/blue/model_inputs', '', ingest('credit-ep', 'blue')), 400, 'EmptyBody'],
    ['an endpoint of ..', () => post('../blue/model_inputs', '[{"a":1}]', ingest('credit-ep', 'blue')), 400, 'InvalidName', 'endpoint'],
    ['a deployment with a /', () => post('credit-ep/bl/ue/model_inputs', '[{"a":1}]', ingest('credit-ep', 'blue')), 400, 'InvalidName', 'collection'],
    ['a deployment with %2F', () => post('credit-ep/bl%2Fue/model_inputs', '[{"a":1}]', ingest('credit-ep', 'blue')), 400, 'InvalidName', 'deployment'],
    ['an endpoint with a space', () => post('credit%20ep/blue/model_inputs', '[{"a":1}]', ingest('credit-ep', 'blue')), 400, 'InvalidName', 'endpoint'],
    ['a non-ASCII collection', () => post('credit-ep/blue/mod%C3%A9l', '[{"a":1}]', ingest('credit-ep', 'blue')), 400, 'InvalidName', 'collection'],
    ['an endpoint of 33 characters', () => post(`${'a'.repeat(33)}/blue/model_inputs`, '[{"a":1}]', ingest('credit-ep', 'blue')), 400, 'InvalidName', 'endpoint'],
    [
      'NDJSON with one bad line',
      () => post('credit-ep/blue/model_inputs', '[{"a":1}]\n[{"a":2}]\n{"a": oops}\n[{"a":4}]', { ...ingest('credit-ep', 'blue'), 'content-type': 'application/x-ndjson' }),
      400,
      'InvalidJson',
      'line 3',
    ],
    ['a body over the limit', () => post('credit-ep/blue/model_inputs', tooBig, ingest('credit-ep', 'blue')), 413, 'BodyTooLarge'],
    ['a wrong content type', () => post('credit-ep/blue/model_inputs', 'a,b\n1,2', { ...ingest('credit-ep', 'blue'), 'content-type': 'text/csv' }), 415, 'UnsupportedMediaType', 'content-type'],
    ['a bad x-mdc-status', () => post('credit-ep/blue/response', '{}', { ...ingest('credit-ep', 'blue'), 'x-mdc-status': 'ok' }), 400, 'InvalidHeader', 'x-mdc-status'],
    ['an unknown collection', () => post('credit-ep/blue/other_things', '[{"a":1}]', ingest('credit-ep', 'blue')), 404, 'CollectionNotFound', 'collection'],
    ['invalid YAML', () => put('bad-ep', 'blue', 'data_collector:\n  collections: [oops\n'), 400, 'InvalidYaml'],
    ['an unknown rolling_rate', () => put('bad-ep', 'blue', 'data_collector:\n  rolling_rate: Fortnight\n  collections:\n    model_inputs:\n      enabled: true\n'), 400, 'InvalidConfig', 'data_collector.rolling_rate'],
    ['an unmapped datastore', () => put('bad-ep', 'blue', 'collections:\n  model_inputs:\n    data:\n      path: azureml://datastores/elsewhere/paths/x\n'), 400, 'UnknownDatastore', 'data_collector.collections.model_inputs.data.path'],
    ['a deployment name with a space', () => put('bad-ep', 'bl%20ue', 'collections:\n  model_inputs:\n    enabled: true\n'), 400, 'InvalidName', 'deployment'],
  ];

  it.each(cases)('%s gives a clear %i and sends nothing', async (_case, call, status, code, path) => {
    const before = await hub.count();
    const answer = await call();
    expect(answer.status, answer.text).toBe(status);
    expect(answer.json.error.code).toBe(code);
    expect(answer.json.error.message.length).toBeGreaterThan(10);
    if (path !== undefined) expect(answer.json.error.path).toBe(path);
    expect(await hub.count()).toBe(before);
  });

  it('a refused registration leaves nothing registered', async () => {
    const shown = await send(stack.url, 'GET', '/api/deployments/bad-ep/blue', { headers: { 'x-mdc-admin-key': stack.adminKey } });
    expect(shown.status).toBe(404);
  });
});
