import {
  EventHubConsumerClient,
  earliestEventPosition,
  latestEventPosition,
  type EventPosition,
  type PartitionContext,
  type ReceivedEventData,
  type Subscription,
} from '@azure/event-hubs';
import { BlobCheckpointStore } from '@azure/eventhubs-checkpointstore-blob';
import type { EventHubFunctionOptions, FunctionTrigger, TriggerMetadata } from '@azure/functions';
import { createBlobServiceClient, credentialFor } from '../../shared/clients';
import { connectionNames, readEventHubsConnection, readStorageConnection } from '../../shared/settings';
import { resolveAppSettings } from './app-settings';
import { errorText, invocationContext } from './context';
import type { EventHubsHostOptions } from './host-json';
import type { HostLog } from './log';
import { mayRetry, pause, retryDelayMs } from './retry';

/** The container the Functions host keeps Event Hubs checkpoints and partition ownership in. */
export const checkpointContainer = 'azure-webjobs-eventhub';

export interface EventHubTriggerOptions {
  name: string;
  options: EventHubFunctionOptions;
  hostOptions: EventHubsHostOptions;
  log: HostLog;
  env?: Record<string, string | undefined>;
  /**
   * How fast a restarted host takes over partitions that a killed one still owned. The Functions host
   * uses tens of seconds; a single local host can be quicker.
   */
  ownershipExpiryMs?: number;
  /** How long `close()` waits for running invocations before it lets go. */
  shutdownGraceMs?: number;
}

export interface EventHubTrigger {
  readonly eventHubName: string;
  readonly consumerGroup: string;
  /** Runs the function once on these bodies, as `POST /admin/functions/{name}` does. */
  invoke(bodies: unknown[]): Promise<void>;
  close(): Promise<void>;
}

interface Target {
  fullyQualifiedNamespace: string;
  eventHubName: string;
  consumerGroup: string;
  partitionId: string;
}

/**
 * The `triggerMetadata` the Functions host gives a `cardinality: 'many'` invocation (keys camel-cased by the library).
 * Each array is built when first read, then kept: a function usually reads one or two of them, and building
 * all six for every event of every batch cost the local host more than the function's own work per event.
 */
export function batchMetadata(events: ReceivedEventData[], target: Target): TriggerMetadata {
  return lazyEntries(
    {
      sequenceNumberArray: () => events.map((e) => e.sequenceNumber),
      offsetArray: () => events.map((e) => e.offset),
      enqueuedTimeUtcArray: () => events.map((e) => e.enqueuedTimeUtc.toISOString()),
      partitionKeyArray: () => events.map((e) => e.partitionKey ?? null),
      propertiesArray: () => events.map((e) => e.properties ?? {}),
      systemPropertiesArray: () => events.map(systemProperties),
    },
    { partitionContext: { ...target } },
  );
}

/** An object whose `lazy` entries are computed on first read (or replaced on write) and look like plain data. */
function lazyEntries(lazy: Record<string, () => unknown>, plain: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  const settle = (key: string, value: unknown) =>
    Object.defineProperty(result, key, { value, enumerable: true, writable: true, configurable: true });
  for (const [key, compute] of Object.entries(lazy)) {
    Object.defineProperty(result, key, {
      enumerable: true,
      configurable: true,
      get: () => {
        const value = compute();
        settle(key, value);
        return value;
      },
      set: (value: unknown) => settle(key, value),
    });
  }
  return Object.assign(result, plain);
}

/** The metadata of a `cardinality: 'one'` invocation. */
export function eventMetadata(event: ReceivedEventData, target: Target): TriggerMetadata {
  return {
    sequenceNumber: event.sequenceNumber,
    offset: event.offset,
    enqueuedTimeUtc: event.enqueuedTimeUtc.toISOString(),
    partitionKey: event.partitionKey ?? null,
    properties: event.properties ?? {},
    systemProperties: systemProperties(event),
    partitionContext: { ...target },
  };
}

function systemProperties(event: ReceivedEventData): Record<string, unknown> {
  return {
    ...(event.systemProperties ?? {}),
    'x-opt-sequence-number': event.sequenceNumber,
    'x-opt-offset': event.offset,
    'x-opt-enqueued-time': event.enqueuedTimeUtc.toISOString(),
    'x-opt-partition-key': event.partitionKey ?? null,
    sequenceNumber: event.sequenceNumber,
    offset: event.offset,
    enqueuedTimeUtc: event.enqueuedTimeUtc.toISOString(),
    partitionKey: event.partitionKey ?? null,
  };
}

function startPosition(options: EventHubsHostOptions): EventPosition {
  const initial = options.initialOffset;
  if (initial.type === 'fromEnd') return latestEventPosition;
  if (initial.type === 'fromEnqueuedTime') return { enqueuedOn: initial.enqueuedTimeUtc };
  return earliestEventPosition;
}

/**
 * Drives one Event Hubs-triggered function as the Functions host does: a consumer with a blob checkpoint
 * store on AzureWebJobsStorage, host.json's batch settings, the checkpoint written only once an invocation
 * has completed. Without a retry policy a failed invocation is checkpointed too (the host's documented
 * behaviour); with one, the same batch is retried and its checkpoint waits for success or the last retry.
 */
