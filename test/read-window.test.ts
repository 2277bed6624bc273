import { BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startAzurite, type Azurite } from '../local/azurite';
import { encodeRows } from '../shared/read/encode';
import { joinedRows } from '../shared/read/join';
import type { Row } from '../shared/read/rows';
import { windowJsonl, windowRowBatches, windowRows } from '../shared/read/window-reader';
import { writeCollected } from './support/collected-data';
import { startStorageLog, type StorageLog } from './support/storage-log';

const container = 'azureml-blobstore';
const inputs = { container, path: 'modelDataCollector/ep/blue/model_inputs', rollingRate: 'Hour' as const, collection: 'model_inputs' };
const requests = { container, path: 'modelDataCollector/ep/blue/request', rollingRate: 'Hour' as const, collection: 'request' };

let azurite: Azurite;
let log: StorageLog;
let blobService: BlobServiceClient;

async function collect<T>(rows: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const row of rows) all.push(row);
  return all;
}

const window = (start: string, end: string) => ({ start: new Date(start), end: new Date(end) });

beforeAll(async () => {
  azurite = await startAzurite();
  log = await startStorageLog(azurite.port);
  blobService = BlobServiceClient.fromConnectionString(`${azurite.connectionString.replace(azurite.blobEndpoint, log.blobEndpoint)}`);
  // Hours 10..14 of one day, two writers (instances) in hour 12.
  for (const hour of [10, 11, 12, 13, 14]) {
    const h = String(hour).padStart(2, '0');
    await writeCollected(blobService, { ...inputs, instance: '0' }, [
      { time: `2024-03-05T${h}:05:00Z`, correlationid: `in-${h}-a`, collection: 'model_inputs', data: [{ x: hour, y: 'a' }, { x: hour + 0.5, y: 'b' }] },
      { time: `2024-03-05T${h}:45:00Z`, correlationid: `in-${h}-b`, collection: 'model_inputs', data: [{ x: -hour, y: 'c' }] },
    ]);
  }
  await writeCollected(blobService, { ...inputs, instance: '1' }, [
    { time: '2024-03-05T12:30:00Z', correlationid: 'in-12-c', collection: 'model_inputs', data: [{ x: 99, y: 'from instance 1' }] },
  ]);
  expect(azurite.blobEndpoint).not.toBe(log.blobEndpoint);
});

afterAll(async () => {
  await log?.close();
  await azurite?.stop();
});

beforeEach(() => {
  log.requests.length = 0;
});

