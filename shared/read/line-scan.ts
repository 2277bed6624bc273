import { stringEnd } from '../json-string';

/**
 * A structural scan of a collected line that finds `time`, `correlationid` and the text of each record of
 * `data` without building objects. JSONL output then copies each record's own text behind its id columns,
 * instead of parsing the line and serializing every row again: that was most of the read API's CPU time.
 *
 * It only takes the common shape (custom logging, `data` an array of objects, plain ids); anything else is
 * `undefined`, and the caller parses the line the ordinary way. Equal output is held by test/read-units.
 */

export interface ScannedLine {
  /** The JSON string texts, quotes included. */
  correlationid: string;
  time: string;
  /** `[start, end)` of each record's `{...}` in the line. */
  records: number[];
}

const QUOTE = 34;
const OPEN_BRACE = 123;
const CLOSE_BRACE = 125;
const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;
const COMMA = 44;
const COLON = 58;

// Hot call sites test for a character above space first: JSON.stringify writes no whitespace, so the call is rare.
function skipSpace(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 32 || c === 9 || c === 13 || c === 10) i++;
    else return i;
  }
}

/** The index after the value that starts at `i`, or -1. */
function skipValue(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === QUOTE) return stringEnd(text, i);
  if (c === OPEN_BRACE || c === OPEN_BRACKET) {
    let depth = 0;
    for (let k = i; k < text.length; k++) {
      const d = text.charCodeAt(k);
      if (d === QUOTE) {
        k = stringEnd(text, k) - 1;
        if (k < 0) return -1;
      } else if (d === OPEN_BRACE || d === OPEN_BRACKET) {
        depth++;
      } else if (d === CLOSE_BRACE || d === CLOSE_BRACKET) {
        if (--depth === 0) return k + 1;
      }
    }
    return -1;
  }
  let k = i;
  for (; k < text.length; k++) {
    const d = text.charCodeAt(k);
    if (d === COMMA || d === CLOSE_BRACE || d === CLOSE_BRACKET || d === 32 || d === 9 || d === 13 || d === 10) break;
  }
  return k > i ? k : -1;
}

// A record with a key of its own named like an id column would need the slow path's override rule.
const idKey = /"(?:correlationid|rowid|time)"\s*:/;

