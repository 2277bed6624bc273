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

/** A buffer of its own (never a slice of Node's shared pool), so it can be transferred between threads. */
function bytesOf(latin1: string): Uint8Array {
  const bytes = Buffer.allocUnsafeSlow(latin1.length);
  bytes.write(latin1, 0, "latin1");
  return bytes;
}

/**
 * The JSONL rows of one custom-logging blob, chunk by chunk, in order. Pure and synchronous, so that it can run
 * on a worker thread next to the one that downloads and sends.
 */
export class JsonlChunks {
  private readonly splitter = new LineSplitter();

  constructor(private readonly window: LineWindow) {}

  push(chunk: Uint8Array): JsonlPiece[] {
    return this.pieces(this.splitter.pushText(chunk));
  }

  end(): JsonlPiece[] {
    return this.pieces(this.splitter.endText());
  }

  /** `text`: `\n`-terminated lines, one latin1 character per byte: rows are copied out of it and written back as latin1. */
  private pieces(text: string): JsonlPiece[] {
    const out: JsonlPiece[] = [];
    let rowsText = '';
    let rows = 0;
    const flush = () => {
      if (rows > 0) out.push({ kind: 'rows', bytes: bytesOf(rowsText), rows });
      rowsText = '';
      rows = 0;
    };
    // Searched once for the whole chunk: the quick scan takes only lines without one.
    let backslash = -1;
    for (let start = 0; start < text.length; ) {
      const end = text.indexOf('\n', start);
      if (end > start) {
        if (backslash < start) {
          const next = text.indexOf('\\', start);
          backslash = next < 0 ? Infinity : next;
        }
        let scanned: ScannedLine | undefined;
        let source = text;
        if (backslash > end) scanned = quickScanLine(text, start, end);
        if (!scanned) {
          source = text.slice(start, end);
          scanned = fullScanLine(source);
        }
        if (!scanned) {
          flush();
          out.push({ kind: 'line', text: Buffer.from(source, 'latin1').toString('utf8') });
        } else if (inLineWindow(this.window, scanned.time.slice(1, -1))) {
          rowsText += scannedRowsText(source, scanned);
          rows += scanned.records.length / 2;
        }
      }
      start = end + 1;
    }
    flush();
    return out;
  }
}
