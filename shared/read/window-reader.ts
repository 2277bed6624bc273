import type { BlobServiceClient } from '@azure/storage-blob';
import type { CollectionSource } from '../assets/collection-source';
import { isPayloadCollection } from '../assets/collection-source';
import { splitLineBatches } from './lines';
import { folderStart, nextUnit, windowPrefixes } from './rolled-folders';
import { inLineWindow, linesBatch, type JsonlPiece, type LineWindow } from './jsonl-chunks';
import { openJsonlStream } from './jsonl-threads';
import { needsRef, parseLine, pushRows, type RefResolver, type Row } from './rows';

/**
 * Reads the rows of one collection inside a time window, straight from the rolled blobs: only prefixes of
 * folders inside the window are listed, and each blob is streamed line by line, so memory stays flat however
 * wide the window is. Rows come folder by folder in time order, blobs by name within a folder, lines in file
 * order.
 */

export interface TimeWindow {
  /** Inclusive. */
  start: Date;
  /** Exclusive. */
  end: Date;
}

export interface WindowBlob {
  name: string;
  /** Relative rolled folder, e.g. `2024/03/05/18`. */
  folder: string;
  folderStart: Date;
  folderEnd: Date;
  bytes: number;
}

export interface ReadRowsOptions {
  limit?: number;
  signal?: AbortSignal;
}

type WhereData = Pick<CollectionSource, 'container' | 'path' | 'rollingRate'>;

/** The `.jsonl` blobs of the rolled folders overlapping the window, in name (so time) order. */
export async function* windowBlobs(blobService: BlobServiceClient, source: WhereData, window: TimeWindow, signal?: AbortSignal): AsyncGenerator<WindowBlob> {
  const container = blobService.getContainerClient(source.container);
  const root = `${source.path}/`;
  for (const { prefix } of windowPrefixes(source.rollingRate, window.start, window.end)) {
    const pages = container.listBlobsFlat({ prefix: root + prefix, abortSignal: signal }).byPage({ maxPageSize: 5000 });
    try {
      for await (const page of pages) {
        for (const item of page.segment.blobItems) {
          if (!item.name.endsWith('.jsonl')) continue;
          const slash = item.name.lastIndexOf('/');
          const folder = item.name.slice(root.length, slash);
          const start = folderStart(source.rollingRate, folder);
          // Anything not in a rolled folder of this rate (stray files, another layout) is not collected data.
          if (!start) continue;
          yield { name: item.name, folder, folderStart: start, folderEnd: nextUnit(source.rollingRate, start), bytes: item.properties.contentLength ?? 0 };
        }
      }
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return; // no container yet: no data
      throw error;
    }
  }
}

/** Reads `dataref` payloads: blob URLs of the data account, so they are read with the same client and identity. */
export function blobRefResolver(blobService: BlobServiceClient, signal?: AbortSignal): RefResolver {
  const base = blobService.url.replace(/\/+$/, '');
  return async (url) => {
    let rest: string;
    if (url.startsWith(`${base}/`)) {
      rest = url.slice(base.length + 1);
    } else {
      const parts = new URL(url).pathname.split('/').filter(Boolean);
      if (parts[0] === blobService.accountName && parts.length > 2) parts.shift();
      rest = parts.join('/');
    }
    const slash = rest.indexOf('/');
    const container = decodeURIComponent(rest.slice(0, slash));
    const blob = rest
      .slice(slash + 1)
      .split('/')
      .map((p) => decodeURIComponent(p))
      .join('/');
    const bytes = await blobService.getContainerClient(container).getBlobClient(blob).downloadToBuffer(undefined, undefined, { abortSignal: signal });
    return JSON.parse(bytes.toString('utf8')) as unknown;
  };
}

interface BlobBody {
  window: LineWindow;
  body: AsyncIterable<Buffer>;
}

async function blobBody(blobService: BlobServiceClient, source: WhereData, blob: WindowBlob, window: TimeWindow, signal?: AbortSignal): Promise<BlobBody> {
  const client = blobService.getContainerClient(source.container).getBlobClient(blob.name);
  const response = await client.download(0, undefined, { abortSignal: signal });
  return {
    window: {
      // A line's time always falls in its own folder, so a folder wholly inside the window needs no check.
      whole: blob.folderStart.getTime() >= window.start.getTime() && blob.folderEnd.getTime() <= window.end.getTime(),
      from: window.start.getTime(),
      to: window.end.getTime(),
    },
    body: (response.readableStreamBody ?? []) as AsyncIterable<Buffer>,
  };
}

/** The rows of one blob whose line time is inside the window, a batch per downloaded chunk. */
export async function* blobRowBatches(
  blobService: BlobServiceClient,
  source: WhereData & { collection: string },
  blob: WindowBlob,
  window: TimeWindow,
  resolveRef: RefResolver,
  signal?: AbortSignal,
): AsyncGenerator<Row[]> {
  const payload = isPayloadCollection(source.collection);
  const { window: lines, body } = await blobBody(blobService, source, blob, window, signal);
  for await (const texts of splitLineBatches(body)) {
    const rows: Row[] = [];
    for (const text of texts) await pushLineRows(rows, text, lines, payload, resolveRef);
    if (rows.length > 0) yield rows;
  }
}

/** Appends the rows of one line of text, when it parses and its time is in the window (reading its `dataref`). */
async function pushLineRows(into: Row[], text: string, lines: LineWindow, payload: boolean, resolveRef: RefResolver): Promise<void> {
  const line = parseLine(text);
  if (!line || !inLineWindow(lines, line.time)) return;
  pushRows(into, line, payload, needsRef(line) ? await resolveRef(line.dataref) : line.data);
}

