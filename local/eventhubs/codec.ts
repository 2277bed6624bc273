import rhea from 'rhea';
import type { EventMeta } from './partition-log';

/** Message format of the SDK's batch envelope: its body is one data section per event, each a whole encoded message. */
export const batchFormat = 0x80013700;

export const annotation = {
  partitionKey: 'x-opt-partition-key',
  sequenceNumber: 'x-opt-sequence-number',
  offset: 'x-opt-offset',
  enqueuedTime: 'x-opt-enqueued-time',
} as const;

const stamped = new Set<string>([annotation.sequenceNumber, annotation.offset, annotation.enqueuedTime]);

// rhea's typings leave out the pieces used to walk and build sections; their shapes are stable since rhea 1.x.
interface Typed {
  value: unknown;
  descriptor?: { value: unknown };
  toRheaTyped(): Typed;
}
interface TypesInternal {
  Reader: new (buffer: Buffer) => { position: number; read(): Typed; remaining(): number };
  Writer: new () => { write(value: Typed): void; toBuffer(): Buffer };
  Map32(items: Typed[]): Typed;
  described(descriptor: Typed, value: Typed): Typed;
  wrap_ulong(value: number): Typed;
  wrap_symbol(value: string): Typed;
  wrap_string(value: string): Typed;
  wrap_long(value: number): Typed;
  wrap_timestamp(value: number): Typed;
  unwrap(value: unknown, leaveDescribed?: boolean): unknown;
}
const types = rhea.types as unknown as TypesInternal;

const section = { header: 0x70, deliveryAnnotations: 0x71, messageAnnotations: 0x72 } as const;

export interface PublishedEvents {
  /** Each event as the client encoded it. */
  events: Buffer[];
  partitionKey?: string;
  /** Bytes on the wire, the size the message size limit applies to. */
  size: number;
}

interface TransferContext {
  message?: unknown;
  format?: number;
}

/** Unpacks one transfer from a publisher: a batch envelope, or a plain message from a non-SDK client. */
export function unpackTransfer(context: TransferContext): PublishedEvents {
  if (context.format !== undefined && context.format !== 0) {
    const data = context.message as Buffer;
    const envelope = rhea.message.decode(data) as { message_annotations?: Record<string, unknown>; body?: unknown };
    return { events: bodySections(envelope.body), partitionKey: keyOf(envelope.message_annotations), size: data.length };
  }
  const message = context.message as { message_annotations?: Record<string, unknown> };
  const encoded = rhea.message.encode(message as rhea.Message);
  return { events: [encoded], partitionKey: keyOf(message.message_annotations), size: encoded.length };
}

function bodySections(body: unknown): Buffer[] {
  const sectioned = body as { content?: unknown; multiple?: boolean; typecode?: number } | undefined;
  if (sectioned && sectioned.typecode === 0x75) {
    return sectioned.multiple ? (sectioned.content as Buffer[]) : [sectioned.content as Buffer];
  }
  // Not an SDK envelope: store the whole body as one event rather than dropping it.
  return [rhea.message.encode({ body } as rhea.Message)];
}

function keyOf(annotations: Record<string, unknown> | undefined): string | undefined {
  const key = annotations?.[annotation.partitionKey];
  return key === undefined || key === null ? undefined : String(key);
}

/**
 * Adds the service's annotations to an encoded event. Sections are spliced as bytes, so the client's own
 * properties and body keep their exact AMQP types.
 */
export function stampEvent(encoded: Buffer, meta: EventMeta, partitionKey: string | undefined): Buffer {
  const reader = new types.Reader(encoded);
  let insertAt = 0;
  let replaceEnd = 0;
  let existing: Typed[] = [];
  while (reader.remaining()) {
    const start = reader.position;
    const read = reader.read();
    const code = descriptorCode(read);
    if (code === section.header || code === section.deliveryAnnotations) {
      insertAt = reader.position;
      replaceEnd = insertAt;
      continue;
    }
    if (code === section.messageAnnotations) {
      insertAt = start;
      replaceEnd = reader.position;
      // A described section reads as the map's own Typed value (its items), with the descriptor attached.
      const items = read.value as Typed[] | Typed;
      existing = Array.isArray(items) ? items : ((items.value as Typed[]) ?? []);
    }
    break;
  }
  const items: Typed[] = [];
  let hasKey = false;
  for (let i = 0; i + 1 < existing.length; i += 2) {
    const key = String(types.unwrap(existing[i]));
    if (stamped.has(key)) continue;
    if (key === annotation.partitionKey) hasKey = true;
    items.push(existing[i], existing[i + 1]);
  }
  if (!hasKey && partitionKey !== undefined) items.push(types.wrap_symbol(annotation.partitionKey), types.wrap_string(partitionKey));
  items.push(
    types.wrap_symbol(annotation.sequenceNumber),
    types.wrap_long(meta.sequenceNumber),
    types.wrap_symbol(annotation.offset),
    types.wrap_string(String(meta.offset)),
    types.wrap_symbol(annotation.enqueuedTime),
    types.wrap_timestamp(meta.enqueuedTimeMs),
  );
  const writer = new types.Writer();
  writer.write(types.described(types.wrap_ulong(section.messageAnnotations), types.Map32(items)));
  return Buffer.concat([encoded.subarray(0, insertAt), writer.toBuffer(), encoded.subarray(replaceEnd)]);
}

function descriptorCode(value: Typed): number | undefined {
  const descriptor = value.descriptor?.value;
  if (typeof descriptor === 'number') return descriptor;
  if (descriptor instanceof Number) return descriptor.valueOf();
  return undefined;
}
