import { fullScanLine, LineOffsets, quickScanOffsets, scannedRowsText } from './line-scan';
import { LineSplitter } from './lines';

/** Which line times a blob's rows must have: all of them when its folder lies wholly inside the window. */
export interface LineWindow {
  whole: boolean;
  from: number;
  to: number;
}

export function inLineWindow(window: LineWindow, time: unknown): boolean {
  if (window.whole) return true;
  const at = typeof time === 'string' ? Date.parse(time) : NaN;
  return at >= window.from && at < window.to;
}

/**
 * What a chunk of a blob becomes: JSONL rows ready to send (UTF-8, each `\n`-terminated), or a line the line
 * scan does not take, which the reader turns into rows itself (it may need a `dataref` read).
 */
export type JsonlPiece = { kind: 'rows'; bytes: Uint8Array; rows: number } | { kind: 'line'; text: string };

/** Lines are searched in texts of at most this many bytes (one long line excepted). */
const textBytes = 64 * 1024;
const COMMA = 44;
const CLOSE_BRACE = 125;
const NEWLINE = 10;

/** The id parts of every row, at the start of each rows buffer so that they are copied like any other bytes. */
const ID_PARTS = Buffer.from('{"correlationid":,"rowid":"","time":', 'latin1');
const CORRELATIONID_KEY = 0;
const ROWID_KEY = ID_PARTS.indexOf(',"rowid":"');
const TIME_KEY = ID_PARTS.indexOf('","time":');
const UNDERSCORE = 95;
const DIGIT_0 = 48;

/** Writes `index`, `digits` long, at `at`; the index after it. */
function writeIndex(bytes: Uint8Array, at: number, index: number, digits: number): number {
  for (let k = at + digits - 1; k >= at; k--) {
    bytes[k] = DIGIT_0 + (index % 10);
    index = Math.floor(index / 10);
  }
  return at + digits;
}

/**
 * JSONL rows written straight into one buffer, every byte copied from bytes already in it: a row's records,
 * correlation id and time from the batch's own bytes, which the buffer holds (it is the batch's own buffer when
 * that was laid out by `linesBatch`, else it starts with a copy of them), and its keys from `ID_PARTS`.
 * `copyWithin` is one cheap call where writing a string into a Buffer, or copying from another buffer (which
 * needs a view built for it), costs three to four times more, and it leaves no garbage. The buffer is never a
 * slice of Node's shared pool, so it can be moved between threads.
 */
class RowsBuffer {
  private bytes!: Buffer;
  /** Where `ID_PARTS` is in the buffer. */
  private partsAt = 0;
  /** Where the buffer's copy of the batch begins, or -1 when it has none (after a flush mid-batch). */
  private sourceAt = -1;
  private rowsAt = 0;
  private length = 0;
  private rows = 0;

  /**
   * `inPlace`: the source's buffer is this one's to write, with `ID_PARTS` in the bytes before the source and the
   * rows after it (a batch laid out by `linesBatch`), so nothing is copied before the first row.
   */
  constructor(
    private readonly source: Buffer,
    private readonly capacity: number,
    inPlace: boolean,
  ) {
    if (!inPlace) {
      this.fresh(capacity, true);
      return;
    }
    this.bytes = Buffer.from(source.buffer, 0, source.buffer.byteLength);
    this.partsAt = source.byteOffset - ID_PARTS.length;
    this.bytes.set(ID_PARTS, this.partsAt);
    this.sourceAt = source.byteOffset;
    this.rowsAt = this.length = source.byteOffset + source.length;
  }

