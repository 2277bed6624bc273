import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PartitionLog } from '../local/eventhubs/partition-log';

const dir = mkdtempSync(path.join(os.tmpdir(), 'mdc-partition-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const body = (n: number) => Buffer.from(`event-${n}-${'x'.repeat(n % 97)}`);
const texts = (buffers: Buffer[]) => buffers.map((b) => b.toString());

describe('partition log', () => {
  it('reads every event back as stored, from the memory cache and from the file, also after a reopen', () => {
    const file = path.join(dir, 'p0.log');
    // A cache of 2 KB holds a few dozen events: most reads cross from the file into the cache.
    const log = new PartitionLog(file, { cacheBytes: 2048 });
    const all: string[] = [];
    for (let batch = 0; batch < 300; batch++) {
      const size = 1 + (batch % 7);
      const encoders = Array.from({ length: size }, (_, i) => () => body(all.length + i));
      const metas = log.append(encoders);
      expect(metas.map((m) => m.sequenceNumber)).toEqual(Array.from({ length: size }, (_, i) => all.length + i));
      for (let i = 0; i < size; i++) all.push(body(all.length).toString());
    }
    expect(log.length).toBe(all.length);
    for (const [from, max] of [[0, 10], [500, 300], [all.length - 40, 40], [all.length - 5, 100], [0, all.length]] as const) {
      expect(texts(log.read(from, max)), `read(${from}, ${max})`).toEqual(all.slice(from, from + max));
    }
    log.close();

    const reopened = new PartitionLog(file, { cacheBytes: 2048 });
    expect(reopened.length).toBe(all.length);
    expect(texts(reopened.read(0, all.length))).toEqual(all);
    reopened.append([() => Buffer.from('after the reopen')]);
    expect(texts(reopened.read(all.length - 1, 5))).toEqual([all.at(-1), 'after the reopen']);
    reopened.close();
  });
});
