import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendOptions } from '../functions/append';
import { collectOptions } from '../functions/collect';
import { deploymentsOptions } from '../functions/deployments';
import { PayloadProxy } from '../sdk/proxy/proxy';
import { Collector } from '../sdk/typescript/src/index';
import { eventually, startStack, type Stack } from './support/stack';

/**
 * Each client against the local stack (host, Event Hubs emulator, Azurite): what it sends ends up in the
 * rolled JSONL blobs, inputs and outputs tied by one correlation id, read back as a user would.
 */

type Line = Record<string, unknown> & { correlationid: string; data: unknown };

let stack: Stack;
let ingestKey: string;
const root = path.resolve(__dirname, '..');
const container = 'azureml-blobstore';

beforeAll(async () => {
  stack = await startStack({
    functions: { httpFunctions: { collect: collectOptions, deployments: deploymentsOptions }, eventHubFunctions: { append: appendOptions } },
  });
  const enabled = { enabled: 'True' };
  const response = await fetch(`${stack.url}/api/deployments/credit/blue`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', 'x-mdc-admin-key': stack.adminKey },
    body: JSON.stringify({
      data_collector: {
        request_logging: { capture_headers: ['x-user-id'] },
        collections: { model_inputs: enabled, model_outputs: enabled, request: enabled, response: enabled },
      },
    }),
  });
  expect(response.status, await response.clone().text()).toBe(201);
  ingestKey = ((await response.json()) as { ingestKey: string }).ingestKey;
}, 90_000);

afterAll(async () => {
  await stack?.stop();
});

/** Every line of every rolled file of a collection, read with @azure/storage-blob. */
async function lines(collection: string): Promise<Line[]> {
  const client = stack.blobService.getContainerClient(container);
  const found: Line[] = [];
  if (!(await client.exists())) return found;
  for await (const blob of client.listBlobsFlat({ prefix: `modelDataCollector/credit/blue/${collection}/` })) {
    if (!blob.name.endsWith('.jsonl')) continue;
    const text = (await client.getBlobClient(blob.name).downloadToBuffer()).toString('utf8');
    found.push(...text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line));
  }
  return found;
}

async function lineWhere(collection: string, match: (line: Line) => boolean): Promise<Line> {
  return eventually(`a ${collection} line`, async () => (await lines(collection)).find(match), { timeoutMs: 45_000, intervalMs: 250 });
}

