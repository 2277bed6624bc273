import { fullScanLine, quickScanLine, scannedRowsText, type ScannedLine } from './line-scan';
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

/**
 * JSONL rows written straight into one buffer: the records' bytes are copied from the blob's own bytes, with no
 * string built for them. The buffer is never a slice of Node's shared pool, so it can be moved between threads.
 */
class RowsBuffer {
  private bytes: Buffer;
  private length = 0;
  private rows = 0;

  constructor(private readonly capacity: number) {
    this.bytes = Buffer.allocUnsafeSlow(capacity);
  }

  /**
   * The rows of a line the quick scan took in `source`, whose offsets are byte offsets (latin1 text of it). The
   * ids are written once a line and copied within the buffer for its other rows: typed-array copies cost far
   * less a call here than Buffer's write and copy.
   */
  addScanned(source: Uint8Array, line: ScannedLine): void {
    const head = `{"correlationid":${line.correlationid},"rowid":"${line.correlationid.slice(1, -1)}_`;
    const tail = `","time":${line.time}`;
    const records = line.records;
    let headAt = 0;
    let tailAt = 0;
    for (let r = 0; r < records.length; r += 2) {
      const start = records[r]!;
      const end = records[r + 1]!;
      const index = String(r / 2);
      this.room(head.length + index.length + tail.length + (end - start) + 1);
      const bytes = this.bytes;
      const first = r === 0;
      let at = this.length;
      if (first) headAt = at;
      at = this.put(head, at, first ? -1 : headAt);
      for (let i = 0; i < index.length; i++) bytes[at++] = index.charCodeAt(i);
      if (first) tailAt = at;
      at = this.put(tail, at, first ? -1 : tailAt);
      if (end - start === 2) {
        bytes[at++] = CLOSE_BRACE;
      } else {
        bytes[at++] = COMMA;
        bytes.set(source.subarray(start + 1, end), at);
        at += end - start - 1;
      }
      bytes[at++] = NEWLINE;
      this.length = at;
    }
    this.rows += records.length / 2;
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
    out.push({ kind: 'rows', bytes: this.bytes.subarray(0, this.length), rows: this.rows });
    this.bytes = Buffer.allocUnsafeSlow(this.capacity);
    this.length = 0;
    this.rows = 0;
  }

  /** Writes `latin1` at `at`, or copies the same text written before at `from` (unless -1); the index after it. */
  private put(latin1: string, at: number, from: number): number {
    if (from < 0) return at + this.bytes.write(latin1, at, 'latin1');
    this.bytes.copyWithin(at, from, from + latin1.length);
    return at + latin1.length;
  }

  private room(bytes: number): void {
    if (this.length + bytes <= this.bytes.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(this.bytes.length * 2, this.length + bytes));
    this.bytes.copy(grown, 0, 0, this.length);
    this.bytes = grown;
  }
}

/**
 * The JSONL rows of one custom-logging blob, chunk by chunk, in order. Pure and synchronous, so that it can run
 * on a worker thread next to the one that downloads and sends.
 */
export class JsonlChunks {
  private readonly splitter = new LineSplitter();

  constructor(private readonly window: LineWindow) {}

  push(chunk: Uint8Array): JsonlPiece[] {
    return this.pieces(this.splitter.pushBytes(chunk));
  }

  end(): JsonlPiece[] {
    return this.pieces(this.splitter.endBytes());
  }

  /**
   * `bytes`: `\n`-terminated lines. They are searched as latin1 text, one character per byte, so that the scan
   * reads JSON's ASCII structure with no UTF-8 decoding, and offsets in the text are offsets in the bytes.
   */
  private pieces(bytes: Buffer): JsonlPiece[] {
    const out: JsonlPiece[] = [];
    const rows = new RowsBuffer(bytes.length + (bytes.length >> 2) + 4096);
    // Texts under V8's large-object size die young, in cheap scavenges; a text per 256 KiB batch went to the
    // old generation and kept its collector busy on another core.
    for (let from = 0; from < bytes.length; ) {
      const cut = bytes.length - from <= textBytes ? bytes.length : bytes.lastIndexOf(10, from + textBytes - 1) + 1;
      const to = cut > from ? cut : bytes.indexOf(10, from + textBytes) + 1 || bytes.length;
      this.linesInto(bytes.subarray(from, to), rows, out);
      from = to;
    }
    rows.flushTo(out);
    return out;
  }

  /** The rows of `bytes` (whole lines) into `rows`; lines the scans do not take go to `out`, in order. */
  private linesInto(bytes: Buffer, rows: RowsBuffer, out: JsonlPiece[]): void {
    const text = bytes.toString('latin1');
    // A plain view: a Buffer's subarray builds a Buffer, which costs a row more than the copy it serves.
    const plain = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    // Searched once for the whole chunk: the quick scan takes only lines without one.
    let backslash = -1;
    for (let start = 0; start < text.length; ) {
      const end = text.indexOf('\n', start);
      if (end > start) {
        if (backslash < start) {
          const next = text.indexOf('\\', start);
          backslash = next < 0 ? Infinity : next;
        }
        const quick = backslash > end ? quickScanLine(text, start, end) : undefined;
        if (quick) {
          if (inLineWindow(this.window, quick.time.slice(1, -1))) rows.addScanned(plain, quick);
        } else {
          const line = text.slice(start, end);
          const scanned = fullScanLine(line);
          if (!scanned) {
            rows.flushTo(out);
            out.push({ kind: 'line', text: Buffer.from(line, 'latin1').toString('utf8') });
          } else if (inLineWindow(this.window, scanned.time.slice(1, -1))) {
            rows.addText(scannedRowsText(line, scanned), scanned.records.length / 2);
          }
        }
      }
      start = end + 1;
    }
  }
}
