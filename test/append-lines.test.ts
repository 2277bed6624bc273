import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hubEventSchema, type HubEvent } from '../shared/hub-event';
import { decodeBlockId, encodeBlockId } from '../shared/append/block-id';
import { buildDeadLetterLine, deadLetterFolder } from '../shared/append/dead-letter';
import { decodeHubEvent } from '../shared/append/decode';
import { buildLine, contentRange, planLines, serializeData } from '../shared/append/line';
import { rolledFileIndex, rolledFileName, rolledFolder, rolledFolderPath } from '../shared/append/rolled-path';
import { hubEvent } from './support/append-fixtures';

describe('rolled paths', () => {
  const at = '2024-03-05T18:16:25Z';
  it('gives the folder for each rolling rate, in UTC', () => {
    expect(rolledFolder(at, 'Year')).toBe('2024');
    expect(rolledFolder(at, 'Month')).toBe('2024/03');
    expect(rolledFolder(at, 'Day')).toBe('2024/03/05');
    expect(rolledFolder(at, 'Hour')).toBe('2024/03/05/18');
    expect(rolledFolder(at, 'Minute')).toBe('2024/03/05/18/16');
    expect(rolledFolder(new Date('2024-03-05T23:30:00+05:00'), 'Hour')).toBe('2024/03/05/18');
  });

  it('rolls exactly at hour, day, month and year boundaries', () => {
    expect(rolledFolder('2024-03-05T18:59:59Z', 'Hour')).toBe('2024/03/05/18');
    expect(rolledFolder('2024-03-05T19:00:00Z', 'Hour')).toBe('2024/03/05/19');
    expect(rolledFolder('2024-03-05T23:59:59Z', 'Day')).toBe('2024/03/05');
    expect(rolledFolder('2024-03-06T00:00:00Z', 'Day')).toBe('2024/03/06');
    expect(rolledFolder('2024-02-29T23:59:59Z', 'Month')).toBe('2024/02');
    expect(rolledFolder('2024-03-01T00:00:00Z', 'Month')).toBe('2024/03');
    expect(rolledFolder('2024-12-31T23:59:59Z', 'Minute')).toBe('2024/12/31/23/59');
    expect(rolledFolder('2025-01-01T00:00:00Z', 'Year')).toBe('2025');
    expect(rolledFolder('2025-01-01T00:00:00Z', 'Minute')).toBe('2025/01/01/00/00');
  });

  it('puts the folder under the collection path and names files by instance', () => {
    const target = { container: 'c1', path: 'modelDataCollector/ep/blue/model_inputs', rollingRate: 'Day' as const };
    expect(rolledFolderPath(target, '2024-03-05T18:16:25Z')).toBe('modelDataCollector/ep/blue/model_inputs/2024/03/05');
    expect(rolledFileName('3', 0)).toBe('3.jsonl');
    expect(rolledFileName('3', 2)).toBe('3_2.jsonl');
    expect(rolledFileIndex('3.jsonl', '3')).toBe(0);
    expect(rolledFileIndex('3_12.jsonl', '3')).toBe(12);
    expect(rolledFileIndex('31.jsonl', '3')).toBeUndefined();
    expect(rolledFileIndex('3_0.jsonl', '3')).toBeUndefined();
    expect(rolledFileIndex(`${randomUUID()}.json`, '3')).toBeUndefined();
  });
});