describe('clients end to end through the local stack', () => {
  it('TypeScript Collector: inputs and outputs land in the blobs with one correlation id', async () => {
    const errors: unknown[] = [];
    const inputs = new Collector({ name: 'model_inputs', url: stack.url, endpoint: 'credit', deployment: 'blue', key: ingestKey, onError: (e) => errors.push(e) });
    const outputs = new Collector({ name: 'model_outputs', url: `${stack.url}/api/collect/credit/blue`, key: ingestKey, onError: (e) => errors.push(e) });

    const context = inputs.collect([{ LIMIT_BAL: 111_001, AGE: 41 }, { LIMIT_BAL: 111_002, AGE: 42 }]);
    outputs.collect({ default_probability: [0.41, 0.42] }, context);
    await Promise.all([inputs.close(), outputs.close()]);
    expect(errors).toEqual([]);

    const id = context.getId();
    const input = await lineWhere('model_inputs', (l) => l.correlationid === id);
    const output = await lineWhere('model_outputs', (l) => l.correlationid === id);
    expect(input.data).toEqual([{ LIMIT_BAL: 111_001, AGE: 41 }, { LIMIT_BAL: 111_002, AGE: 42 }]);
    expect(output.data).toEqual([{ default_probability: 0.41 }, { default_probability: 0.42 }]);
    expect(input.type).toBe('azureml.inference.model_inputs');
    expect(input.agent).toBe('mdc-collector-js/0.1.0');
  });

  it('Python mdc_collector: the AML-style sample score.py logs inputs and outputs with one correlation id', async () => {
    const script = [
      'import importlib.util, json, sys',
      "sys.path[:0] = ['sdk/python']",
      'from tests import fake_pandas',
      "sys.modules['pandas'] = fake_pandas",
      "spec = importlib.util.spec_from_file_location('score', 'sdk/python/samples/score.py')",
      'score = importlib.util.module_from_spec(spec); spec.loader.exec_module(score)',
      'score.init()',
      'print(json.dumps(score.run(json.dumps({"data": {"LIMIT_BAL": [777001, 777002], "AGE": [31, 47]}}))))',
      'score.inputs_collector.close(timeout=30); score.outputs_collector.close(timeout=30)',
    ].join('\n');
    const child = spawn('python3', ['-c', script], {
      cwd: root,
      env: { ...process.env, MDC_URL: stack.url, MDC_KEY: ingestKey, MDC_ENDPOINT: 'credit', MDC_DEPLOYMENT: 'blue' },
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, out).toBe(0);
    expect(JSON.parse(out)).toEqual({ default_probability: { '0': 0.31, '1': 0.47 } });

    const input = await lineWhere('model_inputs', (l) => (l.data as Array<{ LIMIT_BAL?: number }>)[0]?.LIMIT_BAL === 777001);
    const output = await lineWhere('model_outputs', (l) => l.correlationid === input.correlationid);
    expect(input.data).toEqual([{ LIMIT_BAL: 777001, AGE: 31 }, { LIMIT_BAL: 777002, AGE: 47 }]);
    expect(output.data).toEqual([{ default_probability: 0.31 }, { default_probability: 0.47 }]);
    expect(input.collectdatatype).toBe('tests.fake_pandas.DataFrame');
    expect(input.agent).toBe('mdc-collector-py/0.1.0');
  });

  it('proxy: requests and responses, a 500 included, land in request/response with the shared id', async () => {
    const model = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const failed = req.url === '/fail';
        res.writeHead(failed ? 500 : 200, { 'content-type': 'application/json' });
        res.end(failed ? '{"error":"model crashed"}' : '{"predictions":[0.9]}');
      });
    });
    await new Promise<void>((resolve) => model.listen(0, '127.0.0.1', resolve));
    const proxy = new PayloadProxy({
      target: `http://127.0.0.1:${(model.address() as AddressInfo).port}`,
      collector: stack.url,
      endpoint: 'credit',
      deployment: 'blue',
      key: ingestKey,
    });
    const proxyUrl = `http://127.0.0.1:${await proxy.listen(0)}`;
    try {
      const ok = await fetch(`${proxyUrl}/score`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'proxy-e2e-ok', 'x-user-id': 'u-1' },
        body: '{"data":[[1,2]]}',
      });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ predictions: [0.9] });
      const fail = await fetch(`${proxyUrl}/fail`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'proxy-e2e-fail' }, body: '{}' });
      expect(fail.status).toBe(500);
      await proxy.logger.flush();
      expect(proxy.logger.stats).toEqual({ sent: 4, dropped: 0, failed: 0 });
    } finally {
      await proxy.close();
      await new Promise<void>((resolve) => model.close(() => resolve()));
    }

    const request = await lineWhere('request', (l) => l.correlationid === 'proxy-e2e-ok');
    const response = await lineWhere('response', (l) => l.correlationid === 'proxy-e2e-ok');
    expect(request).toMatchObject({ data: { data: [[1, 2]] }, path: '/score', method: 'POST', headers: { 'x-user-id': 'u-1' }, xrequestid: 'proxy-e2e-ok' });
    expect(response).toMatchObject({ data: { predictions: [0.9] }, statuscode: 200, path: '/score' });
    expect(typeof response.durationms).toBe('number');
    const failed = await lineWhere('response', (l) => l.correlationid === 'proxy-e2e-fail');
    expect(failed).toMatchObject({ statuscode: 500, data: { error: 'model crashed' } });
  });
});
