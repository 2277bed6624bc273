import { closeSync, ftruncateSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';

/** What the log assigns to an event when it is appended. */
export interface EventMeta {
  sequenceNumber: number;
  /** Byte position of the event's record in the partition file; stable across restarts, as the service's offsets. */
  offset: number;
  enqueuedTimeMs: number;
}

/** Builds the bytes to store once the event's place in the log is known (so they can carry it). */
export type EventEncoder = (meta: EventMeta) => Buffer;

export interface PartitionLogOptions {
  /** Bytes of the newest events kept in memory for live readers; older ones are read from the file. */
  cacheBytes?: number;
}

// Record: u32 payload length, f64 enqueued time (ms), payload. The time sits outside the payload so that a
// restart rebuilds the index from the headers alone.
const headerBytes = 12;
const scanChunkBytes = 8 * 1024 * 1024;
const readChunkBytes = 4 * 1024 * 1024;

/**
 * One partition's append-only event log in one file. An in-memory index (offsets and times per sequence
 * number) answers seeks; bodies stay on disk except for a bounded cache of the newest ones.
 */
export class PartitionLog {
  private readonly fd: number;
  private size = 0;
  private count = 0;
  private offsets = new Float64Array(1024);
  private times = new Float64Array(1024);
  private recent: Buffer[] = [];
  /** Index in `recent` of sequence number `recentStart`: what is before it has been let go. */
  private recentHead = 0;
  private recentStart = 0;
  private recentBytes = 0;
  private readonly cacheBytes: number;
  private readonly listeners = new Set<() => void>();
  private closed = false;

  constructor(readonly file: string, options: PartitionLogOptions = {}) {
    this.cacheBytes = options.cacheBytes ?? 4 * 1024 * 1024;
    this.fd = openSync(file, 'a+');
    this.scan();
  }

  /** The number of events, which is also the next sequence number. */
  get length(): number {
    return this.count;
  }
  get isEmpty(): boolean {
    return this.count === 0;
  }
  get lastSequenceNumber(): number {
    return this.count - 1;
  }
  /** `-1` when empty, as the service reports. */
  get lastOffset(): number {
    return this.count === 0 ? -1 : this.offsets[this.count - 1];
  }
  get lastEnqueuedTimeMs(): number {
    return this.count === 0 ? 0 : this.times[this.count - 1];
  }
  /** Where the next event will be written. */
  get endOffset(): number {
    return this.size;
  }

  append(encoders: readonly EventEncoder[]): EventMeta[] {
    if (this.closed) throw new Error(`partition log ${this.file} is closed`);
    // Enqueued times never go backwards within a partition, so time filters can binary-search.
    const now = Math.max(Date.now(), this.lastEnqueuedTimeMs);
    const metas: EventMeta[] = [];
    const records: Buffer[] = [];
    let position = this.size;
    for (const encode of encoders) {
      const meta: EventMeta = { sequenceNumber: this.count + metas.length, offset: position, enqueuedTimeMs: now };
      const payload = encode(meta);
      const header = Buffer.allocUnsafe(headerBytes);
      header.writeUInt32BE(payload.length, 0);
      header.writeDoubleBE(now, 4);
      records.push(header, payload);
      metas.push(meta);
      position += headerBytes + payload.length;
    }
    const bytes = records.length === 2 ? Buffer.concat(records) : Buffer.concat(records, position - this.size);
    let written = 0;
    while (written < bytes.length) written += writeSync(this.fd, bytes, written, bytes.length - written);
    for (let i = 0; i < metas.length; i++) {
      this.index(metas[i].offset, now);
      this.remember(records[2 * i + 1]);
    }
    this.size = position;
    for (const listener of [...this.listeners]) listener();
    return metas;
  }

  offsetOf(sequenceNumber: number): number {
    return this.offsets[sequenceNumber];
  }
  enqueuedTimeOf(sequenceNumber: number): number {
    return this.times[sequenceNumber];
  }

  /** The first sequence number whose offset is after (or at, when inclusive) `offset`; `length` if none. */
  seekOffset(offset: number, inclusive: boolean): number {
    return this.lowerBound(this.offsets, offset, inclusive);
  }

  /** The first sequence number enqueued after (or at, when inclusive) `timeMs`; `length` if none. */
  seekTime(timeMs: number, inclusive: boolean): number {
    return this.lowerBound(this.times, timeMs, inclusive);
  }

  /** Up to `max` stored events from `from` on, as stored. */
  read(from: number, max: number): Buffer[] {
    const out: Buffer[] = [];
    const end = Math.min(this.count, from + max);
    let seq = from;
    while (seq < end) {
      if (seq >= this.recentStart) {
        out.push(this.recent[this.recentHead + seq - this.recentStart]);
        seq++;
        continue;
      }
      // Older events come from the file, several records per read.
      const stop = Math.min(end, this.recentStart);
      let last = seq + 1;
      const start = this.offsets[seq];
      while (last < stop && this.offsets[last] - start < readChunkBytes) last++;
      const finish = last < this.count ? this.offsets[last] : this.size;
      const chunk = Buffer.allocUnsafe(finish - start);
      readFully(this.fd, chunk, start);
      let at = 0;
      for (; seq < last; seq++) {
        const length = chunk.readUInt32BE(at);
        out.push(chunk.subarray(at + headerBytes, at + headerBytes + length));
        at += headerBytes + length;
      }
    }
    return out;
  }

  /** Calls `listener` after every append; returns the unsubscribe function. */
  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.recent = [];
    this.recentHead = 0;
    closeSync(this.fd);
  }

  private lowerBound(values: Float64Array, target: number, inclusive: boolean): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const before = inclusive ? values[mid] < target : values[mid] <= target;
      if (before) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private index(offset: number, time: number): void {
    if (this.count === this.offsets.length) {
      const offsets = new Float64Array(this.count * 2);
      offsets.set(this.offsets);
      this.offsets = offsets;
      const times = new Float64Array(this.count * 2);
      times.set(this.times);
      this.times = times;
    }
    this.offsets[this.count] = offset;
    this.times[this.count] = time;
    this.count++;
  }

  private remember(payload: Buffer): void {
    this.recent.push(payload);
    this.recentBytes += payload.length;
    while (this.recentBytes > this.cacheBytes && this.recentHead < this.recent.length - 1) {
      this.recentBytes -= this.recent[this.recentHead].length;
      this.recentHead++;
      this.recentStart++;
    }
    // Let go of dropped entries in one copy now and then, not one copy of the whole cache per event.
    if (this.recentHead > 1024 && this.recentHead * 2 > this.recent.length) {
      this.recent = this.recent.slice(this.recentHead);
      this.recentHead = 0;
    }
  }

  /** Rebuilds the index from the record headers; a torn last record (crash mid-write) is cut off. */
  private scan(): void {
    const fileSize = fstatSync(this.fd).size;
    const chunk = Buffer.allocUnsafe(scanChunkBytes);
    let chunkStart = 0;
    let chunkEnd = 0;
    let position = 0;
    while (position + headerBytes <= fileSize) {
      if (position + headerBytes > chunkEnd) {
        const wanted = Math.min(scanChunkBytes, fileSize - position);
        readFully(this.fd, chunk.subarray(0, wanted), position);
        chunkStart = position;
        chunkEnd = position + wanted;
      }
      const length = chunk.readUInt32BE(position - chunkStart);
      const time = chunk.readDoubleBE(position - chunkStart + 4);
      if (position + headerBytes + length > fileSize) break;
      this.index(position, time);
      position += headerBytes + length;
    }
    if (position < fileSize) ftruncateSync(this.fd, position);
    this.size = position;
    this.recentStart = this.count;
  }
}

function readFully(fd: number, into: Buffer, position: number): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw new Error(`unexpected end of partition file at ${position + done}`);
    done += n;
  }
}
