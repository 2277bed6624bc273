import { Readable } from 'node:stream';
import { csvLine } from './csv';
import { rowIdColumns, type Row } from './rows';

export const readFormats = ['jsonl', 'csv'] as const;
export type ReadFormat = (typeof readFormats)[number];

export const contentTypes: Record<ReadFormat, string> = {
  jsonl: 'application/x-ndjson; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
};

/** Rows are written in chunks of about this size: one HTTP write per row would cost more than the row itself. */
const chunkBytes = 64 * 1024;

/**
 * Rows as JSONL or CSV bytes. A CSV header must come first, before the rows are known: it holds the id
 * columns, then `knownColumns` (the catalog's), then any other column of the first row. Columns that first
 * appear later are left out of CSV; JSONL keeps every field.
 */
export async function* encodeRows(batches: AsyncIterable<Row[]>, format: ReadFormat, knownColumns: readonly string[] = []): AsyncGenerator<Buffer> {
  let pending = '';
  let columns: string[] | undefined;
  if (format === 'jsonl') {
    for await (const rows of batches) for (const row of rows) {
      pending += `${JSON.stringify(row)}\n`;
      if (pending.length >= chunkBytes) {
        yield Buffer.from(pending);
        pending = '';
      }
    }
  } else {
    for await (const rows of batches) for (const row of rows) {
      if (!columns) {
        const seen = new Set<string>([...rowIdColumns, ...knownColumns, ...Object.keys(row)]);
        columns = [...seen];
        pending += csvLine(columns);
      }
      pending += csvLine(columns.map((c) => row[c]));
      if (pending.length >= chunkBytes) {
        yield Buffer.from(pending);
        pending = '';
      }
    }
    // An empty window still gets its header, so a CSV reader sees the columns.
    if (!columns) pending += csvLine([...new Set([...rowIdColumns, ...knownColumns])]);
  }
  if (pending) yield Buffer.from(pending);
}

/** Groups rows that come one by one (the join) into batches for `encodeRows`. */
export async function* inBatches(rows: AsyncIterable<Row>, size = 512): AsyncGenerator<Row[]> {
  let batch: Row[] = [];
  for await (const row of rows) {
    batch.push(row);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/**
 * A stream of `chunks` whose first chunk is already read: errors that happen before any byte (storage down,
 * a bad reference) surface here, while a status can still be chosen, instead of cutting a 200 short.
 */
export async function primedStream(chunks: AsyncGenerator<Buffer>): Promise<Readable> {
  const first = await chunks.next();
  async function* rest(): AsyncGenerator<Buffer> {
    if (first.done) return;
    yield first.value;
    yield* chunks;
  }
  return Readable.from(rest(), { objectMode: false });
}