  /**
   * The rows of a line the quick scan took; `textAt` is where its text begins in the batch. A row's ids are its
   * previous row's with another index, so after the first row they are one copy within the buffer and the
   * index's digits written over it.
   */
  addScanned(textAt: number, line: LineOffsets): void {
    const records = line.records;
    const cid = textAt + line.correlationid;
    const cidEnd = textAt + line.correlationidEnd;
    const idsRoom = 2 * (cidEnd - cid) + (line.timeEnd - line.time) + ID_PARTS.length + 12;
    // The previous row's ids, `{"correlationid":...,"time":"..."`, and where in them its index is.
    let ids = 0;
    let idsEnd = 0;
    let indexAt = 0;
    let width = 0;
    for (let r = 0; r < line.count; r += 2) {
      const start = textAt + records[r]!;
      const end = textAt + records[r + 1]!;
      this.room(idsRoom + (end - start) + 1);
      const bytes = this.bytes;
      const row = this.length;
      let at = row;
      const index = r >> 1;
      const digits = index < 10 ? 1 : index < 100 ? 2 : String(index).length;
      if (digits === width) {
        bytes.copyWithin(at, ids, idsEnd);
        writeIndex(bytes, at + indexAt, index, digits);
        at += idsEnd - ids;
      } else if (r === 0) {
        at = this.part(at, CORRELATIONID_KEY, ROWID_KEY);
        at = this.fromSource(at, cid, cidEnd);
        at = this.part(at, ROWID_KEY, TIME_KEY);
        at = this.fromSource(at, cid + 1, cidEnd - 1);
        bytes[at++] = UNDERSCORE;
        indexAt = at - row;
        at = writeIndex(bytes, at, index, digits);
        at = this.part(at, TIME_KEY, ID_PARTS.length);
        at = this.fromSource(at, textAt + line.time, textAt + line.timeEnd);
      } else {
        // One digit more than the row before: its ids around a wider index.
        bytes.copyWithin(at, ids, ids + indexAt);
        at = writeIndex(bytes, at + indexAt, index, digits);
        bytes.copyWithin(at, ids + indexAt + width, idsEnd);
        at += idsEnd - (ids + indexAt + width);
      }
      ids = row;
      idsEnd = at;
      width = digits;
      if (end - start === 2) {
        bytes[at++] = CLOSE_BRACE;
      } else {
        bytes[at++] = COMMA;
        at = this.fromSource(at, start + 1, end);
      }
      bytes[at++] = NEWLINE;
      this.length = at;
    }
    this.rows += line.count / 2;
  }

  /** Rows as latin1 text, `\n`-terminated. */
  addText(latin1: string, rows: number): void {
    this.room(latin1.length);
    this.length += this.bytes.write(latin1, this.length, 'latin1');
    this.rows += rows;
  }

  /** Adds what was written, if anything, to `out` as one piece, and starts a fresh buffer for what comes next. */
  flushTo(out: JsonlPiece[]): void {
    if (this.rows === 0) return;
    out.push({ kind: 'rows', bytes: this.bytes.subarray(this.rowsAt, this.length), rows: this.rows });
    // Without a copy of the batch: a blob of lines the scans do not take would otherwise copy it once a line.
    this.fresh(this.capacity, false);
  }

  private fresh(room: number, withSource: boolean): void {
    const sourceLength = withSource ? this.source.length : 0;
    this.bytes = Buffer.allocUnsafeSlow(ID_PARTS.length + sourceLength + room);
    this.bytes.set(ID_PARTS, 0);
    this.partsAt = 0;
    this.sourceAt = withSource ? ID_PARTS.length : -1;
    if (withSource) this.bytes.set(this.source, ID_PARTS.length);
    this.rowsAt = this.length = ID_PARTS.length + sourceLength;
    this.rows = 0;
  }

  /** Copies `ID_PARTS[start, end)` to `at`; the index after it. */
  private part(at: number, start: number, end: number): number {
    this.bytes.copyWithin(at, this.partsAt + start, this.partsAt + end);
    return at + end - start;
  }

  /** Copies the batch's bytes `[start, end)` to `at`; the index after them. */
  private fromSource(at: number, start: number, end: number): number {
    if (this.sourceAt >= 0) this.bytes.copyWithin(at, this.sourceAt + start, this.sourceAt + end);
    else this.bytes.set(this.source.subarray(start, end), at);
    return at + end - start;
  }

  private room(bytes: number): void {
    if (this.length + bytes <= this.bytes.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(this.bytes.length * 2, this.length + bytes));
    grown.set(this.bytes.subarray(0, this.length), 0);
    this.bytes = grown;
  }
}

