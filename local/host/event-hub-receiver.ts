import { parentPort, workerData } from 'node:worker_threads';
import { EventHubConsumerClient, type EventPosition, type PartitionContext, type ReceivedEventData } from '@azure/event-hubs';
import { BlobCheckpointStore } from '@azure/eventhubs-checkpointstore-blob';
import { createBlobServiceClient, credentialFor } from '../../shared/clients';
import type { EventHubsConnection, StorageConnection } from '../../shared/settings';
import { bounded } from './retry';

/**
 * The receiving half of the local host's Event Hubs trigger, on a worker thread of its own: the SDK's AMQP
 * receive, decoding and checkpointing run here while the function runs on the host's main thread, so the two
 * overlap as they do on Azure, where the Functions host receives in a process apart from the language worker.
 * A batch is checkpointed only once the function is done with it, batches of a partition are run one at a time
 * in order, and a partition receives at most one batch ahead of the one the function runs.
 */

/** What the host's main thread hands this worker. */
export interface ReceiverInit {
  consumerGroup: string;
  eventHubName: string;
  connection: EventHubsConnection;
  storage: StorageConnection;
  checkpointContainer: string;
  ownershipExpiryMs: number;
  maxBatchSize: number;
  maxWaitTimeInSeconds: number;
  prefetchCount: number;
  startPosition: EventPosition;
  /** Bodies as their bytes (dataType 'binary'), sent as one transferred buffer per batch. */
  binary: boolean;
}

export interface PartitionTarget {
  fullyQualifiedNamespace: string;
  eventHubName: string;
  consumerGroup: string;
  partitionId: string;
}

/** One event without its body, as it crosses to the main thread. */
export interface WireEvent {
  sequenceNumber: number;
  offset: string;
  enqueuedTimeUtc: Date;
  partitionKey: string | null;
  properties?: Record<string, unknown>;
  systemProperties?: Record<string, unknown>;
  /** The body, when not binary. */
  body?: unknown;
}

export type ReceiverMessage =
  | { type: 'ready' }
  | { type: 'failed'; text: string }
  | {
      type: 'batch';
      id: number;
      target: PartitionTarget;
      events: WireEvent[];
      /** Binary bodies back to back, and where each one ends. */
      bytes?: ArrayBuffer;
      ends?: Uint32Array;
    }
  | { type: 'log'; level: 'warning'; text: string; partitionId?: string }
  | { type: 'closed' };

export type HostMessage = { type: 'done'; id: number; checkpoint: boolean } | { type: 'close' };

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function bytesOf(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  return Buffer.from(JSON.stringify(body) ?? '', 'utf8');
}