/**
 * Downloaded chunks (64 KiB off the socket) go to the JSONL worker gathered in pieces of this size: each hand-over,
 * answer and write to the response costs the request's thread about the same whatever its size.
 */
const batchBytes = 256 * 1024;
/** Batches handed to the JSONL worker before the first answer is waited for: enough to keep both threads busy. */
const batchesInFlight = 3;

/**
 * The rows of `[start, end)` as JSONL bytes, at most `limit`. The same rows as `windowRowBatches`, but
 * ordinary custom-logging lines are copied record by record, on a worker thread, instead of parsed and
 * serialized again; the other lines are turned into rows here.
 */
export async function* windowJsonl(
  blobService: BlobServiceClient,
  source: WhereData & { collection: string },
  window: TimeWindow,
  options: ReadRowsOptions = {},
): AsyncGenerator<Buffer> {
  let left = options.limit ?? Infinity;
  if (left <= 0) return;
  const payload = isPayloadCollection(source.collection);
  const resolveRef = blobRefResolver(blobService, options.signal);

  async function* rowsOf(pieces: JsonlPiece[], lines: LineWindow): AsyncGenerator<Buffer> {
    for (const piece of pieces) {
      if (piece.kind === 'rows') {
        const bytes = Buffer.from(piece.bytes.buffer, piece.bytes.byteOffset, piece.bytes.byteLength);
        if (piece.rows <= left) {
          left -= piece.rows;
          yield bytes;
        } else {
          let end = -1;
          for (let n = 0; n < left; n++) end = bytes.indexOf(10, end + 1);
          left = 0;
          yield bytes.subarray(0, end + 1);
        }
      } else {
        const rows: Row[] = [];
        await pushLineRows(rows, piece.text, lines, payload, resolveRef);
        let text = '';
        for (const row of rows.slice(0, left)) text += `${JSON.stringify(row)}\n`;
        left -= Math.min(rows.length, left);
        if (text) yield Buffer.from(text);
      }
      if (left <= 0) return;
    }
  }

  for await (const blob of windowBlobs(blobService, source, window, options.signal)) {
    const { window: lines, body } = await blobBody(blobService, source, blob, window, options.signal);
    if (payload) {
      // Payload-log lines are never scanned: every one is turned into a row here.
      for await (const texts of splitLineBatches(body)) {
        yield* rowsOf(texts.map((text) => ({ kind: 'line', text })), lines);
        if (left <= 0) return;
      }
      continue;
    }
    const stream = openJsonlStream(lines);
    const inFlight: Promise<JsonlPiece[]>[] = [];
    let gathered: Buffer[] = [];
    let gatheredBytes = 0;
    // Whole lines go, what follows the last newline waits for the next batch: the worker then never joins a
    // line across two batches, and writes the rows into the batch's own buffer, behind its lines.
    const lineBytes = (): number => {
      let before = gatheredBytes;
      for (let i = gathered.length - 1; i >= 0; i--) {
        before -= gathered[i]!.length;
        const newline = gathered[i]!.lastIndexOf(10);
        if (newline >= 0) return before + newline + 1;
      }
      return 0;
    };
    const handOver = (bytes: number) => {
      const batch = linesBatch(bytes);
      const rest: Buffer[] = [];
      let at = 0;
      for (const chunk of gathered) {
        const take = Math.min(chunk.length, bytes - at);
        if (take > 0) at += chunk.copy(batch, at, 0, take);
        if (take < chunk.length) rest.push(chunk.subarray(take));
      }
      gathered = rest;
      gatheredBytes -= bytes;
      inFlight.push(stream.push(batch, true));
    };
    try {
      for await (const chunk of body) {
        gathered.push(chunk);
        gatheredBytes += chunk.length;
        if (gatheredBytes < batchBytes) continue;
        const bytes = lineBytes();
        // A line longer than a batch: gather on until it ends.
        if (bytes === 0) continue;
        handOver(bytes);
        if (inFlight.length < batchesInFlight) continue;
        yield* rowsOf(await inFlight.shift()!, lines);
        if (left <= 0) return;
      }
      if (gatheredBytes > 0) handOver(gatheredBytes);
      inFlight.push(stream.end());
      while (inFlight.length > 0) {
        yield* rowsOf(await inFlight.shift()!, lines);
        if (left <= 0) return;
      }
    } finally {
      stream.close();
      // Answers still on their way are not wanted any more; they must not surface as unhandled.
      for (const pending of inFlight) pending.catch(() => undefined);
    }
  }
}

/** Every row of the collection in `[start, end)`, at most `limit`, in batches. */
export async function* windowRowBatches(
  blobService: BlobServiceClient,
  source: WhereData & { collection: string },
  window: TimeWindow,
  options: ReadRowsOptions = {},
): AsyncGenerator<Row[]> {
  let left = options.limit ?? Infinity;
  if (left <= 0) return;
  const resolveRef = blobRefResolver(blobService, options.signal);
  for await (const blob of windowBlobs(blobService, source, window, options.signal)) {
    for await (const rows of blobRowBatches(blobService, source, blob, window, resolveRef, options.signal)) {
      if (rows.length >= left) {
        yield rows.slice(0, left);
        return;
      }
      left -= rows.length;
      yield rows;
    }
  }
}

/** The same rows one by one. */
export async function* windowRows(
  blobService: BlobServiceClient,
  source: WhereData & { collection: string },
  window: TimeWindow,
  options: ReadRowsOptions = {},
): AsyncGenerator<Row> {
  for await (const rows of windowRowBatches(blobService, source, window, options)) yield* rows;
}
