import { RestError, type BlobItem, type BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { linesOfSlice } from '../read/lines';
import { folderStart } from '../read/rolled-folders';
import { columnsOfLine, parseLine, type CollectedLine } from '../read/rows';
import type { ScanProgress } from './catalog';
import { isPayloadCollection, type CollectionSource } from './collection-source';

/**
 * Learns a collection's statistics incrementally. The first run lists everything once; later runs descend
 * the rolled-folder tree only from the last folder seen, so they list a few prefixes whatever the history.
 * Times and columns come from the head of the first blobs and the tail of the blobs that changed, never from
 * reading whole files.
 *
 * Folders before the last one seen are taken as settled: `append` writes by event time, so a late event
 * landing in an older folder is not counted (its rows are still served by the read API).
 */

export interface CollectionStats {
  firstDataTime?: string;
  lastDataTime?: string;
  blobCount: number;
  bytes: number;
  columns: string[];
}

export interface ScanResult {
  stats: CollectionStats;
  progress: ScanProgress | undefined;
  /** False when nothing was added since the previous scan: the caller writes nothing. */
  changed: boolean;
}

export interface ScanOptions {
  abortSignal?: AbortSignal;
  /** Bytes read from each end of a blob for times and columns. */
  sliceBytes?: number;
  /** At most this many blobs are sampled per run for times and columns. */
  sampleBlobs?: number;
}

interface Listed {
  name: string;
  folder: string;
  etag: string;
  bytes: number;
}

function isStatus(error: unknown, code: number): boolean {
  return error instanceof RestError && error.statusCode === code;
}

async function* flat(container: ContainerClient, prefix: string, signal?: AbortSignal): AsyncGenerator<BlobItem> {
  for await (const page of container.listBlobsFlat({ prefix, abortSignal: signal }).byPage({ maxPageSize: 5000 })) {
    yield* page.segment.blobItems;
  }
}

/** Blobs of the folders at or after `from` (folder components), descending the tree only where needed. */
async function* blobsFrom(container: ContainerClient, prefix: string, from: string[], depth: number, signal?: AbortSignal): AsyncGenerator<BlobItem> {
  if (depth === from.length) {
    yield* flat(container, prefix, signal);
    return;
  }
  const children: string[] = [];
  for await (const item of container.listBlobsByHierarchy('/', { prefix, abortSignal: signal })) {
    if (item.kind === 'prefix') children.push(item.name);
  }
  children.sort();
  for (const child of children) {
    const name = child.slice(prefix.length, -1);
    if (name < from[depth]!) continue;
    if (name === from[depth]) yield* blobsFrom(container, child, from, depth + 1, signal);
    else yield* flat(container, child, signal);
  }
}

async function readSlice(container: ContainerClient, blob: Listed, end: 'head' | 'tail', sliceBytes: number, signal?: AbortSignal): Promise<CollectedLine[]> {
  const offset = end === 'head' ? 0 : Math.max(0, blob.bytes - sliceBytes);
  const count = Math.min(sliceBytes, blob.bytes - offset);
  if (count <= 0) return [];
  const bytes = await container.getBlobClient(blob.name).downloadToBuffer(offset, count, { abortSignal: signal });
  return linesOfSlice(bytes, offset, blob.bytes)
    .map(parseLine)
    .filter((l): l is CollectedLine => l !== undefined);
}

function lineTimes(lines: CollectedLine[]): number[] {
  return lines.map((l) => (typeof l.time === 'string' ? Date.parse(l.time) : NaN)).filter((t) => !Number.isNaN(t));
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export async function scanCollection(
  blobService: BlobServiceClient,
  source: CollectionSource,
  previous: { stats: CollectionStats; progress?: ScanProgress } | undefined,
  options: ScanOptions = {},
): Promise<ScanResult> {
  const sliceBytes = options.sliceBytes ?? 64 * 1024;
  const sampleBlobs = options.sampleBlobs ?? 8;
  const container = blobService.getContainerClient(source.container);
  const root = `${source.path}/`;
  // A collection moved to another path or rate since the last run is learnt again from scratch.
  const progress =
    previous?.progress &&
    previous.progress.container === source.container &&
    previous.progress.path === source.path &&
    previous.progress.rollingRate === source.rollingRate
      ? previous.progress
      : undefined;
  const before = progress ? previous!.stats : undefined;

  const listed: Listed[] = [];
  try {
    for await (const item of blobsFrom(container, root, progress ? progress.lastFolder.split('/') : [], 0, options.abortSignal)) {
      const slash = item.name.lastIndexOf('/');
      const folder = item.name.slice(root.length, slash);
      if (!folderStart(source.rollingRate, folder)) continue;
      listed.push({ name: item.name, folder, etag: item.properties.etag ?? '', bytes: item.properties.contentLength ?? 0 });
    }
  } catch (error) {
    if (!isStatus(error, 404)) throw error;
  }

  if (listed.length === 0) {
    return { stats: before ?? { blobCount: 0, bytes: 0, columns: [] }, progress, changed: false };
  }

  const lastFolder = listed.reduce((max, b) => (b.folder > max ? b.folder : max), listed[0]!.folder);
  let settledBlobs = progress?.settledBlobs ?? 0;
  let settledBytes = progress?.settledBytes ?? 0;
  const openBlobs: ScanProgress['openBlobs'] = {};
  for (const blob of listed) {
    if (blob.folder === lastFolder) {
      openBlobs[blob.name] = { etag: blob.etag, bytes: blob.bytes };
    } else {
      settledBlobs += 1;
      settledBytes += blob.bytes;
    }
  }
  const changedBlobs = listed.filter((b) => progress?.openBlobs[b.name]?.etag !== b.etag);
  const nextProgress: ScanProgress = {
    container: source.container,
    path: source.path,
    rollingRate: source.rollingRate,
    lastFolder,
    settledBlobs,
    settledBytes,
    openBlobs,
  };
  const counts = {
    blobCount: settledBlobs + Object.keys(openBlobs).length,
    bytes: settledBytes + Object.values(openBlobs).reduce((sum, b) => sum + b.bytes, 0),
  };
  if (before && changedBlobs.length === 0 && counts.blobCount === before.blobCount && counts.bytes === before.bytes) {
    return { stats: before, progress: nextProgress, changed: false };
  }

  const payload = isPayloadCollection(source.collection);
  const jsonl = (b: Listed) => b.name.endsWith('.jsonl');
  const columns = new Set(before?.columns ?? []);
  let firstTime = before?.firstDataTime ? Date.parse(before.firstDataTime) : Infinity;
  let lastTime = before?.lastDataTime ? Date.parse(before.lastDataTime) : -Infinity;

  if (!before?.firstDataTime) {
    const firstFolder = listed.reduce((min, b) => (b.folder < min ? b.folder : min), listed[0]!.folder);
    const heads = listed.filter((b) => b.folder === firstFolder && jsonl(b)).slice(0, sampleBlobs);
    for (const blob of heads) {
      const lines = await readSlice(container, blob, 'head', sliceBytes, options.abortSignal);
      for (const t of lineTimes(lines)) firstTime = Math.min(firstTime, t);
      for (const line of lines) for (const c of columnsOfLine(line, payload)) columns.add(c);
    }
    if (firstTime === Infinity) firstTime = folderStart(source.rollingRate, firstFolder)!.getTime();
  }

  // The newest changed blobs say when data last arrived and what its columns are now.
  const tails = changedBlobs
    .filter(jsonl)
    .sort((a, b) => (a.folder === b.folder ? a.name.localeCompare(b.name) : b.folder.localeCompare(a.folder)))
    .slice(0, sampleBlobs);
  for (const blob of tails) {
    const lines = await readSlice(container, blob, 'tail', sliceBytes, options.abortSignal);
    const times = lineTimes(lines);
    lastTime = Math.max(lastTime, ...(times.length > 0 ? times : [folderStart(source.rollingRate, blob.folder)!.getTime()]));
    for (const line of lines) for (const c of columnsOfLine(line, payload)) columns.add(c);
  }
  if (lastTime === -Infinity) lastTime = folderStart(source.rollingRate, lastFolder)!.getTime();

  return {
    stats: {
      firstDataTime: iso(Math.min(firstTime, lastTime)),
      lastDataTime: iso(lastTime),
      ...counts,
      columns: [...columns],
    },
    progress: nextProgress,
    changed: true,
  };
}