/** Room for the rows of that many bytes of lines before a rows buffer has to grow: about what they come to. */
function rowsRoom(lineBytes: number): number {
  return lineBytes + (lineBytes >> 2) + 4096;
}

/**
 * A buffer for `lineBytes` of whole lines that `JsonlChunks.push(lines, true)` fills with their rows in place:
 * the lines go in the returned view; the bytes before it and after it are left for the rows' making.
 */
export function linesBatch(lineBytes: number): Buffer {
  return Buffer.allocUnsafeSlow(ID_PARTS.length + lineBytes + rowsRoom(lineBytes)).subarray(ID_PARTS.length, ID_PARTS.length + lineBytes);
}

/**
 * The JSONL rows of one custom-logging blob, chunk by chunk, in order. Pure and synchronous, so that it can run
 * on a worker thread next to the one that downloads and sends.
 */
export class JsonlChunks {
  private readonly splitter = new LineSplitter();
  private readonly line = new LineOffsets();

  constructor(private readonly window: LineWindow) {}

  /** `batch`: a chunk laid out by `linesBatch` whose buffer is given away, so rows may be written into it. */
  push(chunk: Uint8Array, batch = false): JsonlPiece[] {
    const bytes = this.splitter.pushBytes(chunk);
    // In place only when the lines are the chunk's own bytes, not joined to a carried line in a buffer of their own.
    return this.pieces(bytes, batch && bytes.buffer === chunk.buffer && bytes.byteOffset === chunk.byteOffset);
  }

  end(): JsonlPiece[] {
    return this.pieces(this.splitter.endBytes(), false);
  }

  /**
   * `bytes`: `\n`-terminated lines. They are searched as latin1 text, one character per byte, so that the scan
   * reads JSON's ASCII structure with no UTF-8 decoding, and offsets in the text are offsets in the bytes.
   */
  private pieces(bytes: Buffer, inPlace: boolean): JsonlPiece[] {
    const out: JsonlPiece[] = [];
    const rows = new RowsBuffer(bytes, rowsRoom(bytes.length), inPlace);
    // Texts under V8's large-object size die young, in cheap scavenges; a text per 256 KiB batch went to the
    // old generation and kept its collector busy on another core.
    for (let from = 0; from < bytes.length; ) {
      const cut = bytes.length - from <= textBytes ? bytes.length : bytes.lastIndexOf(10, from + textBytes - 1) + 1;
      const to = cut > from ? cut : bytes.indexOf(10, from + textBytes) + 1 || bytes.length;
      this.linesInto(bytes, from, to, rows, out);
      from = to;
    }
    rows.flushTo(out);
    return out;
  }

  /** The rows of `batch[from, to)` (whole lines) into `rows`; lines the scans do not take go to `out`, in order. */
  private linesInto(batch: Buffer, from: number, to: number, rows: RowsBuffer, out: JsonlPiece[]): void {
    const text = batch.toString('latin1', from, to);
    const window = this.window;
    const quick = this.line;
    // Searched once for the whole chunk: the quick scan takes only lines without one.
    let backslash = -1;
    for (let start = 0; start < text.length; ) {
      const end = text.indexOf('\n', start);
      if (end > start) {
        if (backslash < start) {
          const next = text.indexOf('\\', start);
          backslash = next < 0 ? Infinity : next;
        }
        if (backslash > end && quickScanOffsets(text, start, end, quick)) {
          if (window.whole || inLineWindow(window, text.slice(quick.time + 1, quick.timeEnd - 1))) rows.addScanned(from, quick);
        } else {
          const line = text.slice(start, end);
          const scanned = fullScanLine(line);
          if (!scanned) {
            rows.flushTo(out);
            out.push({ kind: 'line', text: Buffer.from(line, 'latin1').toString('utf8') });
          } else if (inLineWindow(window, scanned.time.slice(1, -1))) {
            rows.addText(scannedRowsText(line, scanned), scanned.records.length / 2);
          }
        }
      }
      start = end + 1;
    }
  }
}
