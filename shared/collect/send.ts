import type { EventData, EventHubProducerClient } from '@azure/event-hubs';
import { CollectorError } from '../http-errors';

export interface SendOptions {
  partitionKey: string;
  /** How long to wait for Event Hubs before answering 503; the SDK would otherwise retry for minutes. */
  timeoutMs: number;
}

/** Seconds a caller is asked to wait when Event Hubs refuses or is down. */
export const retryAfterSeconds = 5;

function tooLarge(): CollectorError {
  return new CollectorError(413, 'EventTooLarge', 'one event is larger than Event Hubs accepts, even after staging its payload');
}

/**
 * Sends the events in as few batches as fit, in order, under one partition key so a deployment's events stay in
 * order. Resolves only once Event Hubs has accepted every batch; any failure is a 503 with Retry-After, since
 * the caller can simply send again.
 */
export async function sendEvents(producer: EventHubProducerClient, events: EventData[], options: SendOptions): Promise<void> {
  if (events.length === 0) return;
  const abortSignal = AbortSignal.timeout(options.timeoutMs);
  try {
    let batch = await producer.createBatch({ partitionKey: options.partitionKey, abortSignal });
    for (const event of events) {
      if (batch.tryAdd(event)) continue;
      if (batch.count === 0) throw tooLarge();
      await producer.sendBatch(batch, { abortSignal });
      batch = await producer.createBatch({ partitionKey: options.partitionKey, abortSignal });
      if (!batch.tryAdd(event)) throw tooLarge();
    }
    await producer.sendBatch(batch, { abortSignal });
  } catch (error) {
    if (error instanceof CollectorError) throw error;
    const reason = abortSignal.aborted ? `no answer within ${options.timeoutMs} ms` : error instanceof Error ? error.message : String(error);
    throw new CollectorError(503, 'EventHubsUnavailable', `Event Hubs did not accept the events (${reason}); nothing was collected, send again later`, {
      retryAfterSeconds,
      cause: error,
    });
  }
}

interface Waiting {
  events: EventData[];
  resolve(): void;
  reject(error: unknown): void;
}

interface Lane {
  queue: Waiting[];
  busy: boolean;
}

/**
 * Group commit for concurrent requests: while one batch for a partition key is in flight, the events of the
 * requests that arrive meanwhile wait and then go together in the next batch. Each request still resolves only
 * once its own events were accepted, and one key's events keep their order, but Event Hubs sees a few large
 * sends instead of one per request.
 */
export class EventSender {
  private readonly lanes = new Map<string, Lane>();

  constructor(
    private readonly producer: EventHubProducerClient,
    private readonly timeoutMs: number,
  ) {}

  send(partitionKey: string, events: EventData[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    let lane = this.lanes.get(partitionKey);
    if (!lane) {
      lane = { queue: [], busy: false };
      this.lanes.set(partitionKey, lane);
    }
    const queued = new Promise<void>((resolve, reject) => lane.queue.push({ events, resolve, reject }));
    if (!lane.busy) void this.drain(partitionKey, lane);
    return queued;
  }

  private async drain(partitionKey: string, lane: Lane): Promise<void> {
    lane.busy = true;
    while (lane.queue.length > 0) {
      const waiting = lane.queue.splice(0);
      try {
        await sendEvents(this.producer, waiting.length === 1 ? waiting[0]!.events : waiting.flatMap((w) => w.events), { partitionKey, timeoutMs: this.timeoutMs });
        for (const w of waiting) w.resolve();
      } catch (error) {
        for (const w of waiting) w.reject(error);
      }
    }
    lane.busy = false;
    this.lanes.delete(partitionKey);
  }
}

const senders = new WeakMap<EventHubProducerClient, EventSender>();

/** The sender of a producer, shared by every request of the process so that their events can go together. */
export function senderFor(producer: EventHubProducerClient, timeoutMs: number): EventSender {
  let sender = senders.get(producer);
  if (!sender) {
    sender = new EventSender(producer, timeoutMs);
    senders.set(producer, sender);
  }
  return sender;
}