describe('lines', () => {
  it('writes the fields in the order of the SPEC example, with contentrange over the data bytes', () => {
    const event = hubEvent({ id: '00000000-0000-4000-8000-000000000001' });
    const line = buildLine(event, { kind: 'data', json: serializeData([{ LIMIT_BAL: 502970, AGE: 54 }]) });
    expect(line.endsWith('\n')).toBe(true);
    expect(line.slice(0, -1)).not.toContain('\n');
    const parsed = JSON.parse(line) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual([
      'specversion', 'id', 'source', 'type', 'datacontenttype', 'time', 'data',
      'correlationid', 'xrequestid', 'modelversion', 'collectdatatype', 'agent', 'contentrange',
    ]);
    // '[{"LIMIT_BAL":502970,"AGE":54}]' is 31 bytes.
    expect(parsed.contentrange).toBe('bytes 0-30/31');
    expect(parsed.data).toEqual([{ LIMIT_BAL: 502970, AGE: 54 }]);
  });

  it('counts UTF-8 bytes, not characters, and keeps newlines inside data escaped', () => {
    const data = [{ name: 'Zoë', city: '東京', note: 'a\nb', emoji: '🙂' }];
    const json = serializeData(data);
    const line = buildLine(hubEvent(), { kind: 'data', json });
    const n = Buffer.byteLength(JSON.stringify(data), 'utf8');
    expect(n).toBeGreaterThan(JSON.stringify(data).length);
    expect(JSON.parse(line).contentrange).toBe(`bytes 0-${n - 1}/${n}`);
    expect(line.split('\n')).toHaveLength(2);
    expect(contentRange(1)).toBe('bytes 0-0/1');
  });

  it('carries path, method, statuscode, durationms and headers on payload-log lines', () => {
    const event = hubEvent({ type: 'azureml.inference.response', path: '/score', method: 'POST', statuscode: 500, durationms: 12.5, headers: { 'x-user-id': 'u1' } });
    const parsed = JSON.parse(buildLine(event, { kind: 'data', json: '{"error":"boom"}' }));
    expect(parsed).toMatchObject({ path: '/score', method: 'POST', statuscode: 500, durationms: 12.5, headers: { 'x-user-id': 'u1' }, contentrange: 'bytes 0-15/16' });
  });

  it('is byte for byte the two objects the SPEC lists, stringified and joined around the payload', () => {
    const reference = (event: HubEvent, body: string, bytes: number) => {
      const head = JSON.stringify({ specversion: '1.0', id: event.id, source: event.source, type: event.type, datacontenttype: event.datacontenttype, time: event.time });
      const tail = JSON.stringify({
        correlationid: event.correlationid,
        xrequestid: event.xrequestid,
        modelversion: event.modelversion,
        collectdatatype: event.collectdatatype,
        agent: event.agent,
        path: event.path,
        method: event.method,
        statuscode: event.statuscode,
        durationms: event.durationms,
        headers: event.headers,
        contentrange: contentRange(bytes),
      });
      return `${head.slice(0, -1)},${body},${tail.slice(1)}\n`;
    };
    const plain = hubEvent({ source: 'a "quoted" \\ source', agent: 'zoë 🙂\u2028' });
    const logged = hubEvent({ path: '/score', method: 'POST', statuscode: 200, durationms: 0.25, headers: { 'x-a': 'b"c', 'x-d': '' } });
    const partial = hubEvent({ path: '/score', statuscode: 404 });
    for (const event of [plain, logged, partial]) {
      expect(buildLine(event, { kind: 'data', json: '[1,"é"]' })).toBe(reference(event, '"data":[1,"é"]', 8));
      expect(buildLine(event, { kind: 'dataref', url: 'http://x/"a"', bytes: 7 })).toBe(reference(event, '"dataref":"http://x/\\"a\\""', 7));
      expect(buildLine(event, { kind: 'inblob', url: 'http://x/a', bytes: 0 })).toBe(reference(event, '"data":"http://x/a","datainblob":"true"', 0));
    }
  });

  it('writes dataref lines and datainblob lines with the payload size', () => {
    const ref = JSON.parse(buildLine(hubEvent(), { kind: 'dataref', url: 'http://x/c/p/a.json', bytes: 5_000_000 }));
    expect(ref.dataref).toBe('http://x/c/p/a.json');
    expect(ref).not.toHaveProperty('data');
    expect(ref.contentrange).toBe('bytes 0-4999999/5000000');
    const bin = JSON.parse(buildLine(hubEvent({ datacontenttype: 'image/png' }), { kind: 'inblob', url: 'http://x/c/p/a', bytes: 10 }));
    expect(bin).toMatchObject({ data: 'http://x/c/p/a', datainblob: 'true', datacontenttype: 'image/png', contentrange: 'bytes 0-9/10' });
  });
});

