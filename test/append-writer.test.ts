import { randomBytes, randomUUID } from 'node:crypto';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type Azurite } from '../local/azurite';
import { appendEvents, type AppendOptions, type TriggeredEvent } from '../shared/append/append-events';
import { decodeBlockId } from '../shared/append/block-id';
import { RolledWriter, type RolledWriterOptions } from '../shared/append/rolled-writer';
import type { HubEvent } from '../shared/hub-event';
import { hubEvent } from './support/append-fixtures';

let azurite: Azurite;
let service: BlobServiceClient;
const systemContainer = 'mdc-system';

beforeAll(async () => {
  azurite = await startAzurite();
  service = BlobServiceClient.fromConnectionString(azurite.connectionString);
});
afterAll(async () => {
  await azurite?.stop();
});

/** A container of its own for each test, so that tests never read each other's files. */
function freshContainer(): string {
  return `data-${randomUUID().slice(0, 8)}`;
}

function options(writer: RolledWriter, extra: Partial<AppendOptions> = {}): AppendOptions {
  return { service, writer, systemContainer, ...extra };
}

function messages(events: unknown[], partitionId = '0', firstSequenceNumber = 0): TriggeredEvent[] {
  return events.map((body, i) => ({ partitionId, sequenceNumber: firstSequenceNumber + i, enqueuedTime: '2024-03-05T18:00:00Z', body }));
}

async function blobNames(container: ContainerClient, prefix?: string): Promise<string[]> {
  const names: string[] = [];
  for await (const blob of container.listBlobsFlat(prefix ? { prefix } : {})) names.push(blob.name);
  return names.sort();
}