export async function startEventHubTrigger(init: EventHubTriggerOptions): Promise<EventHubTrigger> {
  const { name, options, hostOptions, log } = init;
  const env = init.env ?? process.env;
  const source = `Functions.${name}`;
  const eventHubName = resolveAppSettings(options.eventHubName, env);
  const consumerGroup = resolveAppSettings(options.consumerGroup ?? '$Default', env);
  const connection = readEventHubsConnection(env, options.connection);
  const storage = createBlobServiceClient(readStorageConnection(env, connectionNames.hostStorage));
  const container = storage.getContainerClient(checkpointContainer);
  await container.createIfNotExists();
  const checkpointStore = new BlobCheckpointStore(container);
  const ownershipExpiryMs = init.ownershipExpiryMs ?? 6_000;
  const clientOptions = {
    loadBalancingOptions: {
      strategy: 'greedy' as const,
      updateIntervalInMs: Math.max(250, Math.floor(ownershipExpiryMs / 6)),
      partitionOwnershipExpirationIntervalInMs: ownershipExpiryMs,
    },
  };
  const client =
    connection.kind === 'connectionString'
      ? new EventHubConsumerClient(consumerGroup, connection.connectionString, eventHubName, checkpointStore, clientOptions)
      : new EventHubConsumerClient(
          consumerGroup,
          connection.fullyQualifiedNamespace,
          eventHubName,
          credentialFor(connection),
          checkpointStore,
          clientOptions,
        );
  const trigger: FunctionTrigger = {
    type: 'eventHubTrigger',
    name: 'messages',
    connection: options.connection,
    eventHubName: options.eventHubName,
    cardinality: options.cardinality ?? 'one',
    consumerGroup: options.consumerGroup ?? '$Default',
  };
  const stopping = new AbortController();
  const running = new Set<Promise<void>>();
  const batchesSinceCheckpoint = new Map<string, number>();

  /** One invocation with its retries; false when the host stopped before it succeeded or gave up. */
  const invokeWithRetries = async (body: unknown, metadata: TriggerMetadata): Promise<boolean> => {
    for (let retryCount = 0; ; retryCount++) {
      const context = invocationContext({
        functionName: name,
        trigger,
        log,
        triggerMetadata: metadata,
        ...(options.retry ? { retryContext: { retryCount, maxRetryCount: options.retry.maxRetryCount } } : {}),
      });
      try {
        await options.handler(body, context);
        return true;
      } catch (error) {
        log('error', source, `Executed (Failed, Id=${context.invocationId}, retry ${retryCount}):`, errorText(error));
        if (!mayRetry(options.retry, retryCount)) return true;
        if (!(await pause(retryDelayMs(options.retry!, retryCount + 1), stopping.signal))) return false;
      }
    }
  };

  const processBatch = async (events: ReceivedEventData[], partition: PartitionContext): Promise<void> => {
    const target: Target = {
      fullyQualifiedNamespace: partition.fullyQualifiedNamespace,
      eventHubName: partition.eventHubName,
      consumerGroup: partition.consumerGroup,
      partitionId: partition.partitionId,
    };
    if (trigger.cardinality === 'many') {
      if (!(await invokeWithRetries(events.map((e) => e.body), batchMetadata(events, target)))) return;
    } else {
      for (const event of events) {
        if (!(await invokeWithRetries(event.body, eventMetadata(event, target)))) return;
      }
    }
    const count = (batchesSinceCheckpoint.get(partition.partitionId) ?? 0) + 1;
    if (count < hostOptions.batchCheckpointFrequency) {
      batchesSinceCheckpoint.set(partition.partitionId, count);
      return;
    }
    batchesSinceCheckpoint.set(partition.partitionId, 0);
    try {
      await partition.updateCheckpoint(events[events.length - 1]!);
    } catch (error) {
      // The next batch checkpoints past this one; until then a restart replays it (at least once).
      log('warning', source, `could not checkpoint partition ${partition.partitionId}:`, errorText(error));
    }
  };

  const subscription: Subscription = client.subscribe(
    {
      processEvents: async (events, partition) => {
        if (events.length === 0 || stopping.signal.aborted) return;
        const run = processBatch(events, partition);
        running.add(run);
        try {
          await run;
        } finally {
          running.delete(run);
        }
      },
      processError: async (error, partition) => {
        if (stopping.signal.aborted) return;
        log('warning', source, `Event Hubs (partition ${partition.partitionId || '-'}):`, errorText(error));
      },
    },
    {
      maxBatchSize: hostOptions.maxEventBatchSize,
      maxWaitTimeInSeconds: hostOptions.maxWaitTimeInSeconds,
      prefetchCount: hostOptions.prefetchCount,
      startPosition: startPosition(hostOptions),
    },
  );

  return {
    eventHubName,
    consumerGroup,
    async invoke(bodies) {
      const target: Target = { fullyQualifiedNamespace: '', eventHubName, consumerGroup, partitionId: '' };
      const context = invocationContext({ functionName: name, trigger, log, triggerMetadata: { partitionContext: target } });
      await options.handler(trigger.cardinality === 'many' ? bodies : bodies[0], context);
    },
    async close() {
      stopping.abort();
      const grace = new Promise<void>((resolve) => setTimeout(resolve, init.shutdownGraceMs ?? 30_000).unref());
      await Promise.race([Promise.allSettled([...running]), grace]);
      // With Event Hubs unreachable the SDK's close can wait on reconnects for minutes; a stopping host lets go.
      await bounded(subscription.close(), 5_000).catch((error) => log('warning', source, 'closing the subscription:', errorText(error)));
      await bounded(client.close(), 5_000).catch((error) => log('warning', source, 'closing the consumer:', errorText(error)));
    },
  };
}

function bounded(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up after ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
