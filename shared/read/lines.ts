/**
 * Splits a byte stream into `\n`-terminated lines without holding more than one chunk and one partial line,
 * so a blob of any size is read in flat memory. A last line without `\n` is still a line: files are read
 * while `append` grows them, and a block is only ever committed whole.
 */
export async function* splitLineBatches(chunks: AsyncIterable<Uint8Array | string>): AsyncGenerator<string[]> {
  const splitter = new LineSplitter();
  for await (const raw of chunks) {
    const lines = splitter.push(typeof raw === 'string' ? Buffer.from(raw) : raw);
    // One batch per chunk: a promise per line would cost more than splitting it.
    if (lines.length > 0) yield lines;
  }
  const last = splitter.end();
  if (last.length > 0) yield last;
}

/** The same splitting, fed one chunk at a time: `push` gives the lines a chunk completes, `end` the last one. */
export class LineSplitter {
  private carry: Buffer | undefined;

  push(raw: Uint8Array): string[] {
    return textLines(this.pushBytes(raw));
  }

  /** The bytes of the lines a chunk completes, each `\n`-terminated, in one buffer. */
  pushBytes(raw: Uint8Array): Buffer {
    const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    const last = chunk.lastIndexOf(10);
    if (last < 0) {
      this.keep(chunk);
      return Buffer.alloc(0);
    }
    const lines = this.carry ? Buffer.concat([this.carry, chunk.subarray(0, last + 1)]) : chunk.subarray(0, last + 1);
    this.carry = undefined;
    this.keep(chunk.subarray(last + 1));
    return lines;
  }

  end(): string[] {
    return textLines(this.endBytes());
  }

  /** The rest, as `pushBytes` gives lines: a last line without `\n` gets one. */
  endBytes(): Buffer {
    const last = this.carry && this.carry.length > 0 ? Buffer.concat([this.carry, Buffer.from('\n')]) : Buffer.alloc(0);
    this.carry = undefined;
    return last;
  }

  /** Adds bytes after the last newline to the carried partial line (copied: the chunk's memory may be reused). */
  private keep(rest: Buffer): void {
    if (rest.length > 0) this.carry = this.carry ? Buffer.concat([this.carry, rest]) : Buffer.from(rest);
  }
}

/**
 * The non-empty lines of `\n`-terminated bytes. One decode, then a native split: a byte 10 is never inside a
 * multi-byte UTF-8 sequence, so the bytes decode whole.
 */
function textLines(bytes: Buffer): string[] {
  if (bytes.length === 0) return [];
  return bytes
    .toString('utf8', 0, bytes.length - 1)
    .split('\n')
    .filter((line) => line.length > 0);
}

/** The same lines one by one. */
export async function* splitLines(chunks: AsyncIterable<Uint8Array | string>): AsyncGenerator<string> {
  for await (const lines of splitLineBatches(chunks)) yield* lines;
}

/** The complete lines in a slice of a file read from `offset`: a slice that starts mid-file drops its first, partial line. */
export function linesOfSlice(bytes: Buffer, offset: number, fileSize: number): string[] {
  let text = bytes.toString('utf8');
  if (offset > 0) {
    const first = text.indexOf('\n');
    text = first < 0 ? '' : text.slice(first + 1);
  }
  const lines = text.split('\n');
  // The last piece is partial unless the slice reaches the end of the file.
  if (offset + bytes.length < fileSize) lines.pop();
  return lines.filter((line) => line.trim() !== '');
}
