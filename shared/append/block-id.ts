/**
 * Block ids that say what they hold: the Event Hubs partition and the range of sequence numbers whose lines
 * the block belongs to, plus the block's place in that write. They are committed in the same atomic
 * `commitBlockList` as the data, so the blob itself records what was written: a replayed batch reads the
 * committed list and skips what is already there.
 *
 * Azure requires every block id of a blob to have the same length, so each field is fixed-width before the
 * id is base64-encoded. The raw id is 60 characters, under the 64-byte limit.
 */

export interface BlockIdFields {
  partitionId: string;
  firstSequenceNumber: number;
  lastSequenceNumber: number;
  /** The block's place among the blocks of one write, from 0. */
  part: number;
}

const prefix = 'v1.';
const partitionWidth = 10;
const sequenceWidth = 19;
const partWidth = 6;
const rawLength = prefix.length + partitionWidth + 1 + sequenceWidth + 1 + sequenceWidth + 1 + partWidth;

export class BlockIdError extends Error {
  readonly code = 'InvalidBlockIdField';
  constructor(message: string) {
    super(message);
    this.name = 'BlockIdError';
  }
}

function field(value: number, width: number, name: string): string {
  if (!Number.isSafeInteger(value) || value < 0) throw new BlockIdError(`${name} must be a non-negative integer, got ${value}`);
  const text = String(value);
  if (text.length > width) throw new BlockIdError(`${name} ${value} does not fit ${width} digits`);
  return text.padStart(width, '0');
}

export function encodeBlockId(fields: BlockIdFields): string {
  if (!/^[A-Za-z0-9_-]{1,10}$/.test(fields.partitionId)) {
    throw new BlockIdError(`partition id must be 1-${partitionWidth} letters, digits, '-' or '_', got '${fields.partitionId}'`);
  }
  const raw = [
    prefix + fields.partitionId.padStart(partitionWidth, '.'),
    field(fields.firstSequenceNumber, sequenceWidth, 'first sequence number'),
    field(fields.lastSequenceNumber, sequenceWidth, 'last sequence number'),
    field(fields.part, partWidth, 'part'),
  ].join('.');
  return Buffer.from(raw, 'utf8').toString('base64');
}

/** The fields of one of our ids, or undefined for a block some other writer named. */
export function decodeBlockId(id: string): BlockIdFields | undefined {
  const raw = Buffer.from(id, 'base64').toString('utf8');
  if (raw.length !== rawLength || !raw.startsWith(prefix)) return undefined;
  const match = /^v1\.\.*([A-Za-z0-9_-]+)\.(\d{19})\.(\d{19})\.(\d{6})$/.exec(raw);
  if (!match) return undefined;
  return {
    partitionId: match[1]!,
    firstSequenceNumber: Number(match[2]),
    lastSequenceNumber: Number(match[3]),
    part: Number(match[4]),
  };
}
