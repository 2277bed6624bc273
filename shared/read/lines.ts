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
    const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    const last = chunk.lastIndexOf(10);
    if (last < 0) {
      this.carry = this.carry ? Buffer.concat([this.carry, chunk]) : Buffer.from(chunk);
      return [];
    }
    let from = 0;
    let head: string | undefined;
    if (this.carry) {
      const first = chunk.indexOf(10);
      head = Buffer.concat([this.carry, chunk.subarray(0, first)]).toString('utf8');
      from = first + 1;
    }
    // One decode per chunk, then a native split: a byte 10 is never inside a multi-byte UTF-8 sequence, so the
    // text up to the last newline decodes whole.
    const lines = from < last ? chunk.toString('utf8', from, last).split('\n') : [];
    if (head !== undefined) lines.unshift(head);
    this.carry = last + 1 < chunk.length ? Buffer.from(chunk.subarray(last + 1)) : undefined;
    return lines.filter((line) => line.length > 0);
  }

  end(): string[] {
    const last = this.carry && this.carry.length > 0 ? [this.carry.toString('utf8')] : [];
    this.carry = undefined;
    return last;
  }
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
