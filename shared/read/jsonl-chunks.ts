import { scanLine, scannedRowsText } from './line-scan';
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

const encoder = new TextEncoder();

/**
 * The JSONL rows of one custom-logging blob, chunk by chunk, in order. Pure and synchronous, so that it can run
 * on a worker thread next to the one that downloads and sends.
 */
export class JsonlChunks {
  private readonly splitter = new LineSplitter();

  constructor(private readonly window: LineWindow) {}

  push(chunk: Uint8Array): JsonlPiece[] {
    return this.pieces(this.splitter.push(chunk));
  }

  end(): JsonlPiece[] {
    return this.pieces(this.splitter.end());
  }

  private pieces(lines: string[]): JsonlPiece[] {
    const out: JsonlPiece[] = [];
    let text = '';
    let rows = 0;
    const flush = () => {
      // encode() gives each run a buffer of its own, so it can be transferred, not copied, between threads.
      if (rows > 0) out.push({ kind: 'rows', bytes: encoder.encode(text), rows });
      text = '';
      rows = 0;
    };
    for (const line of lines) {
      const scanned = scanLine(line);
      if (!scanned) {
        flush();
        out.push({ kind: 'line', text: line });
        continue;
      }
      if (!inLineWindow(this.window, scanned.time.slice(1, -1))) continue;
      text += scannedRowsText(line, scanned);
      rows += scanned.records.length / 2;
    }
    flush();
    return out;
  }
}
