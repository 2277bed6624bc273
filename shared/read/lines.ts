/**
 * Splits a byte stream into `\n`-terminated lines without holding more than one chunk and one partial line,
 * so a blob of any size is read in flat memory. A last line without `\n` is still a line: files are read
 * while `append` grows them, and a block is only ever committed whole.
 */
export async function* splitLineBatches(chunks: AsyncIterable<Uint8Array | string>): AsyncGenerator<string[]> {
  let carry: Buffer | undefined;
  for await (const raw of chunks) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw) : Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    const lines: string[] = [];
    let from = 0;
    let newline = chunk.indexOf(10, from);
    if (newline >= 0 && carry) {
      const joined = Buffer.concat([carry, chunk.subarray(0, newline)]);
      carry = undefined;
      if (joined.length > 0) lines.push(joined.toString('utf8'));
      from = newline + 1;
      newline = chunk.indexOf(10, from);
    }
    while (newline >= 0) {
      if (newline > from) lines.push(chunk.toString('utf8', from, newline));
      from = newline + 1;
      newline = chunk.indexOf(10, from);
    }
    if (from < chunk.length) carry = carry ? Buffer.concat([carry, chunk.subarray(from)]) : Buffer.from(chunk.subarray(from));
    // One batch per chunk: a promise per line would cost more than splitting it.
    if (lines.length > 0) yield lines;
  }
  if (carry && carry.length > 0) yield [carry.toString('utf8')];
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