describe('merging', () => {
  const item = (event: HubEvent) => ({ event });

  it('merges array data of one correlation id, rows in arrival order, and never across ids', () => {
    const a1 = hubEvent({ correlationid: 'a', payload: { kind: 'inline', data: [{ r: 1 }, { r: 2 }] } });
    const b1 = hubEvent({ correlationid: 'b', payload: { kind: 'inline', data: [{ r: 10 }] } });
    const a2 = hubEvent({ correlationid: 'a', payload: { kind: 'inline', data: [{ r: 3 }] } });
    const a3 = hubEvent({ correlationid: 'a', payload: { kind: 'inline', data: [] } });
    const lines = planLines([a1, b1, a2, a3].map(item), 4 * 1024 * 1024);
    expect(lines.map((l) => l.members.map((m) => m.event.id))).toEqual([[a1.id, a2.id, a3.id], [b1.id]]);
    expect(JSON.parse(lines[0]!.json!)).toEqual([{ r: 1 }, { r: 2 }, { r: 3 }]);
    const line = JSON.parse(buildLine(a1, { kind: 'data', json: lines[0]!.json! }));
    expect(line.id).toBe(a1.id);
    expect(line.contentrange).toBe(`bytes 0-${'[{"r":1},{"r":2},{"r":3}]'.length - 1}/${'[{"r":1},{"r":2},{"r":3}]'.length}`);
  });

  it('does not merge objects, payload-log lines or staged payloads, and starts a new line past the size limit', () => {
    const obj1 = hubEvent({ payload: { kind: 'inline', data: { a: 1 } } });
    const obj2 = hubEvent({ payload: { kind: 'inline', data: { a: 2 } } });
    const req1 = hubEvent({ path: '/score', method: 'POST', payload: { kind: 'inline', data: [1] } });
    const req2 = hubEvent({ path: '/score', method: 'POST', payload: { kind: 'inline', data: [2] } });
    const staged = hubEvent({ payload: { kind: 'staged', blob: 'staged/x', contentType: 'application/json', bytes: 10, json: true } });
    expect(planLines([obj1, obj2, req1, req2, staged].map(item), 1024)).toHaveLength(5);
    const big = (n: number) => hubEvent({ payload: { kind: 'inline', data: [{ s: 'x'.repeat(n) }] } });
    const lines = planLines([big(40), big(40), big(40)].map(item), 100);
    expect(lines.map((l) => l.members.length)).toEqual([2, 1]);
    expect(Buffer.byteLength(lines[0]!.json!)).toBeLessThanOrEqual(100);
  });
});

describe('block ids', () => {
  it('round-trips partition and sequence range at one fixed length', () => {
    const ids = [
      encodeBlockId({ partitionId: '0', firstSequenceNumber: 0, lastSequenceNumber: 0, part: 0 }),
      encodeBlockId({ partitionId: '31', firstSequenceNumber: 12345, lastSequenceNumber: 2 ** 53 - 1, part: 999999 }),
    ];
    expect(new Set(ids.map((id) => id.length)).size).toBe(1);
    expect(Buffer.from(ids[0]!, 'base64').length).toBeLessThanOrEqual(64);
    expect(decodeBlockId(ids[1]!)).toEqual({ partitionId: '31', firstSequenceNumber: 12345, lastSequenceNumber: 2 ** 53 - 1, part: 999999 });
    expect(decodeBlockId(Buffer.from('someone-else').toString('base64'))).toBeUndefined();
    expect(() => encodeBlockId({ partitionId: 'a/b', firstSequenceNumber: 0, lastSequenceNumber: 0, part: 0 })).toThrow(/partition id/);
  });
});

