import type { Worker } from 'node:worker_threads';
import { earliestEventPosition, latestEventPosition, type EventPosition, type ReceivedEventData } from '@azure/event-hubs';
import type { EventHubFunctionOptions, FunctionTrigger, TriggerMetadata } from '@azure/functions';
import { connectionNames, readEventHubsConnection, readStorageConnection } from '../../shared/settings';
import { startWorkerFile } from '../../shared/worker-file';
import { resolveAppSettings } from './app-settings';
import { errorText, invocationContext } from './context';
import type { EventHubsHostOptions } from './host-json';
import type { HostLog } from './log';
import type { HostMessage, ReceiverInit, ReceiverMessage } from './event-hub-receiver';
import { bounded, mayRetry, pause, retryDelayMs } from './retry';

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
 * The consumer runs on a worker thread (event-hub-receiver.ts) and the function on this one, so receiving
 * the next events overlaps the function's work, as with the Functions host's own receiving process.
 */
export async function startEventHubTrigger(init: EventHubTriggerOptions): Promise<EventHubTrigger> {
  const { name, options, hostOptions, log } = init;
  const env = init.env ?? process.env;
  const source = `Functions.${name}`;
  const eventHubName = resolveAppSettings(options.eventHubName, env);
  const consumerGroup = resolveAppSettings(options.consumerGroup ?? '$Default', env);
  // `dataType: 'binary'` (a binding property app.eventHub passes on to the host) asks for each body as its
  // bytes (the Node worker's collectionBytes): the SDK is told not to parse, and the function gets the Buffers.
  // Otherwise bodies come as the worker hands them, JSON parsed.
  const binary = (options as { dataType?: unknown }).dataType === 'binary';
  const trigger: FunctionTrigger = {
    type: 'eventHubTrigger',
    name: 'messages',
    connection: options.connection,
    eventHubName: options.eventHubName,
    cardinality: options.cardinality ?? 'one',
    consumerGroup: options.consumerGroup ?? '$Default',
    ...(binary ? { dataType: 'binary' } : {}),
  };
  const stopping = new AbortController();
  const running = new Set<Promise<void>>();
  const batchesSinceCheckpoint = new Map<string, number>();
  /** Per partition: the batch running or last queued, which the next one waits for. */
  const partitions = new Map<string, Promise<void>>();

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

  /** Runs the function on one batch; true when the batch is to be checkpointed. */
  const processBatch = async (events: ReceivedEventData[], bodies: unknown[], target: Target): Promise<boolean> => {
    if (trigger.cardinality === 'many') {
      if (!(await invokeWithRetries(bodies, batchMetadata(events, target)))) return false;
    } else {
      for (const [i, event] of events.entries()) {
        if (!(await invokeWithRetries(bodies[i], eventMetadata(event, target)))) return false;
      }
    }
    const count = (batchesSinceCheckpoint.get(target.partitionId) ?? 0) + 1;
    if (count < hostOptions.batchCheckpointFrequency) {
      batchesSinceCheckpoint.set(target.partitionId, count);
      return false;
    }
    batchesSinceCheckpoint.set(target.partitionId, 0);
    return true;
  };

  const receiverInit: ReceiverInit = {
    consumerGroup,
    eventHubName,
    connection: readEventHubsConnection(env, options.connection),
    storage: readStorageConnection(env, connectionNames.hostStorage),
    checkpointContainer,
    ownershipExpiryMs: init.ownershipExpiryMs ?? 6_000,
    maxBatchSize: hostOptions.maxEventBatchSize,
    maxWaitTimeInSeconds: hostOptions.maxWaitTimeInSeconds,
    prefetchCount: hostOptions.prefetchCount,
    startPosition: startPosition(hostOptions),
    binary,
  };
  const receiver = startReceiverWorker(receiverInit);
  let closed: (() => void) | undefined;
  const workerClosed = new Promise<void>((resolve) => (closed = resolve));
  let ready: { resolve: () => void; reject: (error: Error) => void } | undefined;
  const started = new Promise<void>((resolve, reject) => (ready = { resolve, reject }));
  receiver.on('message', (message: ReceiverMessage) => {
    switch (message.type) {
      case 'ready':
        ready?.resolve();
        return;
      case 'failed':
        ready?.reject(new Error(message.text));
        log('error', source, 'the Event Hubs receiver failed:', message.text);
        return;
      case 'log':
        if (!stopping.signal.aborted) log(message.level, source, message.text);
        return;
      case 'closed':
        closed?.();
        return;
      case 'batch': {
        const answer = (checkpoint: boolean) => receiver.postMessage({ type: 'done', id: message.id, checkpoint } satisfies HostMessage);
        if (stopping.signal.aborted) return answer(false);
        const events = message.events as unknown as ReceivedEventData[];
        let bodies: unknown[];
        if (message.bytes) {
          const all = Buffer.from(message.bytes);
          let from = 0;
          bodies = Array.from(message.ends!, (end) => all.subarray(from, (from = end)));
        } else {
          bodies = message.events.map((e) => e.body);
        }
        // A partition's batches run one at a time, in order: the receiver may hand over the next one early.
        const partitionId = message.target.partitionId;
        const run = (partitions.get(partitionId) ?? Promise.resolve())
          .then(() => (stopping.signal.aborted ? false : processBatch(events, bodies, message.target)))
          .then(answer, (error: unknown) => {
            log('error', source, 'processing a batch:', errorText(error));
            answer(false);
          });
        partitions.set(partitionId, run);
        running.add(run);
        void run.finally(() => {
          running.delete(run);
          if (partitions.get(partitionId) === run) partitions.delete(partitionId);
        });
        return;
      }
    }
  });
  receiver.on('error', (error) => {
    ready?.reject(error);
    closed?.();
    log('error', source, 'the Event Hubs receiver thread failed:', errorText(error));
  });
  receiver.on('exit', (code) => {
    if (!stopping.signal.aborted) log('error', source, `the Event Hubs receiver thread exited (${code}): no more events until the host restarts`);
    closed?.();
  });
  await started.catch(async (error: unknown) => {
    stopping.abort();
    await receiver.terminate();
    throw error;
  });

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
      receiver.postMessage({ type: 'close' } satisfies HostMessage);
      await bounded(workerClosed, 12_000).catch((error) => log('warning', source, 'closing the receiver:', errorText(error)));
      await receiver.terminate();
    },
  };
}

/** The receiver worker (event-hub-receiver.ts). */
function startReceiverWorker(init: ReceiverInit): Worker {
  return startWorkerFile(__filename, 'event-hub-receiver', { workerData: { mdcEventHubReceiver: init } });
}
