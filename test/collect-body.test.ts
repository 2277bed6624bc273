import { describe, expect, it } from 'vitest';
import { readRequestBody } from '../shared/collect/body-limit';
import { customBodyFormat, parseCustomBody } from '../shared/collect/custom-body';
import { isSampledIn, samplingScore } from '../shared/collect/sampling';
import { CollectorError } from '../shared/http-errors';

const bytes = (text: string) => Buffer.from(text, 'utf8');

function refusal(fn: () => unknown): CollectorError {
  try {
    fn();
  } catch (error) {
    if (error instanceof CollectorError) return error;
    throw error;
  }
  throw new Error('the body was accepted');
}

describe('custom logging bodies (SPEC §4)', () => {
  const rows = [
    { LIMIT_BAL: 502970, AGE: 54 },
    { LIMIT_BAL: 1000, AGE: 21 },
  ];

  it('takes records, columns and envelopes, all as records', () => {
    // A bare records body is also kept as its text, to be forwarded without a second serialisation.
    expect(parseCustomBody(bytes(` ${JSON.stringify(rows)}\n`), 'json')).toEqual([{ rows, rowsJson: JSON.stringify(rows) }]);
    expect(parseCustomBody(bytes(JSON.stringify({ LIMIT_BAL: [502970, 1000], AGE: [54, 21] })), 'json')).toEqual([{ rows }]);
    const envelope = { data: { LIMIT_BAL: [502970, 1000], AGE: [54, 21] }, correlationid: 'c-1', xrequestid: 'x-1', modelversion: '3', agent: 'a/1', time: '2024-03-05T19:16:25.123+01:00' };
    expect(parseCustomBody(bytes(JSON.stringify(envelope)), 'json')).toEqual([
      { rows, correlationid: 'c-1', xrequestid: 'x-1', modelversion: '3', agent: 'a/1', time: '2024-03-05T18:16:25Z' },
    ]);
  });

  it('reads a columns body with a column named data as columns', () => {
    expect(parseCustomBody(bytes('{"data":[1,2],"other":[3,4]}'), 'json')).toEqual([{ rows: [{ data: 1, other: 3 }, { data: 2, other: 4 }] }]);
  });

  it('takes NDJSON as one call per line, skipping blank lines', () => {
    const body = `${JSON.stringify(rows)}\n\n${JSON.stringify({ data: [rows[0]], correlationid: 'c-2' })}\n`;
    expect(parseCustomBody(bytes(body), 'ndjson')).toEqual([{ rows, rowsJson: JSON.stringify(rows) }, { rows: [rows[0]], correlationid: 'c-2' }]);
  });

  it.each([
    ['malformed JSON', '{"a": [1,', 'json', 'InvalidJson', undefined],
    ['an empty body', '', 'json', 'EmptyBody', undefined],
    ['a scalar', '42', 'json', 'InvalidData', undefined],
    ['records that are not objects', '[1, 2]', 'json', 'InvalidData', '[0]'],
    ['no rows', '[]', 'json', 'EmptyData', undefined],
    ['a column that is not a list', '{"a": [1], "b": 2}', 'json', 'InvalidData', 'b'],
    ['columns of different lengths', '{"a": [1, 2], "b": [1]}', 'json', 'InvalidData', 'b'],
    ['an envelope field of the wrong type', '{"data": [{"a": 1}], "modelversion": 5}', 'json', 'InvalidEnvelope', 'modelversion'],
    ['an envelope time without a zone', '{"data": [{"a": 1}], "time": "2024-03-05 18:16"}', 'json', 'InvalidEnvelope', 'time'],
    ['an unknown envelope field', '{"data": [{"a": 1}], "extra": {"x": 1}}', 'json', 'InvalidEnvelope', 'extra'],
    ['NDJSON with one bad line', '[{"a":1}]\n{"a": [1}\n[{"a":2}]', 'ndjson', 'InvalidJson', 'line 2'],
    ['NDJSON with one wrong line', '[{"a":1}]\n[{"a":2}]\n{"data": "x"}', 'ndjson', 'InvalidData', 'line 3.data'],
  ] as const)('refuses %s with a 400 naming where', (_case, body, format, code, path) => {
    const error = refusal(() => parseCustomBody(bytes(body), format));
    expect(error.status).toBe(400);
    expect(error.code).toBe(code);
    expect(error.path).toBe(path);
    expect(error.message.length).toBeGreaterThan(10);
  });

  it('refuses bytes that are not UTF-8', () => {
    expect(refusal(() => parseCustomBody(Buffer.from([0x5b, 0xff, 0x5d]), 'json')).code).toBe('InvalidEncoding');
  });

  it('takes JSON and NDJSON content types, and refuses others with 415', () => {
    expect(customBodyFormat('application/json; charset=utf-8')).toBe('json');
    expect(customBodyFormat(undefined)).toBe('json');
    expect(customBodyFormat('application/x-ndjson')).toBe('ndjson');
    expect(refusal(() => customBodyFormat('text/csv'))).toMatchObject({ status: 415, path: 'content-type' });
    expect(refusal(() => customBodyFormat('application/x-www-form-urlencoded'))).toMatchObject({ status: 415 });
  });
});

