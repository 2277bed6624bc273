import { randomBytes, randomUUID } from 'node:crypto';
import { EventHubProducerClient } from '@azure/event-hubs';
import type { ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendOptions } from '../functions/append';
import type { HubEvent } from '../shared/hub-event';
import { partitionKeyOf } from '../shared/hub-event';
import { hubEvent } from './support/append-fixtures';
import { eventually, startStack, type Stack } from './support/stack';

/**
 * `append` end to end: messages on the emulator's hub, the local host's Event Hubs trigger, Azurite; the
 * files are read back with @azure/storage-blob as a user would.
 */

let stack: Stack;
let producer: EventHubProducerClient;
const data = 'azureml-blobstore';
const system = 'mdc-system';

beforeAll(async () => {
  stack = await startStack({ functions: { eventHubFunctions: { append: appendOptions } } });
  producer = new EventHubProducerClient(stack.eventHubConnectionString, stack.hubName);
}, 90_000);
afterAll(async () => {
  await producer?.close();
  await stack?.stop();
});

async function send(bodies: unknown[], partitionKey = 'ep/blue'): Promise<void> {
  const batch = await producer.createBatch({ partitionKey });
  for (const body of bodies) {
    if (!batch.tryAdd({ body })) throw new Error('batch full');
  }
  await producer.sendBatch(batch);
}

async function names(container: ContainerClient, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for await (const blob of container.listBlobsFlat({ prefix })) found.push(blob.name);
  return found.sort();
}

async function lines(container: ContainerClient, prefix: string): Promise<Record<string, unknown>[]> {
  const all: Record<string, unknown>[] = [];
  for (const name of await names(container, prefix)) {
    if (!name.endsWith('.jsonl')) continue;
    const text = (await container.getBlobClient(name).downloadToBuffer()).toString('utf8');
    all.push(...text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>));
  }
  return all;
}

function event(path: string, overrides: Partial<HubEvent> = {}): HubEvent {
  return hubEvent({ correlationid: randomUUID(), target: { container: data, path, rollingRate: 'Hour' }, ...overrides });
}

const inline = (e: HubEvent) => (e.payload.kind === 'inline' ? e.payload.data : undefined);

