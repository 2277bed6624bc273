import rhea, { type Message } from 'rhea';
import { EmulatorError, conditions, errors, statusOf } from '../errors';
import type { Namespace } from '../namespace';

/** Answers a `$management` READ of hub or partition properties, as map bodies the SDK reads by key. */
export function answerManagement(request: Message, namespace: Namespace): Message {
  const properties = request.application_properties ?? {};
  try {
    const body = read(properties, namespace);
    return {
      correlation_id: request.message_id,
      application_properties: { 'status-code': 200, 'status-description': 'OK' },
      body,
    };
  } catch (error) {
    const failure =
      error instanceof EmulatorError ? error : new EmulatorError(conditions.internalError, error instanceof Error ? error.message : String(error));
    return {
      correlation_id: request.message_id,
      body: null,
      application_properties: {
        'status-code': statusOf[failure.code] ?? 500,
        'status-description': failure.message,
        'error-condition': failure.code,
      },
    };
  }
}

function read(properties: Record<string, unknown>, namespace: Namespace): Record<string, unknown> {
  const operation = String(properties.operation ?? '');
  const type = String(properties.type ?? '');
  const name = String(properties.name ?? '');
  if (operation !== 'READ') throw errors.unsupportedOperation(operation, type);
  if (type === 'com.microsoft:eventhub') {
    const hub = namespace.hub(name);
    return { name: hub.name, created_at: hub.createdAt, partition_ids: [...hub.partitionIds], type };
  }
  if (type === 'com.microsoft:partition') {
    const hub = namespace.hub(name);
    const partitionId = String(properties.partition ?? '');
    const log = namespace.partition(hub.name, partitionId);
    return {
      name: hub.name,
      partition: partitionId,
      type,
      begin_sequence_number: rhea.types.wrap_long(0),
      last_enqueued_sequence_number: rhea.types.wrap_long(log.lastSequenceNumber),
      last_enqueued_offset: String(log.lastOffset),
      last_enqueued_time_utc: new Date(log.lastEnqueuedTimeMs),
      is_partition_empty: log.isEmpty,
    };
  }
  throw errors.unsupportedOperation(operation, type);
}
