import type { EventData, EventHubProducerClient } from '@azure/event-hubs';
import { CollectorError } from '../http-errors';

export interface SendOptions {
  partitionKey: string;
  /** How long to wait for Event Hubs before answering 503; the SDK would otherwise retry for minutes. */
  timeoutMs: number;
  abortSignal?: AbortSignal;
}

/** Seconds a caller is asked to wait when Event Hubs refuses or is down. */
export const retryAfterSeconds = 5;

/**
 * Sends the events in as few batches as fit, in order, under one partition key so a deployment's events stay in
 * order. Resolves only once Event Hubs has accepted every batch; any failure is a 503 with Retry-After, since
 * the caller can simply send again.
 */
export async function sendEvents(producer: EventHubProducerClient, events: EventData[], options: SendOptions): Promise<void> {
  if (events.length === 0) return;
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const abortSignal = options.abortSignal ? AbortSignal.any([timeout, options.abortSignal]) : timeout;
  try {
    let batch = await producer.createBatch({ partitionKey: options.partitionKey, abortSignal });
    for (const event of events) {
      if (batch.tryAdd(event)) continue;
      if (batch.count === 0) throw new CollectorError(413, 'EventTooLarge', 'one event is larger than Event Hubs accepts, even after staging its payload');
      await producer.sendBatch(batch, { abortSignal });
      batch = await producer.createBatch({ partitionKey: options.partitionKey, abortSignal });
      if (!batch.tryAdd(event)) throw new CollectorError(413, 'EventTooLarge', 'one event is larger than Event Hubs accepts, even after staging its payload');
    }
    await producer.sendBatch(batch, { abortSignal });
  } catch (error) {
    if (error instanceof CollectorError) throw error;
    const reason = timeout.aborted ? `no answer within ${options.timeoutMs} ms` : error instanceof Error ? error.message : String(error);
    throw new CollectorError(503, 'EventHubsUnavailable', `Event Hubs did not accept the events (${reason}); nothing was collected, send again later`, {
      retryAfterSeconds,
      cause: error,
    });
  }
}
