import { RestError, type BlobServiceClient, type BlockBlobClient, type ContainerClient } from '@azure/storage-blob';
import { decodeBlockId, encodeBlockId } from './block-id';
import { rolledFileIndex, rolledFileName } from './rolled-path';

/**
 * Writes rolled JSONL files exactly once. A file is a block blob grown by committing new blocks: readers
 * (the storage SDKs, Spark/abfs, Power BI) only ever see committed blocks, so a file is always whole lines,
 * and each commit is one atomic, conditional `commitBlockList`.
 *
 * What a write covers travels in its block ids (partition and sequence range, see block-id.ts), so the
 * committed block list is the record of what was written, updated in the same operation as the data. Before
 * writing, the writer drops every item at or below the highest sequence number the file set already holds for
 * that partition; a replayed batch therefore writes nothing twice.
 *
 * Each commit is conditional on the ETag the writer last saw (or on the blob not existing yet): when another
 * writer got there first, the commit fails with 412/409, and the writer re-reads the listing and block lists
 * and tries again, so no writer ever overwrites another's blocks.
 */

/** The files of one writer shard in one rolled folder: `<folder>/<instanceId>[_n].jsonl` in `container`. */
export interface RolledFiles {
  container: string;
  folder: string;
  instanceId: string;
}

export interface Sequenced {
  sequenceNumber: number;
}

/** Produces the bytes for the items not yet written, in order. */
export type RenderLines<T> = (pending: T[], signal: AbortSignal | undefined) => AsyncIterable<string>;

export interface RolledWriterOptions {
  /** A file takes no more blocks after this many; the next write starts `<instance>_<n+1>.jsonl`. Default 1000. */
  maxBlocksPerFile?: number;
  /** ... nor after this many bytes. Default 1 GiB. */
  maxBytesPerFile?: number;
  /** Block size; a write larger than this is split. Default and maximum 4 MiB. */
  blockBytes?: number;
  /** Conflicts (another writer committed first) tolerated per write before giving up. Default 20. */
  maxConflicts?: number;
  /** Called after each successful commit, before the write returns. The test fault point hooks in here. */
  afterCommit?: (commit: CommitInfo) => void | Promise<void>;
  /** Remembered file sets; the oldest is forgotten beyond this and re-read from storage when next used. Default 1000. */
  maxRemembered?: number;
}

export interface CommitInfo {
  url: string;
  partitionId: string;
  firstSequenceNumber: number;
  lastSequenceNumber: number;
  items: number;
  blocks: number;
  bytes: number;
}

export interface WriteOutcome {
  /** The file written, or undefined when every item was already there. */
  url?: string;
  written: number;
  /** Items skipped because the files already held them (a replay). */
  skipped: number;
  bytes: number;
  conflicts: number;
}

export class AppendConflictError extends Error {
  readonly code = 'AppendConflict';
  constructor(message: string) {
    super(message);
    this.name = 'AppendConflictError';
  }
}

const maxBlockBytes = 4 * 1024 * 1024;

interface FileState {
  index: number;
  name: string;
  /** Undefined while the file does not exist yet. */
  etag?: string;
  blockIds: string[];
  bytes: number;
}

interface SetState {
  current: FileState;
  /** Highest sequence number written per partition, over every file of the set. */
  written: Map<string, number>;
}

/** A competing writer moved the blob on: re-read and try again. */
function isConflict(error: unknown): boolean {
  if (!(error instanceof RestError)) return false;
  if (error.statusCode === 412 || error.statusCode === 409) return true;
  // Another writer's commit discards blocks we staged but had not committed.
  return error.statusCode === 400 && error.code === 'InvalidBlockList';
}

export class RolledWriter {
  private readonly sets = new Map<string, SetState>();
  private readonly containers = new Map<string, Promise<void>>();
  private readonly maxBlocksPerFile: number;
  private readonly maxBytesPerFile: number;
  private readonly blockBytes: number;
  private readonly maxConflicts: number;
  private readonly maxRemembered: number;

  constructor(
    private readonly service: BlobServiceClient,
    private readonly options: RolledWriterOptions = {},
  ) {
    this.maxBlocksPerFile = options.maxBlocksPerFile ?? 1000;
    this.maxBytesPerFile = options.maxBytesPerFile ?? 1024 * 1024 * 1024;
    this.blockBytes = Math.min(options.blockBytes ?? maxBlockBytes, maxBlockBytes);
    this.maxConflicts = options.maxConflicts ?? 20;
    this.maxRemembered = options.maxRemembered ?? 1000;
  }

