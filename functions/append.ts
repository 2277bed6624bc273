import { app, type EventHubFunctionOptions, type InvocationContext } from '@azure/functions';
import { appendEvents, type TriggeredEvent } from '../shared/append/append-events';
import { RolledWriter, type CommitInfo } from '../shared/append/rolled-writer';
import { dataBlobService } from '../shared/clients';
import { getSettings } from '../shared/settings';

/**
 * `append`: Event Hubs batches → rolled JSONL files, exactly once (SPEC §5, §6).
 *
 * The Event Hubs trigger checkpoints when the function completes, even when it throws, unless a retry policy
 * runs it again. So a storage fault throws, and the endless exponential retry below replays the batch until
 * it is written: the checkpoint never moves past an unwritten event, and the replay writes nothing twice.
 * Messages that can never be written are dead-lettered by the core instead of thrown.
 */

/**
 * Test-only fault point: with MDC_FAULT_AFTER_WRITE=exit the process kills itself right after its first
 * blob commit, before the handler returns, i.e. between the write and the checkpoint.
 */
function faultPoint(): ((commit: CommitInfo) => void) | undefined {
  if (process.env.MDC_FAULT_AFTER_WRITE !== 'exit') return undefined;
  return () => {
    process.kill(process.pid, 'SIGKILL');
  };
}

let writer: RolledWriter | undefined;
function processWriter(): RolledWriter {
  const afterCommit = faultPoint();
  writer ??= new RolledWriter(dataBlobService(getSettings()), afterCommit ? { afterCommit } : {});
  return writer;
}

function metadataArray(context: InvocationContext, name: string): unknown[] | undefined {
  const value = context.triggerMetadata?.[name];
  return Array.isArray(value) ? value : undefined;
}

export class TriggerMetadataError extends Error {
  readonly code = 'MissingTriggerMetadata';
  constructor(message: string) {
    super(message);
    this.name = 'TriggerMetadataError';
  }
}

/** The batch with what exactly-once needs from the trigger: partition and sequence number of each message. */
export function triggeredEvents(messages: unknown, context: InvocationContext): TriggeredEvent[] {
  const bodies = Array.isArray(messages) ? messages : [messages];
  const partitionContext = context.triggerMetadata?.partitionContext as { partitionId?: unknown } | undefined;
  const partitionId = partitionContext?.partitionId;
  if (typeof partitionId !== 'string' && typeof partitionId !== 'number') {
    throw new TriggerMetadataError('triggerMetadata.partitionContext.partitionId is missing');
  }
  const sequenceNumbers = metadataArray(context, 'sequenceNumberArray');
  const enqueuedTimes = metadataArray(context, 'enqueuedTimeUtcArray');
  return bodies.map((body, i) => {
    const sequenceNumber = Number(sequenceNumbers?.[i]);
    if (!Number.isSafeInteger(sequenceNumber) || sequenceNumber < 0) {
      throw new TriggerMetadataError(`triggerMetadata.sequenceNumberArray[${i}] is missing or not a sequence number`);
    }
    const enqueuedTime = enqueuedTimes?.[i];
    return {
      partitionId: String(partitionId),
      sequenceNumber,
      ...(typeof enqueuedTime === 'string' || enqueuedTime instanceof Date ? { enqueuedTime } : {}),
      body,
    };
  });
}

export async function append(messages: unknown, context: InvocationContext): Promise<void> {
  const settings = getSettings();
  const events = triggeredEvents(messages, context);
  const summary = await appendEvents(events, {
    service: dataBlobService(settings),
    writer: processWriter(),
    systemContainer: settings.systemContainer,
  });
  const { files, ...counts } = summary;
  context.log(`append: ${JSON.stringify(counts)} into ${files.length} file(s)`);
  if (summary.deadLettered > 0) context.warn(`append: ${summary.deadLettered} message(s) dead-lettered in ${settings.systemContainer}/deadletter/`);
}

/**
 * `dataType: 'binary'` asks the host for each body's bytes rather than parsed JSON: append parses and validates
 * them itself (it must anyway), and can then keep the inline data's text as it came instead of serializing it
 * again. The handler accepts parsed bodies and text just as well, whatever a host hands over.
 */
export const appendOptions: EventHubFunctionOptions & { dataType: 'binary' } = {
  connection: 'MDC_EVENTHUB',
  dataType: 'binary',
  eventHubName: '%MDC_EVENTHUB_NAME%',
  consumerGroup: '%MDC_EVENTHUB_CONSUMER_GROUP%',
  cardinality: 'many',
  retry: {
    strategy: 'exponentialBackoff',
    maxRetryCount: -1,
    minimumInterval: { seconds: 1 },
    maximumInterval: { seconds: 30 },
  },
  handler: append,
};

app.eventHub('append', appendOptions);
