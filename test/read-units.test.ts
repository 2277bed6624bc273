import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { csvLine } from '../shared/read/csv';
import { splitLines } from '../shared/read/lines';
import { folderStart, rolledFolder, windowPrefixes } from '../shared/read/rolled-folders';
import { JsonlChunks, linesBatch, type JsonlPiece } from '../shared/read/jsonl-chunks';
import { openJsonlStream } from '../shared/read/jsonl-threads';
import { fullScanLine, quickScanLine, scanLine, scannedRowsText } from '../shared/read/line-scan';
import { buildLine, serializeData } from '../shared/append/line';
import { hubEvent } from './support/append-fixtures';
import { parseLine, pushRows, rowsOfLine, type Row } from '../shared/read/rows';

const noRefs = async () => {
  throw new Error('no dataref expected');
};

describe('rolled folders', () => {
  it('names folders per rolling rate, in UTC', () => {
    const t = new Date('2024-03-05T18:16:25Z');
    expect(rolledFolder('Year', t)).toBe('2024');
    expect(rolledFolder('Month', t)).toBe('2024/03');
    expect(rolledFolder('Day', t)).toBe('2024/03/05');
    expect(rolledFolder('Hour', t)).toBe('2024/03/05/18');
    expect(rolledFolder('Minute', t)).toBe('2024/03/05/18/16');
    expect(folderStart('Hour', '2024/03/05/18')?.toISOString()).toBe('2024-03-05T18:00:00.000Z');
    expect(folderStart('Hour', '2024/03/05')).toBeUndefined();
    expect(folderStart('Hour', '2024/02/30/01')).toBeUndefined();
  });

  it('lists hours at the edges and whole days in between', () => {
    const prefixes = windowPrefixes('Hour', new Date('2024-03-05T22:30:00Z'), new Date('2024-03-07T01:10:00Z')).map((p) => p.prefix);
    expect(prefixes).toEqual(['2024/03/05/22/', '2024/03/05/23/', '2024/03/06/', '2024/03/07/00/', '2024/03/07/01/']);
  });

  it('crosses a month and a year end with coarse prefixes where they fit', () => {
    const prefixes = windowPrefixes('Day', new Date('2023-11-30T00:00:00Z'), new Date('2025-01-02T00:00:00Z')).map((p) => p.prefix);
    expect(prefixes).toEqual(['2023/11/30/', '2023/12/', '2024/', '2025/01/01/']);
  });

  it('gives no prefix for an empty window', () => {
    expect(windowPrefixes('Hour', new Date('2024-03-05T10:00:00Z'), new Date('2024-03-05T10:00:00Z'))).toEqual([]);
  });
});

describe('lines', () => {
  it('splits chunks at newlines, joining lines cut across chunks, keeping multi-byte characters whole', async () => {
    const text = 'a\n{"x":"é€"}\n\nlast';
    const bytes = Buffer.from(text);
    const chunks = [bytes.subarray(0, 5), bytes.subarray(5, 9), bytes.subarray(9)];
    const lines: string[] = [];
    for await (const line of splitLines(Readable.from(chunks))) lines.push(line);
    expect(lines).toEqual(['a', '{"x":"é€"}', 'last']);
  });

  it('gives the same lines wherever the chunks are cut', async () => {
    const bytes = Buffer.from('{"a":"é"}\n\nxy€\nz\n\nend');
    const expected = ['{"a":"é"}', 'xy€', 'z', 'end'];
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        const lines: string[] = [];
        for await (const line of splitLines(Readable.from([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]))) lines.push(line);
        expect(lines, `cut at ${i} and ${j}`).toEqual(expected);
      }
    }
  });
});

describe('csv', () => {
  it('quotes commas, quotes and newlines, and writes objects as JSON', () => {
    expect(csvLine(['plain', 'a,b', 'say "hi"', 'two\nlines', 3, null, undefined, { k: [1, 2] }, true])).toBe(
      'plain,"a,b","say ""hi""","two\nlines",3,,,"{""k"":[1,2]}",true\r\n',
    );
  });
});