  /**
   * Appends the lines of `items` (one partition's, in sequence order) to the file set, in one commit, skipping
   * the items it already holds.
   */
  async write<T extends Sequenced>(
    files: RolledFiles,
    partitionId: string,
    items: readonly T[],
    render: RenderLines<T>,
    signal?: AbortSignal,
  ): Promise<WriteOutcome> {
    const key = `${files.container}/${files.folder}/${files.instanceId}`;
    const container = this.service.getContainerClient(files.container);
    await this.ensureContainer(container, signal);
    for (let conflicts = 0; conflicts <= this.maxConflicts; conflicts += 1) {
      signal?.throwIfAborted();
      const state = this.remembered(key) ?? (await this.load(container, files, signal));
      this.remember(key, state);
      const mark = state.written.get(partitionId) ?? -1;
      const pending = items.filter((item) => item.sequenceNumber > mark);
      if (pending.length === 0) return { written: 0, skipped: items.length, bytes: 0, conflicts };

      // Deterministic from the file's content: two writers that see the same file agree to roll, and then
      // race on creating the next one, which only one of them can do.
      const full = state.current.blockIds.length >= this.maxBlocksPerFile || state.current.bytes >= this.maxBytesPerFile;
      const file: FileState = full
        ? { index: state.current.index + 1, name: rolledFileName(files.instanceId, state.current.index + 1), blockIds: [], bytes: 0 }
        : state.current;
      const blob = container.getBlockBlobClient(`${files.folder}/${file.name}`);
      const first = pending[0]!.sequenceNumber;
      const last = pending[pending.length - 1]!.sequenceNumber;

      const staged = await this.stage(blob, render(pending, signal), (part) =>
        encodeBlockId({ partitionId, firstSequenceNumber: first, lastSequenceNumber: last, part }),
      signal);
      const blockIds = [...file.blockIds, ...staged.ids];
      let etag: string | undefined;
      try {
        const committed = await blob.commitBlockList(blockIds, {
          conditions: file.etag ? { ifMatch: file.etag } : { ifNoneMatch: '*' },
          blobHTTPHeaders: { blobContentType: 'application/jsonl; charset=utf-8' },
          abortSignal: signal,
        });
        etag = committed.etag;
      } catch (error) {
        if (!isConflict(error)) throw error;
        this.sets.delete(key);
        continue;
      }
      state.current = { index: file.index, name: file.name, ...(etag ? { etag } : {}), blockIds, bytes: file.bytes + staged.bytes };
      state.written.set(partitionId, last);
      if (!etag) this.sets.delete(key);
      await this.options.afterCommit?.({
        url: blob.url,
        partitionId,
        firstSequenceNumber: first,
        lastSequenceNumber: last,
        items: pending.length,
        blocks: staged.ids.length,
        bytes: staged.bytes,
      });
      return { url: blob.url, written: pending.length, skipped: items.length - pending.length, bytes: staged.bytes, conflicts };
    }
    throw new AppendConflictError(`gave up on ${key} after ${this.maxConflicts} conflicting writes`);
  }

  /**
   * Stages the rendered text in blocks of `blockBytes`, holding at most one block in memory. Text is encoded
   * straight into the block: measuring each piece first (Buffer.byteLength flattens a concatenated string and
   * walks it once more) cost more than the encoding. Only a piece that may not fit is encoded apart and copied
   * across the block boundary, about once per block.
   */
  private async stage(
    blob: BlockBlobClient,
    pieces: AsyncIterable<string>,
    idOf: (part: number) => string,
    signal: AbortSignal | undefined,
  ): Promise<{ ids: string[]; bytes: number }> {
    const ids: string[] = [];
    let total = 0;
    // Untouched pages of a large allocation are not resident, so a small write costs no more than its bytes.
    const block = Buffer.allocUnsafe(this.blockBytes);
    let at = 0;
    const flush = async () => {
      const id = idOf(ids.length);
      await blob.stageBlock(id, block.subarray(0, at), at, { abortSignal: signal });
      ids.push(id);
      total += at;
      at = 0;
    };
    for await (const text of pieces) {
      // UTF-8 takes at most 3 bytes per UTF-16 unit.
      if (text.length * 3 <= block.length - at) {
        at += block.write(text, at, 'utf8');
        continue;
      }
      const bytes = Buffer.from(text, 'utf8');
      let from = 0;
      while (from < bytes.length) {
        const copied = bytes.copy(block, at, from);
        at += copied;
        from += copied;
        if (at === block.length) await flush();
      }
    }
    if (at > 0) await flush();
    return { ids, bytes: total };
  }

  /** Rebuilds what the files of a set hold from storage: after a restart, or after losing a race. */
  private async load(container: ContainerClient, files: RolledFiles, signal: AbortSignal | undefined): Promise<SetState> {
    const indexes: number[] = [];
    for await (const item of container.listBlobsFlat({ prefix: `${files.folder}/${files.instanceId}`, abortSignal: signal })) {
      const index = rolledFileIndex(item.name.slice(files.folder.length + 1), files.instanceId);
      if (index !== undefined) indexes.push(index);
    }
    indexes.sort((a, b) => a - b);
    const written = new Map<string, number>();
    let current: FileState = { index: 0, name: rolledFileName(files.instanceId, 0), blockIds: [], bytes: 0 };
    for (const index of indexes) {
      const name = rolledFileName(files.instanceId, index);
      const list = await container.getBlockBlobClient(`${files.folder}/${name}`).getBlockList('committed', { abortSignal: signal });
      const blocks = list.committedBlocks ?? [];
      for (const block of blocks) {
        const fields = decodeBlockId(block.name);
        if (fields && fields.lastSequenceNumber > (written.get(fields.partitionId) ?? -1)) {
          written.set(fields.partitionId, fields.lastSequenceNumber);
        }
      }
      current = {
        index,
        name,
        ...(list.etag ? { etag: list.etag } : {}),
        blockIds: blocks.map((block) => block.name),
        bytes: blocks.reduce((sum, block) => sum + block.size, 0),
      };
    }
    return { current, written };
  }

  private remembered(key: string): SetState | undefined {
    const state = this.sets.get(key);
    if (state) {
      // Re-insert so that the map's order is least recently used first.
      this.sets.delete(key);
      this.sets.set(key, state);
    }
    return state;
  }

  private remember(key: string, state: SetState): void {
    this.sets.set(key, state);
    while (this.sets.size > this.maxRemembered) this.sets.delete(this.sets.keys().next().value!);
  }

  private ensureContainer(container: ContainerClient, signal: AbortSignal | undefined): Promise<void> {
    let ready = this.containers.get(container.containerName);
    if (!ready) {
      ready = container.createIfNotExists({ abortSignal: signal }).then(() => undefined);
      ready.catch(() => this.containers.delete(container.containerName));
      this.containers.set(container.containerName, ready);
    }
    return ready;
  }
}