describe('append through the hub and the trigger', () => {
  it('writes the exact rolled paths for every rate, across boundaries and to another container', async () => {
    const root = `paths-${randomUUID().slice(0, 8)}`;
    const at = (rollingRate: HubEvent['target']['rollingRate'], time: string, container = data) =>
      event(`${root}/${rollingRate}`, { time, target: { container, path: `${root}/${rollingRate}`, rollingRate } });
    const events = [
      at('Minute', '2024-03-05T18:59:59Z'),
      at('Minute', '2024-03-05T19:00:00Z'),
      at('Hour', '2024-03-05T23:59:59Z'),
      at('Hour', '2024-03-06T00:00:00Z'),
      at('Day', '2024-03-31T23:59:59Z'),
      at('Day', '2024-04-01T00:00:00Z'),
      at('Month', '2024-12-31T23:59:59Z'),
      at('Month', '2025-01-01T00:00:00Z'),
      at('Year', '2024-12-31T23:59:59Z'),
      at('Year', '2025-01-01T00:00:00Z'),
      event(`${root}/custom/inputs`, { target: { container: 'custom-store', path: `${root}/custom/inputs`, rollingRate: 'Hour' } }),
    ];
    await send(events);
    const container = stack.blobService.getContainerClient(data);
    const found = await eventually('all rolled files', async () => {
      const listed = await names(container, root);
      return listed.length === 10 ? listed : undefined;
    });
    const partition = (found[0]!.split('/').pop() ?? '').replace('.jsonl', '');
    expect(found).toEqual(
      [
        `Day/2024/03/31`,
        `Day/2024/04/01`,
        `Hour/2024/03/05/23`,
        `Hour/2024/03/06/00`,
        `Minute/2024/03/05/18/59`,
        `Minute/2024/03/05/19/00`,
        `Month/2024/12`,
        `Month/2025/01`,
        `Year/2024`,
        `Year/2025`,
      ].map((folder) => `${root}/${folder}/${partition}.jsonl`),
    );
    const custom = stack.blobService.getContainerClient('custom-store');
    const customLines = await eventually('the custom container file', async () => {
      const got = await lines(custom, root);
      return got.length === 1 ? got : undefined;
    });
    expect(await names(custom, root)).toEqual([`${root}/custom/inputs/2024/03/05/18/${partition}.jsonl`]);
    expect(customLines[0]!.id).toBe(events[10]!.id);
  });

  it('writes lines with the SPEC fields, merged rows in order, and payload-log fields', async () => {
    const path = `lines-${randomUUID().slice(0, 8)}`;
    const shared = randomUUID();
    const events = [
      event(path, { correlationid: shared, payload: { kind: 'inline', data: [{ row: 1, name: 'Zoë' }] } }),
      event(path, { payload: { kind: 'inline', data: [{ other: true }] } }),
      event(path, { correlationid: shared, payload: { kind: 'inline', data: [{ row: 2, name: '東京' }, { row: 3 }] } }),
      event(path, {
        type: 'azureml.inference.response',
        path: '/score',
        method: 'POST',
        statuscode: 503,
        durationms: 41,
        headers: { 'x-user-id': 'u7' },
        payload: { kind: 'inline', data: { error: 'overloaded' } },
      }),
    ];
    await send(events);
    const container = stack.blobService.getContainerClient(data);
    const got = await eventually('the lines', async () => {
      const found = await lines(container, path);
      return found.length >= 3 ? found : undefined;
    });
    expect(got).toHaveLength(3);
    for (const line of got) {
      for (const field of ['specversion', 'id', 'source', 'type', 'datacontenttype', 'time', 'data', 'correlationid', 'xrequestid', 'modelversion', 'collectdatatype', 'agent', 'contentrange']) {
        expect(line).toHaveProperty(field);
      }
      const n = Buffer.byteLength(JSON.stringify(line.data), 'utf8');
      expect(line.contentrange).toBe(`bytes 0-${n - 1}/${n}`);
    }
    const merged = got.find((l) => l.correlationid === shared)!;
    expect(merged.id).toBe(events[0]!.id);
    expect(merged.data).toEqual([{ row: 1, name: 'Zoë' }, { row: 2, name: '東京' }, { row: 3 }]);
    expect(got.find((l) => l.id === events[1]!.id)!.data).toEqual(inline(events[1]!));
    expect(got.find((l) => l.id === events[3]!.id)).toMatchObject({ path: '/score', method: 'POST', statuscode: 503, durationms: 41, headers: { 'x-user-id': 'u7' } });
  });

  it('turns a 5 MB JSON payload into dataref and binary into datainblob, byte for byte', async () => {
    const path = `large-${randomUUID().slice(0, 8)}`;
    const staging = stack.blobService.getContainerClient(system);
    await staging.createIfNotExists();
    const large = Buffer.from(JSON.stringify(Array.from({ length: 120_000 }, (_, i) => ({ i, text: `row ${i} ünïcödé` }))));
    expect(large.length).toBeGreaterThan(5_000_000);
    const binary = randomBytes(2_000_000);
    await staging.getBlockBlobClient(`staged/${path}/large`).uploadData(large);
    await staging.getBlockBlobClient(`staged/${path}/binary`).uploadData(binary);
    const events = [
      event(path, { payload: { kind: 'staged', blob: `staged/${path}/large`, contentType: 'application/json', bytes: large.length, json: true } }),
      event(path, {
        datacontenttype: 'application/octet-stream',
        payload: { kind: 'staged', blob: `staged/${path}/binary`, contentType: 'application/octet-stream', bytes: binary.length, json: false },
      }),
    ];
    await send(events);
    const container = stack.blobService.getContainerClient(data);
    const got = await eventually('the two lines', async () => {
      const found = await lines(container, path);
      return found.length === 2 ? found : undefined;
    });
    const [ref, bin] = [got.find((l) => l.id === events[0]!.id)!, got.find((l) => l.id === events[1]!.id)!];
    expect(ref).not.toHaveProperty('data');
    expect(typeof ref.dataref).toBe('string');
    const refBlob = container.getBlobClient(decodeURIComponent(new URL(ref.dataref as string).pathname.split(`/${data}/`)[1]!));
    expect((await refBlob.downloadToBuffer()).equals(large)).toBe(true);
    expect(bin).toMatchObject({ datainblob: 'true', datacontenttype: 'application/octet-stream' });
    const binBlob = container.getBlobClient(decodeURIComponent(new URL(bin.data as string).pathname.split(`/${data}/`)[1]!));
    expect((await binBlob.downloadToBuffer()).equals(binary)).toBe(true);
  });

  it('dead-letters a malformed message and still writes the events after it in its partition', async () => {
    const path = `dead-${randomUUID().slice(0, 8)}`;
    const before = await lines(stack.blobService.getContainerClient(system), 'deadletter/');
    const after = [event(path), event(path)];
    await send(
      [event(path), { hello: 'not a hub event' }, 'plain text', Buffer.from('raw bytes, not JSON'), ...after],
      partitionKeyOf({ endpoint: 'ep', deployment: 'blue' }),
    );
    const container = stack.blobService.getContainerClient(data);
    const got = await eventually('the good lines', async () => {
      const found = await lines(container, path);
      return found.length === 3 ? found : undefined;
    });
    expect(got.slice(1).map((l) => l.id)).toEqual(after.map((e) => e.id));
    const letters = await eventually('three dead letters', async () => {
      const found = await lines(stack.blobService.getContainerClient(system), 'deadletter/');
      return found.length === before.length + 3 ? found.slice(before.length) : undefined;
    });
    // Each message as it was on the hub: the SDK sends a string as its JSON text, and bytes as they are.
    expect(letters.map((l) => l.message)).toEqual(['{"hello":"not a hub event"}', '"plain text"', 'raw bytes, not JSON']);
    for (const letter of letters) {
      expect(letter).toMatchObject({ reason: expect.any(String), partition: expect.any(String), sequenceNumber: expect.any(Number) });
    }
  });
});