describe('rows of a line', () => {
  it('splits records into rows named <correlationid>_<rowIndex>', async () => {
    const rows = await rowsOfLine({ time: '2024-03-05T18:16:25Z', correlationid: 'c1', data: [{ a: 1 }, { a: 2, time: 'shadow' }] }, { payload: false, resolveRef: noRefs });
    expect(rows).toEqual([
      { correlationid: 'c1', rowid: 'c1_0', time: '2024-03-05T18:16:25Z', a: 1 },
      { correlationid: 'c1', rowid: 'c1_1', time: '2024-03-05T18:16:25Z', a: 2 },
    ]);
    expect(Object.keys(rows[1]!)).toEqual(['correlationid', 'rowid', 'time', 'a']);
  });

  it('keeps a payload-log line as one row with data as JSON', async () => {
    const rows = await rowsOfLine(
      { time: '2024-03-05T18:16:25Z', correlationid: 'c1', data: { input: [1, 2] }, path: '/score', method: 'POST', statuscode: 200 },
      { payload: true, resolveRef: noRefs },
    );
    expect(rows).toEqual([{ correlationid: 'c1', rowid: 'c1_0', time: '2024-03-05T18:16:25Z', data: { input: [1, 2] }, path: '/score', method: 'POST', statuscode: 200 }]);
  });

  it('reads the rows of a dataref line from the referenced payload', async () => {
    const rows = await rowsOfLine({ time: 't', correlationid: 'c', dataref: 'http://x/blob' }, { payload: false, resolveRef: async (url) => [{ url }] });
    expect(rows).toEqual([{ correlationid: 'c', rowid: 'c_0', time: 't', url: 'http://x/blob' }]);
  });
});

describe('line scan (the JSONL fast path)', () => {
  // Whatever the scan takes, its rows must be exactly what parsing the line gives; what it cannot take it refuses.
  const slowRows = (text: string) => {
    const rows: Row[] = [];
    pushRows(rows, parseLine(text)!, false);
    return rows;
  };
  const taken = [
    '{"time":"2024-03-05T18:16:25Z","correlationid":"c1","data":[{"A":1,"B":"x"},{"A":2,"B":"y, \\"z\\""}],"contentrange":"bytes 0-1/2"}',
    '{"specversion":"1.0","data":[{}, {"nested":{"k":[1,{"q":"]}"}]}}],"correlationid":"c-2","time":"2024-03-05T18:16:25Z"}',
    '{ "correlationid" : "c3" , "time" : "2024-03-05T18:16:25Z" , "data" : [ { "A" : null } ] }',
    '{"correlationid":"c4","time":"2024-03-05T18:16:25Z","data":[]}',
    '{"correlationid":"c5","time":"2024-03-05T18:16:25Z","data":[{"s":"back\\\\"},{"u":"\\u00e9t\\u00e9"}]}',
  ];
  it.each(taken)('copies records as parsing would: %s', (text) => {
    const scanned = scanLine(text);
    expect(scanned).toBeDefined();
    const fast = scannedRowsText(text, scanned!);
    expect(fast.endsWith('\n')).toBe(scanned!.records.length > 0);
    // Same values and the same column order: the text is compared after one parse on each side.
    expect(fast.split('\n').filter(Boolean).map((l) => JSON.stringify(JSON.parse(l)))).toEqual(slowRows(text).map((row) => JSON.stringify(row)));
  });

  const refused = [
    ['a record with its own id column', '{"correlationid":"c","time":"t","data":[{"rowid":"mine"}]}'],
    ['columns, not records', '{"correlationid":"c","time":"t","data":{"A":[1,2]}}'],
    ['a dataref line', '{"correlationid":"c","time":"t","dataref":"http://x","data":[]}'],
    ['an escaped correlation id', '{"correlationid":"c\\"d","time":"t","data":[{"A":1}]}'],
    ['scalars in data', '{"correlationid":"c","time":"t","data":[1,2]}'],
    ['no correlation id', '{"time":"t","data":[{"A":1}]}'],
    ['trailing text', '{"correlationid":"c","time":"t","data":[{"A":1}]} x'],
    ['a cut line', '{"correlationid":"c","time":"t","data":[{"A":1}'],
  ];
  it.each(refused)('leaves %s to the parser', (_, text) => {
    expect(scanLine(text!)).toBeUndefined();
  });
});