async function run(init: ReceiverInit, port: NonNullable<typeof parentPort>): Promise<void> {
  const post = (message: ReceiverMessage, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);
  const storage = createBlobServiceClient(init.storage);
  const container = storage.getContainerClient(init.checkpointContainer);
  await container.createIfNotExists();
  const checkpointStore = new BlobCheckpointStore(container);
  const clientOptions = {
    loadBalancingOptions: {
      strategy: 'greedy' as const,
      updateIntervalInMs: Math.max(250, Math.floor(init.ownershipExpiryMs / 6)),
      partitionOwnershipExpirationIntervalInMs: init.ownershipExpiryMs,
    },
  };
  const { connection } = init;
  const client =
    connection.kind === 'connectionString'
      ? new EventHubConsumerClient(init.consumerGroup, connection.connectionString, init.eventHubName, checkpointStore, clientOptions)
      : new EventHubConsumerClient(
          init.consumerGroup,
          connection.fullyQualifiedNamespace,
          init.eventHubName,
          credentialFor(connection),
          checkpointStore,
          clientOptions,
        );

  /**
   * Properties are whatever senders set; one that cannot be cloned across threads goes as its JSON instead of
   * holding back the batch.
   */
  const postBatch = (message: Extract<ReceiverMessage, { type: 'batch' }>, transfer: ArrayBuffer[] = []) => {
    try {
      post(message, transfer);
    } catch {
      const plain = (value: unknown) => (value === undefined ? undefined : (JSON.parse(JSON.stringify(value) ?? 'null') as Record<string, unknown>));
      const events = message.events.map(({ properties, systemProperties, ...event }) => ({
        ...event,
        ...(properties ? { properties: plain(properties)! } : {}),
        ...(systemProperties ? { systemProperties: plain(systemProperties)! } : {}),
        ...(message.bytes ? {} : { body: plain(event.body) }),
      }));
      post({ ...message, events }, transfer);
    }
  };

  let nextId = 1;
  /** Per partition: the last batch handed over, settled once it is done and checkpointed. */
  const settled = new Map<string, Promise<void>>();
  const answers = new Map<number, (checkpoint: boolean) => void>();
  let closing: Promise<void> | undefined;

  const processEvents = async (events: ReceivedEventData[], partition: PartitionContext): Promise<void> => {
    if (events.length === 0 || closing) return;
    const id = nextId++;
    const target: PartitionTarget = {
      fullyQualifiedNamespace: partition.fullyQualifiedNamespace,
      eventHubName: partition.eventHubName,
      consumerGroup: partition.consumerGroup,
      partitionId: partition.partitionId,
    };
    const wire: WireEvent[] = events.map((e) => {
      const out: WireEvent = { sequenceNumber: e.sequenceNumber, offset: e.offset, enqueuedTimeUtc: e.enqueuedTimeUtc, partitionKey: e.partitionKey ?? null };
      if (e.properties) out.properties = e.properties;
      if (e.systemProperties) out.systemProperties = e.systemProperties;
      if (!init.binary) out.body = e.body;
      return out;
    });
    const answered = new Promise<boolean>((resolve) => answers.set(id, resolve));
    if (init.binary) {
      // One buffer for the batch, moved rather than copied across: a structured clone per body cost more.
      const bodies = events.map((e) => bytesOf(e.body));
      const ends = new Uint32Array(bodies.length);
      let total = 0;
      bodies.forEach((body, i) => (ends[i] = total += body.length));
      const bytes = new ArrayBuffer(total);
      const view = Buffer.from(bytes);
      let at = 0;
      for (const body of bodies) at += body.copy(view, at);
      postBatch({ type: 'batch', id, target, events: wire, bytes, ends }, [bytes]);
    } else {
      postBatch({ type: 'batch', id, target, events: wire });
    }
    // Checkpoints go in batch order, each once its batch is done: a later one never lands before an earlier one.
    const previous = settled.get(partition.partitionId) ?? Promise.resolve();
    const done = previous.then(async () => {
      if (!(await answered)) return;
      try {
        await partition.updateCheckpoint(events[events.length - 1]!);
      } catch (error) {
        // The next batch checkpoints past this one; until then a restart replays it (at least once).
        post({ type: 'log', level: 'warning', text: `could not checkpoint partition ${partition.partitionId}: ${errorText(error)}` });
      }
    });
    settled.set(partition.partitionId, done);
    // One batch ahead: the SDK asks for the partition's next events only once this returns, and asks for more
    // credit only when its queue is short of a batch, so waiting for this batch here would leave the partition
    // idle while the function runs. The host runs a partition's batches one at a time, in order.
    await previous;
  };

  const subscription = client.subscribe(
    {
      processEvents,
      processError: async (error, partition) => {
        if (closing) return;
        post({ type: 'log', level: 'warning', partitionId: partition.partitionId, text: `Event Hubs (partition ${partition.partitionId || '-'}): ${errorText(error)}` });
      },
    },
    {
      maxBatchSize: init.maxBatchSize,
      maxWaitTimeInSeconds: init.maxWaitTimeInSeconds,
      prefetchCount: init.prefetchCount,
      startPosition: init.startPosition,
      skipParsingBodyAsJson: init.binary,
    },
  );

  port.on('message', (message: HostMessage) => {
    if (message.type === 'done') {
      answers.get(message.id)?.(message.checkpoint);
      answers.delete(message.id);
      return;
    }
    closing ??= (async () => {
      for (const answer of answers.values()) answer(false);
      answers.clear();
      // With Event Hubs unreachable the SDK's close can wait on reconnects for minutes; a stopping host lets go.
      await bounded(subscription.close(), 5_000).catch((error) => post({ type: 'log', level: 'warning', text: `closing the subscription: ${errorText(error)}` }));
      await bounded(client.close(), 5_000).catch((error) => post({ type: 'log', level: 'warning', text: `closing the consumer: ${errorText(error)}` }));
      post({ type: 'closed' });
    })();
  });
  post({ type: 'ready' });
}

if (parentPort && (workerData as { mdcEventHubReceiver?: ReceiverInit } | undefined)?.mdcEventHubReceiver) {
  const port = parentPort;
  run((workerData as { mdcEventHubReceiver: ReceiverInit }).mdcEventHubReceiver, port).catch((error) =>
    port.postMessage({ type: 'failed', text: errorText(error) } satisfies ReceiverMessage),
  );
}
