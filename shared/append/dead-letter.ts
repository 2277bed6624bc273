import { rolledFolder } from './rolled-path';

/**
 * Dead letters: messages that can never be written (not a hub event, or a staged payload that is gone) are
 * kept, with why, in `<system container>/deadletter/yyyy/MM/dd/HH/<partition>.jsonl`, and the partition moves
 * on. They go through the same exactly-once writer as the data, so a replay does not repeat them; the folder
 * comes from the time Event Hubs enqueued the message, so a replay also finds the same file.
 */

export interface DeadLetter {
  partitionId: string;
  sequenceNumber: number;
  enqueuedTime?: Date | string;
  /** The message as the trigger delivered it. */
  body: unknown;
  reason: string;
}

export function deadLetterFolder(enqueuedTime: Date | string): string {
  return `deadletter/${rolledFolder(enqueuedTime, 'Hour')}`;
}

/** The raw message as text: strings as they are, bytes as UTF-8 (base64 when they are not text), JSON otherwise. */
function rawMessage(body: unknown): { message: string; messageEncoding?: 'base64' } {
  if (typeof body === 'string') return { message: body };
  if (Buffer.isBuffer(body) || body instanceof Uint8Array) {
    const bytes = Buffer.from(body);
    const text = bytes.toString('utf8');
    return Buffer.from(text, 'utf8').equals(bytes) ? { message: text } : { message: bytes.toString('base64'), messageEncoding: 'base64' };
  }
  return { message: JSON.stringify(body) ?? 'undefined' };
}

export function buildDeadLetterLine(letter: DeadLetter): string {
  const enqueued = letter.enqueuedTime === undefined ? undefined : new Date(letter.enqueuedTime).toISOString();
  return `${JSON.stringify({
    reason: letter.reason,
    partition: letter.partitionId,
    sequenceNumber: letter.sequenceNumber,
    enqueuedTime: enqueued,
    ...rawMessage(letter.body),
  })}\n`;
}
