import { createHash } from 'node:crypto';

/**
 * Where a correlation id falls in [0, 1): the first 53 bits of its SHA-256. It depends on nothing but the id,
 * so the inputs and the outputs of one request, collected by separate calls (even on separate instances),
 * are kept or dropped together (SPEC §4).
 */
export function samplingScore(correlationId: string): number {
  const digest = createHash('sha256').update(correlationId, 'utf8').digest();
  return Number(digest.readBigUInt64BE(0) >> 11n) / 2 ** 53;
}

/** True when an event with this correlation id is collected at this rate (0 keeps nothing, 1 everything). */
export function isSampledIn(correlationId: string, rate: number): boolean {
  if (rate >= 1) return true;
  if (rate <= 0) return false;
  return samplingScore(correlationId) < rate;
}