// A record without nested objects or arrays, matched by the regex engine in one go instead of char by char.
// Strings go as runs between escapes; outside them one character at a time, so a failed match (a record with
// nested objects, left to skipValue) backtracks in linear time.
const flatRecord = /\{(?:[^"{}[\]]|"[^"\\]*(?:\\.[^"\\]*)*")*\}/y;

function recordEnd(text: string, at: number): number {
  flatRecord.lastIndex = at;
  return flatRecord.test(text) ? flatRecord.lastIndex : skipValue(text, at);
}

function scanRecords(text: string, i: number): { end: number; records: number[] } | undefined {
  const records: number[] = [];
  let at = skipSpace(text, i + 1);
  if (text.charCodeAt(at) === CLOSE_BRACKET) return { end: at + 1, records };
  for (;;) {
    if (text.charCodeAt(at) !== OPEN_BRACE) return undefined;
    const end = recordEnd(text, at);
    if (end < 0) return undefined;
    records.push(at, end);
    at = text.charCodeAt(end) > 32 ? end : skipSpace(text, end);
    const c = text.charCodeAt(at);
    // One test over the whole array: outside strings, a key's quotes are bare, inside them they are escaped.
    if (c === CLOSE_BRACKET) return idKey.test(text.slice(i, at)) ? undefined : { end: at + 1, records };
    if (c !== COMMA) return undefined;
    at = text.charCodeAt(at + 1) > 32 ? at + 1 : skipSpace(text, at + 1);
  }
}

/** A string value without escapes, so its text can be reused inside another string. */
function plainString(text: string, start: number, end: number): boolean {
  return text.charCodeAt(start) === QUOTE && text.slice(start, end).indexOf('\\') === -1;
}

/** Whether the quote at `at` opens a string: in valid JSON a closing quote is followed by `:`, `,`, `}`, `]` or space. */
function opensString(text: string, at: number): boolean {
  if (text.charCodeAt(at) !== QUOTE) return false;
  const next = text.charCodeAt(at + 1);
  return !(next === QUOTE || next === COLON || next === COMMA || next === CLOSE_BRACE || next === CLOSE_BRACKET || next <= 32);
}

// A record's own id column, or the correlationid key after the records (the first match must be that one).
const idKeyOrCorrelationId = /"(?:correlationid|rowid|time)":/g;

/**
 * The scan for lines as `append` writes them, like Azure ML's own: `{"specversion":...,"time":"...","data":[...],
 * "correlationid":"...",...}`, each member once, `dataref` never beside `data`. It takes that from the writer
 * and proves the rest with native searches instead of a pass over every character in script (which cost about
 * 2 µs a line and bound JSONL reads). With no backslash in the line (the caller's check, done once per chunk)
 * every quote opens or closes a string, and a quote followed by a letter opens one (the line being JSON), so
 * the brackets and braces next to such a quote are structure: data is a member of the line itself (nothing
 * nested opens before it), its first ] is its end (no [ inside) and each record is flat. Any other line is
 * for the full scan.
 *
 * `text` is a whole chunk of lines and the line is `[start, end)`: V8's searches are about ten times slower on
 * a string sliced out of another one than on a flat string, and a line's own string would be such a slice.
 */
export function quickScanLine(text: string, start: number, end: number): ScannedLine | undefined {
  const at = new LineOffsets();
  if (!quickScanOffsets(text, start, end, at)) return undefined;
  return { correlationid: text.slice(at.correlationid, at.correlationidEnd), time: text.slice(at.time, at.timeEnd), records: at.records.slice(0, at.count) };
}

/**
 * Where `quickScanOffsets` found a line's parts: `[start, end)` of the quoted correlation id and time, and of each
 * record. One is filled again line after line, so that scanning a line allocates nothing.
 */
export class LineOffsets {
  correlationid = 0;
  correlationidEnd = 0;
  time = 0;
  timeEnd = 0;
  /** `[start, end)` of each record in its first `count` entries: the array is kept, not cut, from line to line. */
  readonly records: number[] = [];
  count = 0;
}

/** `quickScanLine` without strings: fills `into` and says whether the line was taken. */
export function quickScanOffsets(text: string, start: number, end: number, into: LineOffsets): boolean {
  if (!text.startsWith('{"specversion":', start) || text.charCodeAt(end - 1) !== CLOSE_BRACE) return false;
  const open = text.indexOf('[', start);
  if (open < 0 || open >= end || !text.startsWith('","data":[', open - 9)) return false;
  const brace = text.indexOf('{', start + 1);
  if (brace >= 0 && brace < open) return false;
  const time = text.lastIndexOf('"', open - 10);
  if (!text.startsWith(',"time":', time - 8)) return false;
  const close = text.indexOf(']', open);
  const inner = text.indexOf('[', open + 1);
  if (close >= end || (inner >= 0 && inner < close) || !text.startsWith('],"correlationid":"', close)) return false;
  idKeyOrCorrelationId.lastIndex = open;
  if (idKeyOrCorrelationId.exec(text)?.index !== close + 2) return false;
  const records = into.records;
  let count = 0;
  if (open + 1 < close) {
    // Records start with a key or end at once: a record of only spaces would otherwise keep them as its text.
    if (text.charCodeAt(open + 2) !== QUOTE && text.charCodeAt(open + 2) !== CLOSE_BRACE) return false;
    for (let from = open + 1; ; ) {
      // A record's first } is its own when what follows is structure: the end of data, or the next record's
      // { with a key's opening quote. A } of a nested object or of a string is followed by neither.
      const to = text.indexOf('}', from) + 1;
      if (to > close || text.charCodeAt(from) !== OPEN_BRACE) return false;
      records[count++] = from;
      records[count++] = to;
      if (to === close) break;
      if (text.charCodeAt(to) !== COMMA || text.charCodeAt(to + 1) !== OPEN_BRACE || !opensString(text, to + 2)) return false;
      from = to + 1;
    }
  }
  into.count = count;
  into.correlationid = close + 18;
  into.correlationidEnd = text.indexOf('"', close + 19) + 1;
  into.time = time;
  into.timeEnd = open - 8;
  return true;
}

/** The scan of one line: the quick one when it applies, else the full one. */
export function scanLine(text: string): ScannedLine | undefined {
  return (text.indexOf('\\') < 0 ? quickScanLine(text, 0, text.length) : undefined) ?? fullScanLine(text);
}

/** The scan of any line of the common shape, character by character. */
export function fullScanLine(text: string): ScannedLine | undefined {
  let i = skipSpace(text, 0);
  if (text.charCodeAt(i) !== OPEN_BRACE) return undefined;
  i = skipSpace(text, i + 1);
  let correlationid: string | undefined;
  let time: string | undefined;
  let records: number[] | undefined;
  if (text.charCodeAt(i) === CLOSE_BRACE) return undefined;
  for (;;) {
    if (text.charCodeAt(i) !== QUOTE) return undefined;
    const keyEnd = stringEnd(text, i);
    if (keyEnd < 0) return undefined;
    const key = text.slice(i + 1, keyEnd - 1);
    i = text.charCodeAt(keyEnd) > 32 ? keyEnd : skipSpace(text, keyEnd);
    if (text.charCodeAt(i) !== COLON) return undefined;
    const valueStart = text.charCodeAt(i + 1) > 32 ? i + 1 : skipSpace(text, i + 1);
    let valueEnd: number;
    if (key === 'data') {
      if (text.charCodeAt(valueStart) !== OPEN_BRACKET) return undefined;
      const scanned = scanRecords(text, valueStart);
      if (!scanned) return undefined;
      records = scanned.records;
      valueEnd = scanned.end;
    } else {
      valueEnd = skipValue(text, valueStart);
      if (valueEnd < 0) return undefined;
      if (key === 'correlationid' || key === 'time') {
        if (!plainString(text, valueStart, valueEnd)) return undefined;
        if (key === 'correlationid') correlationid = text.slice(valueStart, valueEnd);
        else time = text.slice(valueStart, valueEnd);
      } else if (key === 'dataref' || key === 'datainblob' || key.indexOf('\\') >= 0) {
        return undefined;
      }
    }
    i = text.charCodeAt(valueEnd) > 32 ? valueEnd : skipSpace(text, valueEnd);
    const c = text.charCodeAt(i);
    if (c === CLOSE_BRACE) break;
    if (c !== COMMA) return undefined;
    i = text.charCodeAt(i + 1) > 32 ? i + 1 : skipSpace(text, i + 1);
  }
  if (skipSpace(text, i + 1) !== text.length) return undefined;
  if (correlationid === undefined || time === undefined || records === undefined) return undefined;
  return { correlationid, time, records };
}

/** The JSONL rows of a scanned line: the same JSON values as `JSON.stringify` of the parsed rows, records' text kept as written. */
export function scannedRowsText(text: string, line: ScannedLine): string {
  let out = '';
  const cid = line.correlationid.slice(1, -1);
  const head = `{"correlationid":${line.correlationid},"rowid":"${cid}_`;
  const tail = `","time":${line.time}`;
  for (let r = 0, n = 0; r < line.records.length; r += 2, n++) {
    const start = line.records[r]!;
    const end = line.records[r + 1]!;
    const body = skipSpace(text, start + 1) === end - 1 ? '}' : `,${text.slice(start + 1, end)}`;
    out += `${head}${n}${tail}${body}\n`;
  }
  return out;
}