describe('rows in a window', () => {
  it('returns only rows inside [start, end) and lists only the folders inside the window', async () => {
    const rows = await collect(windowRows(blobService, inputs, window('2024-03-05T11:30:00Z', '2024-03-05T13:30:00Z')));
    expect(rows.map((r) => r.rowid)).toEqual(['in-11-b_0', 'in-12-a_0', 'in-12-a_1', 'in-12-b_0', 'in-12-c_0', 'in-13-a_0', 'in-13-a_1']);
    expect(rows[1]).toEqual({ correlationid: 'in-12-a', rowid: 'in-12-a_0', time: '2024-03-05T12:05:00Z', x: 12, y: 'a' });
    const prefixes = log.listedPrefixes();
    expect(prefixes).toEqual([`${inputs.path}/2024/03/05/11/`, `${inputs.path}/2024/03/05/12/`, `${inputs.path}/2024/03/05/13/`]);
    // No blob of hours 10 or 14 was read either.
    const reads = log.requests.filter((r) => r.method === 'GET' && !r.url.searchParams.has('comp')).map((r) => r.url.pathname);
    expect(reads.every((p) => /\/2024\/03\/05\/1[123]\//.test(p))).toBe(true);
    expect(reads).toHaveLength(4);
  });

  it('gives the same rows as JSONL, blob after blob, and stops at a limit', async () => {
    const parsed = (chunks: Buffer[]) =>
      Buffer.concat(chunks)
        .toString('utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Row);
    const all = window('2024-03-05T00:00:00Z', '2024-03-06T00:00:00Z');
    const rows = await collect(windowRows(blobService, inputs, all));
    expect(rows).toHaveLength(16);
    expect(parsed(await collect(windowJsonl(blobService, inputs, all)))).toEqual(rows);
    expect(parsed(await collect(windowJsonl(blobService, inputs, all, { limit: 5 })))).toEqual(rows.slice(0, 5));
    const part = window('2024-03-05T11:30:00Z', '2024-03-05T13:30:00Z');
    expect(parsed(await collect(windowJsonl(blobService, inputs, part)))).toEqual(await collect(windowRows(blobService, inputs, part)));
  });

  it('honours limit and stops reading', async () => {
    const rows = await collect(windowRows(blobService, inputs, window('2024-03-05T00:00:00Z', '2024-03-06T00:00:00Z'), { limit: 3 }));
    expect(rows.map((r) => r.rowid)).toEqual(['in-10-a_0', 'in-10-a_1', 'in-10-b_0']);
    expect(log.listedPrefixes()).toEqual([`${inputs.path}/2024/03/05/`]);
  });

  it('gives an empty result, not an error, for a window with no data (and none for a missing container)', async () => {
    expect(await collect(windowRows(blobService, inputs, window('2024-03-06T00:00:00Z', '2024-03-07T00:00:00Z')))).toEqual([]);
    expect(await collect(windowRows(blobService, { ...inputs, container: 'no-such-container' }, window('2024-03-05T00:00:00Z', '2024-03-06T00:00:00Z')))).toEqual([]);
    const csv = Buffer.concat(await collect(encodeRows(windowRowBatches(blobService, inputs, window('2030-01-01T00:00:00Z', '2030-01-02T00:00:00Z')), 'csv', ['x', 'y']))).toString();
    expect(csv).toBe('correlationid,rowid,time,x,y\r\n');
  });

  it('writes CSV with a header and quoted fields', async () => {
    await writeCollected(blobService, { ...inputs, path: 'csv/case' }, [
      { time: '2024-03-05T10:00:00Z', correlationid: 'q', collection: 'model_inputs', data: [{ text: 'a, "quoted"\nvalue', n: 1, nested: { k: 'v' } }, { n: 2 }] },
    ]);
    const rows = windowRowBatches(blobService, { ...inputs, path: 'csv/case' }, window('2024-03-05T10:00:00Z', '2024-03-05T11:00:00Z'));
    const csv = Buffer.concat(await collect(encodeRows(rows, 'csv'))).toString();
    expect(csv).toBe(
      'correlationid,rowid,time,text,n,nested\r\n' +
        'q,q_0,2024-03-05T10:00:00Z,"a, ""quoted""\nvalue",1,"{""k"":""v""}"\r\n' +
        'q,q_1,2024-03-05T10:00:00Z,,2,\r\n',
    );
  });

  it('serves payload-log lines as one row each, data kept as JSON, and follows dataref and binary lines', async () => {
    const big = blobService.getContainerClient(container).getBlockBlobClient(`${requests.path}/2024/03/05/10/ev-big.json`);
    await big.upload('{"inputs":[1,2,3]}', 18);
    await writeCollected(blobService, requests, [
      { time: '2024-03-05T10:00:01Z', correlationid: 'r1', collection: 'request', data: { inputs: [[1, 2]] }, path: '/score', method: 'POST' },
      { time: '2024-03-05T10:00:02Z', correlationid: 'r2', collection: 'request', dataref: big.url, path: '/score', method: 'POST' },
      { time: '2024-03-05T10:00:03Z', correlationid: 'r3', collection: 'request', data: 'https://acct.blob/x/ev3', datainblob: 'true', datacontenttype: 'image/png', path: '/score', method: 'POST' },
    ]);
    const rows: Row[] = await collect(windowRows(blobService, requests, window('2024-03-05T10:00:00Z', '2024-03-05T11:00:00Z')));
    expect(rows).toEqual([
      { correlationid: 'r1', rowid: 'r1_0', time: '2024-03-05T10:00:01Z', data: { inputs: [[1, 2]] }, path: '/score', method: 'POST', datacontenttype: 'application/json' },
      { correlationid: 'r2', rowid: 'r2_0', time: '2024-03-05T10:00:02Z', data: { inputs: [1, 2, 3] }, path: '/score', method: 'POST', datacontenttype: 'application/json' },
      {
        correlationid: 'r3',
        rowid: 'r3_0',
        time: '2024-03-05T10:00:03Z',
        data: 'https://acct.blob/x/ev3',
        path: '/score',
        method: 'POST',
        datacontenttype: 'image/png',
        datainblob: 'true',
      },
    ]);
  });
});

describe('inputs joined to outputs', () => {
  it('pairs rows on correlation id and row index, across an hour boundary, and reports unmatched rows', async () => {
    const base = { container, rollingRate: 'Hour' as const };
    const ins = { ...base, path: 'join/in', collection: 'model_inputs' };
    const outs = { ...base, path: 'join/out', collection: 'model_outputs' };
    await writeCollected(blobService, ins, [
      { time: '2024-03-05T10:10:00Z', correlationid: 'a', collection: 'model_inputs', data: [{ f: 1 }, { f: 2 }] },
      { time: '2024-03-05T10:59:59Z', correlationid: 'late', collection: 'model_inputs', data: [{ f: 3 }] },
      { time: '2024-03-05T10:20:00Z', correlationid: 'lonely-in', collection: 'model_inputs', data: [{ f: 4 }] },
    ]);
    await writeCollected(blobService, outs, [
      { time: '2024-03-05T10:10:01Z', correlationid: 'a', collection: 'model_outputs', data: [{ p: 0.1 }] },
      { time: '2024-03-05T10:30:00Z', correlationid: 'lonely-out', collection: 'model_outputs', data: [{ p: 0.9 }] },
    ]);
    await writeCollected(blobService, outs, [{ time: '2024-03-05T11:00:00Z', correlationid: 'late', collection: 'model_outputs', data: [{ p: 0.3 }] }]);
    const rows = await collect(joinedRows(blobService, ins, outs, window('2024-03-05T10:00:00Z', '2024-03-05T12:00:00Z')));
    const byId = Object.fromEntries(rows.map((r) => [r.rowid as string, r]));
    expect(rows).toHaveLength(5);
    expect(byId['a_0']).toEqual({ correlationid: 'a', rowid: 'a_0', time: '2024-03-05T10:10:00Z', inputs: { f: 1 }, outputs: { p: 0.1 } });
    expect(byId['a_1']).toEqual({ correlationid: 'a', rowid: 'a_1', time: '2024-03-05T10:10:00Z', inputs: { f: 2 }, outputs: null });
    expect(byId['late_0']).toMatchObject({ inputs: { f: 3 }, outputs: { p: 0.3 } });
    expect(byId['lonely-in_0']).toMatchObject({ inputs: { f: 4 }, outputs: null });
    expect(byId['lonely-out_0']).toEqual({ correlationid: 'lonely-out', rowid: 'lonely-out_0', time: '2024-03-05T10:30:00Z', inputs: null, outputs: { p: 0.9 } });
  });
});
