import { errors } from '../errors';
import type { PartitionLog } from '../partition-log';

const selectorKey = 'apache.org:selector-filter:string';
const expression = /^\s*amqp\.annotation\.(x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time)\s*(>=|>)\s*'([^']*)'\s*$/i;

/** The selector expression of a receiver's source filter, however rhea surfaced the described value. */
export function selectorOf(filter: unknown): string | undefined {
  if (!filter || typeof filter !== 'object') return undefined;
  for (const [key, value] of Object.entries(filter as Record<string, unknown>)) {
    if (key !== selectorKey && !/selector/i.test(key)) continue;
    const text = unwrapText(value);
    if (text !== undefined) return text;
  }
  return undefined;
}

function unwrapText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && 'value' in value) return unwrapText((value as { value: unknown }).value);
  return undefined;
}

/**
 * The first sequence number a receiver gets, from the selector the SDK builds: offset, sequence number or
 * enqueued time, `>` or `>=`. Earliest is offset `-1`, latest is `@latest`. No filter reads from the start.
 */
export function startOf(selector: string | undefined, log: PartitionLog): number {
  if (selector === undefined) return 0;
  const match = expression.exec(selector);
  if (!match) throw errors.badFilter(selector);
  const [, field, operator, raw] = match;
  const inclusive = operator === '>=';
  switch (field.toLowerCase()) {
    case 'x-opt-offset': {
      if (raw === '@latest') return log.length;
      const offset = Number(raw);
      if (!Number.isFinite(offset)) throw errors.badFilter(selector);
      return log.seekOffset(offset, inclusive);
    }
    case 'x-opt-sequence-number': {
      const sequence = Number(raw);
      if (!Number.isInteger(sequence)) throw errors.badFilter(selector);
      const start = Math.max(0, inclusive ? sequence : sequence + 1);
      if (start > log.length) throw errors.sequenceOutOfRange(sequence, log.lastSequenceNumber);
      return start;
    }
    default: {
      const time = Number(raw);
      if (!Number.isFinite(time)) throw errors.badFilter(selector);
      return log.seekTime(time, inclusive);
    }
  }
}