describe('request bodies and the size limit', () => {
  const url = 'http://127.0.0.1/api/collect/ep/blue/model_inputs';
  /** A fetch Request streaming `parts`, with no Content-Length unless given. */
  function streamed(parts: string[], headers: Record<string, string> = {}): { request: Request; pulled: () => number } {
    let pulled = 0;
    const pull = (controller: ReadableStreamDefaultController<Uint8Array>) => {
      if (pulled === parts.length) return controller.close();
      controller.enqueue(bytes(parts[pulled++]!));
    };
    // No read-ahead, so the count says how much the reader asked for.
    const body = new ReadableStream<Uint8Array>({ pull }, { highWaterMark: 0 });
    return { request: new Request(url, { method: 'POST', headers, body, duplex: 'half' } as RequestInit), pulled: () => pulled };
  }

  async function refusalOf(promise: Promise<unknown>): Promise<CollectorError> {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (error instanceof CollectorError) return error;
    throw error ?? new Error('the body was accepted');
  }

  it('takes a body with a Content-Length within the limit whole', async () => {
    const request = new Request(url, { method: 'POST', headers: { 'content-length': '9' }, body: '[{"a":1}]' });
    expect((await readRequestBody(request, 9)).toString()).toBe('[{"a":1}]');
  });

  it('refuses a declared Content-Length over the limit with 413 before reading any of it', async () => {
    const { request, pulled } = streamed(['[{"a":', '1}]'], { 'content-length': '9' });
    expect((await refusalOf(readRequestBody(request, 8))).status).toBe(413);
    expect(pulled()).toBe(0);
  });

  it('counts a body without a Content-Length as it streams in, and stops at the limit', async () => {
    expect((await readRequestBody(streamed(['[{"a":', '1}]']).request, 9)).toString()).toBe('[{"a":1}]');
    const { request, pulled } = streamed(['[{"a":', '1,"b":', '2}]', '...never read']);
    expect((await refusalOf(readRequestBody(request, 9))).status).toBe(413);
    expect(pulled()).toBeLessThan(4);
  });
});

describe('sampling (SPEC §4)', () => {
  const ids = Array.from({ length: 10_000 }, (_, i) => `request-${i}-${(i * 7919) % 10007}`);

  it('keeps between 27% and 33% of 10,000 correlation ids at a rate of 0.3', () => {
    const kept = ids.filter((id) => isSampledIn(id, 0.3)).length;
    expect(kept).toBeGreaterThanOrEqual(2_700);
    expect(kept).toBeLessThanOrEqual(3_300);
  });

  it('keeps nothing at 0 and everything at 1', () => {
    expect(ids.filter((id) => isSampledIn(id, 0)).length).toBe(0);
    expect(ids.filter((id) => isSampledIn(id, 1)).length).toBe(10_000);
  });

  it('scores ids in [0, 1), and a lower rate keeps a subset of what a higher one keeps', () => {
    for (const id of ids.slice(0, 500)) {
      expect(samplingScore(id)).toBeGreaterThanOrEqual(0);
      expect(samplingScore(id)).toBeLessThan(1);
    }
    const atHalf = new Set(ids.filter((id) => isSampledIn(id, 0.5)));
    expect(ids.filter((id) => isSampledIn(id, 0.3)).every((id) => atHalf.has(id))).toBe(true);
  });
});