describe('decoding hub events', () => {
  it('accepts parsed JSON, JSON text and JSON bytes', () => {
    const event = hubEvent();
    const dataJson = serializeData((event.payload as { data: unknown }).data);
    expect(decodeHubEvent(event)).toEqual({ ok: true, event });
    expect(decodeHubEvent(JSON.stringify(event))).toEqual({ ok: true, event, dataJson });
    expect(decodeHubEvent(Buffer.from(JSON.stringify(event)))).toEqual({ ok: true, event, dataJson });
  });

  /** The data a line carries, built as append builds it, and the data JSON.parse finds in the body. */
  function lineDataOf(body: string): { line: unknown; parsed: unknown; dataJson: string | undefined } {
    const decoded = decodeHubEvent(Buffer.from(body));
    if (!decoded.ok) throw new Error(decoded.reason);
    const [planned] = planLines([{ event: decoded.event, ...(decoded.dataJson !== undefined ? { dataJson: decoded.dataJson } : {}) }], 4 * 1024 * 1024);
    const text = buildLine(decoded.event, { kind: 'data', json: planned!.json! });
    expect(text.indexOf('\n')).toBe(text.length - 1);
    return { line: (JSON.parse(text) as { data: unknown }).data, parsed: (JSON.parse(body) as { payload: { data: unknown } }).payload.data, dataJson: decoded.dataJson };
  }

  it("keeps the data's own text from a body as collect writes it, and the line carries exactly the parsed data", () => {
    const { payload: _payload, ...rest } = hubEvent();
    const head = `${JSON.stringify(rest).slice(0, -1)},"payload":{"kind":"inline","data":`;
    const texts = [
      '[{"a":1,"s":"x\\\\","q":"\\"},{\\"","u":"é\\u00e9"}]',
      '[ {"a": 1} , {"b": [2, 3]} ]',
      '{"nested":{"payload":{"kind":"inline","data":5}}}',
      '"just text"',
      '12.50',
      'null',
    ];
    for (const text of texts) {
      const result = lineDataOf(`${head}${text}}}`);
      expect(result.line).toEqual(result.parsed);
      expect(result.dataJson).toBe(text);
    }
  });

  it('serializes the parsed data again when the text cannot be proven to be exactly it, so a line is always one JSON line', () => {
    const { payload: _payload, ...rest } = hubEvent();
    const head = `${JSON.stringify(rest).slice(0, -1)},"payload":{"kind":"inline","data":`;
    const bodies = [
      // A line break between tokens: kept as is it would split the line.
      `${head}[\n  {"a": 1}\n]}}`,
      // Duplicate keys after the data: JSON.parse takes the last, the text would carry the first and more.
      `${head}1,"data":[3]}}`,
      `${head}1},"payload":{"kind":"inline","data":[4],"x":{"y":1}}}`,
      `${head}1},"other":{"payload":{"kind":"inline","data":2}}}`,
      // A marker inside the data is not the payload's.
      `${head}[{"x":1,"payload":{"kind":"inline","data":5}}]}}`,
      // Payload not last.
      `${JSON.stringify({ ...rest, payload: { kind: 'inline', data: [1] }, agent: 'late' })}`,
    ];
    for (const body of bodies) {
      const result = lineDataOf(body);
      expect(result.line).toEqual(result.parsed);
    }
    expect(lineDataOf(bodies[0]!).dataJson).toBeUndefined();
    expect(lineDataOf(bodies[1]!).dataJson).toBeUndefined();
  });

  it('merges rows whose texts came as they were, spaces and empty arrays included', () => {
    const { payload: _payload, ...rest } = hubEvent({ correlationid: 'm' });
    const head = `${JSON.stringify(rest).slice(0, -1)},"payload":{"kind":"inline","data":`;
    const items = ['[ {"r": 1} ]', '[ ]', '[{"r":2},{"r":3}]'].map((text) => {
      const decoded = decodeHubEvent(`${head}${text}}}`);
      if (!decoded.ok) throw new Error(decoded.reason);
      expect(decoded.dataJson).toBe(text);
      return { event: decoded.event, dataJson: decoded.dataJson! };
    });
    const lines = planLines(items, 4 * 1024 * 1024);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!.json!)).toEqual([{ r: 1 }, { r: 2 }, { r: 3 }]);
  });

  it('names why a message can never be written', () => {
    expect(decodeHubEvent('{not json')).toMatchObject({ ok: false, reason: expect.stringMatching(/^body is not JSON/) });
    expect(decodeHubEvent({ ...hubEvent(), id: 'nope' })).toMatchObject({ ok: false, reason: expect.stringMatching(/at id/) });
    expect(decodeHubEvent({ ...hubEvent(), time: '2024-13-45T99:99:99Z' })).toMatchObject({ ok: false, reason: expect.stringMatching(/time/) });
    const badContainer = hubEvent({ target: { container: 'Bad_Name', path: 'p', rollingRate: 'Hour' } });
    expect(decodeHubEvent(badContainer)).toMatchObject({ ok: false, reason: expect.stringMatching(/target.container/) });
    const badPath = hubEvent({ target: { container: 'good', path: 'a/../b', rollingRate: 'Hour' } });
    expect(decodeHubEvent(badPath)).toMatchObject({ ok: false, reason: expect.stringMatching(/target.path/) });
  });

  it('decides as the schema does, valid or not, with the same first issue (the compiled parser changes no outcome)', () => {
    const base = hubEvent();
    const staged = hubEvent({ payload: { kind: 'staged', blob: 'b', contentType: 'text/csv', bytes: 10, json: false } });
    const variants: unknown[] = [
      base,
      staged,
      { ...base, unknownField: 1 },
      { ...base, payload: { kind: 'inline' } },
      { ...base, path: '/score', method: 'POST', statuscode: 200, durationms: 1.5, headers: { a: 'b' } },
      { ...base, v: 2 },
      { ...base, endpoint: '' },
      { ...base, statuscode: 1.5 },
      { ...base, durationms: Number.NaN },
      { ...base, headers: { a: 1 } },
      { ...base, target: { ...base.target, rollingRate: 'Week' } },
      { ...base, target: { ...base.target, container: 'ab' } },
      { ...base, payload: { kind: 'other' } },
      { ...staged, payload: { ...staged.payload, bytes: -1 } },
      { ...staged, payload: { ...staged.payload, json: 'yes' } },
      { ...base, id: undefined },
      null,
      [],
      42,
    ];
    for (const variant of variants) {
      const expected = hubEventSchema.safeParse(variant);
      const decoded = decodeHubEvent(variant);
      expect(decoded.ok).toBe(expected.success);
      if (decoded.ok) expect(decoded.event).toEqual(expected.data);
      else if (!expected.success) {
        const issue = expected.error.issues[0]!;
        expect(decoded.reason).toBe(`invalid hub event at ${issue.path.length > 0 ? issue.path.join('.') : '(message)'}: ${issue.message}`);
      }
    }
  });

  it('keeps the raw message and its reason in a dead letter', () => {
    expect(deadLetterFolder('2024-03-05T18:16:25Z')).toBe('deadletter/2024/03/05/18');
    const line = JSON.parse(buildDeadLetterLine({ partitionId: '1', sequenceNumber: 7, enqueuedTime: '2024-03-05T18:16:25Z', body: '{oops', reason: 'r' }));
    expect(line).toEqual({ reason: 'r', partition: '1', sequenceNumber: 7, enqueuedTime: '2024-03-05T18:16:25.000Z', message: '{oops' });
    const binary = JSON.parse(buildDeadLetterLine({ partitionId: '1', sequenceNumber: 8, body: Buffer.from([0xff, 0x00]), reason: 'r' }));
    expect(binary).toMatchObject({ message: '/wA=', messageEncoding: 'base64' });
  });
});
