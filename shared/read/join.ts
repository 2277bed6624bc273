import type { BlobServiceClient } from '@azure/storage-blob';
import type { CollectionSource } from '../assets/collection-source';
import { rowIdColumns, type Row } from './rows';
import { blobRefResolver, blobRowBatches, windowBlobs, type ReadRowsOptions, type TimeWindow, type WindowBlob } from './window-reader';

/**
 * model_inputs ⋈ model_outputs on correlation id and row index (the row id), folder by folder. The outputs of
 * one request land in the same rolled folder as its inputs, or in the next one when the call straddles the
 * boundary, so a row waits for a match during one more folder and is then reported unmatched (`inputs: null`
 * or `outputs: null`). Memory holds one folder of outputs plus the rows still waiting, never the window.
 */

type Side = Pick<CollectionSource, 'container' | 'path' | 'rollingRate' | 'collection'>;

interface FolderGroup {
  start: number;
  blobs: WindowBlob[];
}

async function* folderGroups(blobs: AsyncIterable<WindowBlob>): AsyncGenerator<FolderGroup> {
  let current: FolderGroup | undefined;
  for await (const blob of blobs) {
    const start = blob.folderStart.getTime();
    if (current && current.start === start) {
      current.blobs.push(blob);
      continue;
    }
    if (current) yield current;
    current = { start, blobs: [blob] };
  }
  if (current) yield current;
}

function columnsOnly(row: Row): Row {
  const rest: Row = { ...row };
  for (const id of rowIdColumns) delete rest[id];
  return rest;
}

function joined(input: Row | undefined, output: Row | undefined): Row {
  const ids = (input ?? output)!;
  return {
    correlationid: ids.correlationid,
    rowid: ids.rowid,
    time: ids.time,
    inputs: input ? columnsOnly(input) : null,
    outputs: output ? columnsOnly(output) : null,
  };
}

interface Waiting {
  row: Row;
  steps: number;
}

export async function* joinedRows(blobService: BlobServiceClient, inputs: Side, outputs: Side, window: TimeWindow, options: ReadRowsOptions = {}): AsyncGenerator<Row> {
  const limit = options.limit ?? Infinity;
  if (limit <= 0) return;
  const resolveRef = blobRefResolver(blobService, options.signal);
  const inGroups = folderGroups(windowBlobs(blobService, inputs, window, options.signal));
  const outGroups = folderGroups(windowBlobs(blobService, outputs, window, options.signal));
  const waitingIn = new Map<string, Waiting>();
  const waitingOut = new Map<string, Waiting>();
  let emitted = 0;
  let a = await inGroups.next();
  let b = await outGroups.next();

  while (!a.done || !b.done) {
    const step = Math.min(a.done ? Infinity : a.value.start, b.done ? Infinity : b.value.start);
    const inGroup = !a.done && a.value.start === step ? a.value : undefined;
    const outGroup = !b.done && b.value.start === step ? b.value : undefined;
    const out: Row[] = [];

    for (const blob of outGroup?.blobs ?? []) {
      for await (const batch of blobRowBatches(blobService, outputs, blob, window, resolveRef, options.signal)) for (const row of batch) {
        const id = String(row.rowid);
        const match = waitingIn.get(id);
        if (match) {
          waitingIn.delete(id);
          out.push(joined(match.row, row));
        } else {
          waitingOut.set(id, { row, steps: 0 });
        }
      }
    }
    for (const row of out) {
      yield row;
      if (++emitted >= limit) return;
    }
    for (const blob of inGroup?.blobs ?? []) {
      for await (const batch of blobRowBatches(blobService, inputs, blob, window, resolveRef, options.signal)) for (const row of batch) {
        const id = String(row.rowid);
        const match = waitingOut.get(id);
        if (match) {
          waitingOut.delete(id);
          yield joined(row, match.row);
          if (++emitted >= limit) return;
        } else {
          waitingIn.set(id, { row, steps: 0 });
        }
      }
    }
    // Rows that already waited one folder get no other chance.
    for (const [side, waiting] of [['in', waitingIn], ['out', waitingOut]] as const) {
      for (const [id, entry] of waiting) {
        if (entry.steps >= 1) {
          waiting.delete(id);
          yield side === 'in' ? joined(entry.row, undefined) : joined(undefined, entry.row);
          if (++emitted >= limit) return;
        } else {
          entry.steps += 1;
        }
      }
    }
    if (inGroup) a = await inGroups.next();
    if (outGroup) b = await outGroups.next();
  }
  for (const entry of waitingIn.values()) {
    yield joined(entry.row, undefined);
    if (++emitted >= limit) return;
  }
  for (const entry of waitingOut.values()) {
    yield joined(undefined, entry.row);
    if (++emitted >= limit) return;
  }
}