async function readLines(container: ContainerClient, name: string): Promise<Record<string, unknown>[]> {
  const text = (await container.getBlobClient(name).downloadToBuffer()).toString('utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text.slice(0, -1).split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function allLines(container: ContainerClient, prefix: string): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  for (const name of await blobNames(container, prefix)) if (name.endsWith('.jsonl')) lines.push(...(await readLines(container, name)));
  return lines;
}

function inputs(container: string, count: number, overrides: (i: number) => Partial<HubEvent> = () => ({})): HubEvent[] {
  return Array.from({ length: count }, (_, i) =>
    hubEvent({
      correlationid: `corr-${i}`,
      target: { container, path: 'modelDataCollector/ep/blue/model_inputs', rollingRate: 'Hour' },
      payload: { kind: 'inline', data: [{ i }] },
      ...overrides(i),
    }),
  );
}

describe('appending to rolled files in Azurite', () => {
  it('writes each rolled folder once, at the exact paths, with lines that parse', async () => {
    const data = freshContainer();
    const other = freshContainer();
    const target = (rollingRate: HubEvent['target']['rollingRate'], container = data, path = 'modelDataCollector/ep/blue/model_inputs') => ({ container, path, rollingRate });
    const events = [
      hubEvent({ time: '2024-03-05T23:59:59Z', target: target('Hour') }),
      hubEvent({ time: '2024-03-06T00:00:00Z', target: target('Hour') }),
      hubEvent({ time: '2024-03-05T23:59:59Z', target: target('Minute', data, 'm') }),
      hubEvent({ time: '2024-03-05T23:59:59Z', target: target('Day', data, 'd') }),
      hubEvent({ time: '2024-12-31T23:59:59Z', target: target('Month', data, 'mo') }),
      hubEvent({ time: '2025-01-01T00:00:00Z', target: target('Year', data, 'y') }),
      hubEvent({ time: '2024-03-05T18:16:25Z', target: target('Hour', other, 'custom/place/inputs') }),
    ];
    const summary = await appendEvents(messages(events, '2'), options(new RolledWriter(service)));
    expect(summary).toMatchObject({ received: 7, written: 7, skipped: 0, deadLettered: 0, lines: 7 });
    expect(await blobNames(service.getContainerClient(data))).toEqual([
      'd/2024/03/05/2.jsonl',
      'm/2024/03/05/23/59/2.jsonl',
      'mo/2024/12/2.jsonl',
      'modelDataCollector/ep/blue/model_inputs/2024/03/05/23/2.jsonl',
      'modelDataCollector/ep/blue/model_inputs/2024/03/06/00/2.jsonl',
      'y/2025/2.jsonl',
    ]);
    expect(await blobNames(service.getContainerClient(other))).toEqual(['custom/place/inputs/2024/03/05/18/2.jsonl']);
    const [line] = await readLines(service.getContainerClient(other), 'custom/place/inputs/2024/03/05/18/2.jsonl');
    expect(line).toMatchObject({ specversion: '1.0', id: events[6]!.id, time: '2024-03-05T18:16:25Z', data: events[6]!.payload.kind === 'inline' ? events[6]!.payload.data : null });
  });

  it('writes a replayed batch nothing twice, also after a restart and with other batch boundaries', async () => {
    const data = freshContainer();
    const events = inputs(data, 30);
    const writer = new RolledWriter(service);
    expect(await appendEvents(messages(events.slice(0, 20)), options(writer))).toMatchObject({ written: 20, skipped: 0 });
    expect(await appendEvents(messages(events.slice(0, 20)), options(writer))).toMatchObject({ written: 0, skipped: 20 });
    // A new process knows nothing: it reads what was written from the committed block list.
    const restarted = new RolledWriter(service);
    expect(await appendEvents(messages(events.slice(10, 30), '0', 10), options(restarted))).toMatchObject({ written: 10, skipped: 10 });
    const lines = await allLines(service.getContainerClient(data), 'modelDataCollector');
    expect(lines.map((l) => l.id)).toEqual(events.map((e) => e.id));
  });

  it('loses nothing with two writers racing on one blob', async () => {
    const data = freshContainer();
    const events = inputs(data, 300);
    const a = new RolledWriter(service);
    const b = new RolledWriter(service);
    // The same partition handled twice at once from the same checkpoint (as when ownership moves), in
    // batches of different sizes.
    await Promise.all([
      (async () => {
        for (let i = 0; i < 200; i += 20) await appendEvents(messages(events.slice(i, i + 20), '0', i), options(a));
      })(),
      (async () => {
        for (let i = 0; i < 300; i += 25) await appendEvents(messages(events.slice(i, i + 25), '0', i), options(b));
      })(),
    ]);
    const lines = await allLines(service.getContainerClient(data), 'modelDataCollector');
    expect(lines.map((l) => l.id)).toEqual(events.map((e) => e.id));
  });

  it('redoes a commit that lost the race on a stale ETag, without writing twice', async () => {
    const data = freshContainer();
    const events = inputs(data, 30);
    const a = new RolledWriter(service);
    const b = new RolledWriter(service);
    await appendEvents(messages(events.slice(0, 10)), options(a));
    expect(await appendEvents(messages(events.slice(0, 20)), options(b))).toMatchObject({ written: 10, skipped: 10, conflicts: 0 });
    // `a` still holds the ETag from before `b` wrote: its commit fails with 412 and it re-reads.
    expect(await appendEvents(messages(events.slice(10, 30), '0', 10), options(a))).toMatchObject({ written: 10, skipped: 10, conflicts: 1 });
    const lines = await allLines(service.getContainerClient(data), 'modelDataCollector');
    expect(lines.map((l) => l.id)).toEqual(events.map((e) => e.id));
  });

  it('keeps both partitions when two writers share one file', async () => {
    const data = freshContainer();
    const files = { container: data, folder: 'shared/2024', instanceId: 'both' };
    const a = new RolledWriter(service);
    const b = new RolledWriter(service);
    const lines = (p: string) => async function* (pending: { sequenceNumber: number }[]) {
      for (const item of pending) yield `${JSON.stringify({ p, s: item.sequenceNumber })}\n`;
    };
    const batches = (w: RolledWriter, p: string) => async () => {
      for (let s = 0; s < 100; s += 10) {
        await w.write(files, p, Array.from({ length: 10 }, (_, i) => ({ sequenceNumber: s + i })), lines(p));
      }
    };
    await Promise.all([batches(a, '0')(), batches(b, '1')()]);
    const written = await readLines(service.getContainerClient(data), 'shared/2024/both.jsonl');
    for (const p of ['0', '1']) expect(written.filter((l) => l.p === p).map((l) => l.s)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('starts a new file before a file gets long, splits big writes into blocks, and finds the right file after a restart', async () => {
    const data = freshContainer();
    // Multi-byte text, so that block boundaries fall inside characters.
    const pad = 'xé漢🙂'.repeat(40);
    const events = inputs(data, 70, (i) => ({ payload: { kind: 'inline', data: [{ i, pad }] } }));
    const writerOptions: RolledWriterOptions = { maxBlocksPerFile: 3, blockBytes: 1024 };
    const writer = new RolledWriter(service, writerOptions);
    for (let i = 0; i < 70; i += 10) await appendEvents(messages(events.slice(i, i + 10), '5', i), options(writer));
    const container = service.getContainerClient(data);
    const folder = 'modelDataCollector/ep/blue/model_inputs/2024/03/05/18';
    const names = await blobNames(container, folder);
    expect(names.length).toBeGreaterThan(2);
    expect(names[0]).toBe(`${folder}/5.jsonl`);
    expect(names[1]).toBe(`${folder}/5_1.jsonl`);
    for (const name of names) {
      const list = await container.getBlockBlobClient(name).getBlockList('committed');
      const blocks = list.committedBlocks ?? [];
      expect(blocks.every((block) => block.size <= 1024)).toBe(true);
      // One write may overshoot the limit, never start past it.
      const writes = new Set(blocks.map((block) => decodeBlockId(block.name)!.firstSequenceNumber));
      expect(blocks.length - [...writes].length).toBeGreaterThan(0);
    }
    const restarted = new RolledWriter(service, writerOptions);
    expect(await appendEvents(messages(events.slice(40, 70), '5', 40), options(restarted))).toMatchObject({ written: 0, skipped: 30 });
    const lines = await allLines(container, folder);
    expect(lines.map((l) => l.id)).toEqual(events.map((e) => e.id));
    expect(lines.every((l) => (l.data as { pad: string }[])[0]!.pad === pad)).toBe(true);
  });

  it('inlines small staged JSON, writes large JSON as dataref and binary as datainblob, byte for byte', async () => {
    const data = freshContainer();
    const system = service.getContainerClient(systemContainer);
    await system.createIfNotExists();
    const small = Buffer.from(JSON.stringify([{ a: 'ü'.repeat(10) }], null, 2));
    const large = Buffer.from(JSON.stringify(Array.from({ length: 80_000 }, (_, i) => ({ i, text: 'lorem ipsum dolor sit amet, ü漢字 ' + i }))));
    expect(large.length).toBeGreaterThan(4 * 1024 * 1024);
    const binary = randomBytes(300_000);
    for (const [name, bytes] of [['staged/small', small], ['staged/large', large], ['staged/bin', binary]] as const) {
      await system.getBlockBlobClient(name).uploadData(bytes);
    }
    const target = { container: data, path: 'p', rollingRate: 'Hour' as const };
    const events = [
      hubEvent({ target, payload: { kind: 'staged', blob: 'staged/small', contentType: 'application/json', bytes: small.length, json: true } }),
      hubEvent({ target, payload: { kind: 'staged', blob: 'staged/large', contentType: 'application/json', bytes: large.length, json: true } }),
      hubEvent({ target, datacontenttype: 'image/png', payload: { kind: 'staged', blob: 'staged/bin', contentType: 'image/png', bytes: binary.length, json: false } }),
    ];
    await appendEvents(messages(events), options(new RolledWriter(service)));
    const container = service.getContainerClient(data);
    const [inline, ref, bin] = await readLines(container, 'p/2024/03/05/18/0.jsonl');
    expect(inline!.data).toEqual([{ a: 'ü'.repeat(10) }]);
    const compact = Buffer.byteLength(JSON.stringify([{ a: 'ü'.repeat(10) }]));
    expect(inline!.contentrange).toBe(`bytes 0-${compact - 1}/${compact}`);
    expect(ref).not.toHaveProperty('data');
    expect(ref!.dataref).toBe(container.getBlobClient(`p/2024/03/05/18/${events[1]!.id}.json`).url);
    expect(ref!.contentrange).toBe(`bytes 0-${large.length - 1}/${large.length}`);
    expect((await container.getBlobClient(`p/2024/03/05/18/${events[1]!.id}.json`).downloadToBuffer()).equals(large)).toBe(true);
    expect(bin).toMatchObject({ datainblob: 'true', datacontenttype: 'image/png', data: container.getBlobClient(`p/2024/03/05/18/${events[2]!.id}`).url });
    const copied = container.getBlobClient(`p/2024/03/05/18/${events[2]!.id}`);
    expect((await copied.downloadToBuffer()).equals(binary)).toBe(true);
    expect((await copied.getProperties()).contentType).toBe('image/png');
  });

  it('dead-letters what can never be written, once, and still writes the rest of the partition', async () => {
    const data = freshContainer();
    const good = inputs(data, 3);
    const missing = hubEvent({
      target: good[0]!.target,
      payload: { kind: 'staged', blob: `staged/${randomUUID()}`, contentType: 'application/json', bytes: 10, json: true },
    });
    const batch = messages([good[0], '{"not":"a hub event"}', good[1], { ...good[2]!, v: 2 }, missing, good[2]], '3', 100);
    const writer = new RolledWriter(service);
    expect(await appendEvents(batch, options(writer))).toMatchObject({ written: 3, deadLettered: 3 });
    expect(await appendEvents(batch, options(new RolledWriter(service)))).toMatchObject({ written: 0, deadLettered: 0, skipped: 3 });
    const lines = await allLines(service.getContainerClient(data), 'modelDataCollector');
    expect(lines.map((l) => l.id)).toEqual(good.map((e) => e.id));
    const letters = await readLines(service.getContainerClient(systemContainer), 'deadletter/2024/03/05/18/3.jsonl');
    expect(letters.map((l) => [l.sequenceNumber, l.partition])).toEqual([[101, '3'], [103, '3'], [104, '3']]);
    expect(letters[0]).toMatchObject({ message: '{"not":"a hub event"}', reason: expect.stringContaining('invalid hub event') });
    expect(letters[1]!.reason).toMatch(/at v/);
    expect(letters[2]!.reason).toMatch(/staged payload .* does not exist/);
  });
});