describe('quick line scan (lines as append writes them)', () => {
  const slowRows = (text: string) => {
    const rows: Row[] = [];
    pushRows(rows, parseLine(text)!, false);
    return rows.map((row) => JSON.stringify(row));
  };
  const written = (data: unknown) => buildLine(hubEvent(), { kind: 'data', json: serializeData(data) }).trimEnd();
  // The quick scan sees latin1 text of the UTF-8 bytes, as the read worker hands it over.
  const asRead = (line: string) => Buffer.from(line).toString('latin1');
  const quickRows = (line: string) => {
    const text = asRead(line);
    const scanned = quickScanLine(text, 0, text.length);
    if (!scanned) return undefined;
    return Buffer.from(scannedRowsText(text, scanned), 'latin1').toString('utf8').split('\n').filter(Boolean).map((l) => JSON.stringify(JSON.parse(l)));
  };

  const taken: [string, unknown][] = [
    ['numbers and strings', [{ AGE: 54, LIMIT_BAL: 502970.5, SEX: 'F', PAY: -1 }, { AGE: 20, LIMIT_BAL: 0, SEX: 'M', PAY: 2 }]],
    ['no rows', []],
    ['an empty record', [{}]],
    ['text beyond ASCII', [{ name: 'Zoë 東京 🙂', n: 1 }]],
    ['opening braces in text', [{ a: '{', b: 'x,{y' }, { a: 'z' }]],
    ['null and booleans', [{ a: null, b: true, c: false }]],
  ];
  it.each(taken)('takes %s, with the rows parsing gives', (_, data) => {
    const line = written(data);
    expect(quickRows(line)).toEqual(slowRows(line));
  });

  const refused: [string, unknown][] = [
    ['a nested object', [{ a: { b: 1 } }, { a: 2 }]],
    ['a nested object last', [{ a: 1, b: { c: '}' } }]],
    ['an array in a record', [{ a: [1, 2] }]],
    ['a bracket in a string', [{ a: '[' }]],
    ['a closing bracket in a string', [{ a: ']' }]],
    ['a closing brace in a string', [{ a: 'x},{y' }, { a: 1 }]],
    ['a closing brace in a last string', [{ a: '}' }]],
    ['a record with its own time column', [{ time: 'mine', a: 1 }]],
    ['a record with its own rowid column', [{ rowid: 'mine' }]],
    ['a key in quotes', [{ 'odd"key': 1 }]],
    ['an escaped string', [{ a: 'line\nbreak' }]],
    ['scalars', [1, 2]],
    ['columns, not records', { A: [1, 2] }],
  ];
  it.each(refused)('leaves %s to the full scan, which gives the rows parsing gives', (_, data) => {
    const line = written(data);
    const text = asRead(line);
    // The caller hands over only lines without a backslash.
    if (text.indexOf('\\') < 0) expect(quickScanLine(text, 0, text.length)).toBeUndefined();
    const scanned = scanLine(line);
    if (scanned) expect(scannedRowsText(line, scanned).split('\n').filter(Boolean).map((l) => JSON.stringify(JSON.parse(l)))).toEqual(slowRows(line));
    else expect(fullScanLine(line)).toBeUndefined();
  });

  it('reads a line in the middle of a chunk without running into the next one', () => {
    const first = written([{ a: 1 }]);
    const second = written([{ b: 2 }, { b: 3 }]);
    const text = `${first}\n${second}\n`;
    const scanned = quickScanLine(text, first.length + 1, text.length - 1);
    expect(scanned?.records.length).toBe(4);
    expect(quickScanLine(text, 0, first.length)?.records.length).toBe(2);
    // A line cut short never borrows the next line's end.
    expect(quickScanLine(text, 0, first.length - 5)).toBeUndefined();
  });

  it('gives the same rows through the read worker, wherever the chunks are cut', async () => {
    // The columns line is one the scans cannot take: the rows after it are written into a buffer of their own.
    const lines = [
      written([{ a: 1, s: 'Zoë' }, { a: 2 }]),
      written([{}]),
      written([{ a: '{', t: 'x,{y' }]),
      written([{ a: { nested: true } }]),
      written([]),
      written({ A: [1, 2] }),
      written(Array.from({ length: 105 }, (_, i) => ({ b: i, s: 'ü' }))),
    ];
    const blob = Buffer.from(`${lines.join('\n')}\n`);
    const expected = lines.flatMap((line) => slowRows(line));
    const window = { whole: true, from: 0, to: 0 };
    for (let cut = 1; cut < blob.length; cut += 13) {
      const threaded = openJsonlStream(window);
      const answers = await Promise.all([threaded.push(Uint8Array.from(blob.subarray(0, cut))), threaded.push(blob.subarray(cut)), threaded.end()]);
      threaded.close();
      const got = answers.flat().flatMap((piece) => (piece.kind === 'rows' ? Buffer.from(piece.bytes).toString('utf8').split('\n').filter(Boolean) : slowRows(piece.text)));
      // Byte for byte what serializing the parsed rows gives, as the lines hold no whitespace to keep.
      expect(got, `cut at ${cut}`).toEqual(expected);
    }
  });

  it('writes the rows into the batch buffer it is given, as into a buffer of its own', async () => {
    const lines = [
      written([{ a: 1, s: 'Zoë' }, { a: 2 }]),
      written({ A: [1, 2] }),
      written(Array.from({ length: 11 }, (_, i) => ({ b: i }))),
      written([{ a: { nested: true } }]),
      written([{}]),
    ];
    const expected = lines.flatMap((line) => slowRows(line));
    const window = { whole: true, from: 0, to: 0 };
    const rowsOf = (pieces: JsonlPiece[]) =>
      pieces.flatMap((piece) => (piece.kind === 'rows' ? Buffer.from(piece.bytes).toString('utf8').split('\n').filter(Boolean) : slowRows(piece.text)));
    // Batches of whole lines, as the reader hands them over; the last one without its newline.
    for (let first = 1; first < lines.length; first++) {
      const parts = [`${lines.slice(0, first).join('\n')}\n`, lines.slice(first).join('\n')].map((text) => Buffer.from(text));
      const batches = () =>
        parts.map((part) => {
          const batch = linesBatch(part.length);
          part.copy(batch);
          return batch;
        });
      const inline = new JsonlChunks(window);
      const pieces = batches().flatMap((batch) => inline.push(batch, true));
      expect(rowsOf([...pieces, ...inline.end()]), `first batch of ${first} line(s)`).toEqual(expected);
      const threaded = openJsonlStream(window);
      const answers = await Promise.all([...batches().map((batch) => threaded.push(batch, true)), threaded.end()]);
      threaded.close();
      expect(rowsOf(answers.flat()), `first batch of ${first} line(s), on the worker`).toEqual(expected);
    }
  });

  it('leaves lines of another shape to the full scan', () => {
    const parsed = JSON.parse(written([{ a: 1 }]));
    const reordered = JSON.stringify({ correlationid: parsed.correlationid, time: parsed.time, data: parsed.data });
    expect(quickScanLine(reordered, 0, reordered.length)).toBeUndefined();
    expect(scanLine(reordered)).toBeDefined();
  });
});

describe('JSONL chunks (what the read worker does)', () => {
  const line = (cid: string, time: string, data: unknown) => JSON.stringify({ time, correlationid: cid, data });
  const blob = [
    line('a', '2024-03-05T18:00:01Z', [{ x: 1 }, { x: 2 }]),
    line('b', '2024-03-05T19:30:00Z', [{ x: 3 }]),
    line('c', '2024-03-05T18:10:00Z', { x: [4, 5] }),
    line('d', '2024-03-05T18:20:00Z', [{ x: 'é' }]),
  ].join('\n');
  const window = { whole: false, from: Date.parse('2024-03-05T18:00:00Z'), to: Date.parse('2024-03-05T19:00:00Z') };
  const describePieces = (pieces: JsonlPiece[]) =>
    pieces.map((p) => (p.kind === 'rows' ? `rows ${p.rows}: ${Buffer.from(p.bytes).toString()}` : `line: ${p.text}`)).join('');

  it('keeps rows in the window, hands unscannable lines over in order, wherever the chunks are cut', async () => {
    const bytes = Buffer.from(blob);
    const whole = new JsonlChunks(window);
    const expected = describePieces([...whole.push(bytes), ...whole.end()]);
    expect(expected).toContain('"rowid":"a_1"');
    expect(expected).not.toContain('"b_0"');
    expect(expected.indexOf('line: {"time":"2024-03-05T18:10:00Z","correlationid":"c"')).toBeGreaterThan(expected.indexOf('a_1'));
    expect(expected.indexOf('d_0')).toBeGreaterThan(expected.indexOf('line: '));
    for (let cut = 1; cut < bytes.length; cut += 7) {
      const inline = new JsonlChunks(window);
      const threaded = openJsonlStream(window);
      const parts = [bytes.subarray(0, cut), bytes.subarray(cut)];
      expect(describePieces([...inline.push(parts[0]!), ...inline.push(parts[1]!), ...inline.end()]).replace(/rows \d+: /g, '')).toBe(expected.replace(/rows \d+: /g, ''));
      const answers = await Promise.all([threaded.push(parts[0]!), threaded.push(parts[1]!), threaded.end()]);
      threaded.close();
      expect(describePieces(answers.flat()).replace(/rows \d+: /g, ''), `cut at ${cut}`).toBe(expected.replace(/rows \d+: /g, ''));
    }
  });
});
