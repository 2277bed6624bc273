import type { BlobServiceClient } from '@azure/storage-blob';
import { clock as processClock, type Clock } from '../clock';
import type { HubEvent } from '../hub-event';
import { buildDeadLetterLine, deadLetterFolder, type DeadLetter } from './dead-letter';
import { decodeHubEvent } from './decode';
import { buildLine, planLines } from './line';
import { maxInlineDataBytes, resolveStaged, stagedSize } from './payloads';
import { rolledFolderPath } from './rolled-path';
import type { RolledFiles, RolledWriter } from './rolled-writer';

/** One message as the Event Hubs trigger delivered it. */
export interface TriggeredEvent {
  partitionId: string;
  sequenceNumber: number;
  enqueuedTime?: Date | string;
  body: unknown;
}

export interface AppendOptions {
  service: BlobServiceClient;
  writer: RolledWriter;
  /** The collector's own container: staged payloads are read from it, dead letters written to it. */
  systemContainer: string;
  /** Dates dead letters that carry no enqueued time. */
  clock?: Clock;
  /** Rolled files written at the same time. Default 4. */
  concurrency?: number;
  maxInlineBytes?: number;
  signal?: AbortSignal;
}

export interface AppendSummary {
  received: number;
  /** Events whose lines were written by this call. */
  written: number;
  /** Events already written by an earlier delivery of the same batch. */
  skipped: number;
  deadLettered: number;
  lines: number;
  /** Commits that lost a race with another writer and were redone. */
  conflicts: number;
  /** The rolled files this call wrote to. */
  files: string[];
}

const runChars = 256 * 1024;

interface Accepted {
  sequenceNumber: number;
  event: HubEvent;
  /** The inline data's JSON text as it arrived, when decoding could cut it out (see decode.ts). */
  dataJson?: string;
  /** Size of the staged payload blob. */
  stagedBytes?: number;
}

async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(lanes);
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

/**
 * Appends one batch of hub events to their rolled files, exactly once (SPEC §5, §6). Each file is written
 * once per batch; messages that can never be written are dead-lettered. It throws only on what a retry can
 * fix (storage faults): the caller must then not checkpoint, and a replay of the batch is safe.
 */
export async function appendEvents(events: readonly TriggeredEvent[], options: AppendOptions): Promise<AppendSummary> {
  const { service, writer, systemContainer, signal } = options;
  const maxInline = options.maxInlineBytes ?? maxInlineDataBytes;
  const concurrency = options.concurrency ?? 4;
  const now = (options.clock ?? processClock()).now();

  const accepted: (Accepted & { partitionId: string })[] = [];
  const letters: DeadLetter[] = [];
  for (const message of events) {
    const decoded = decodeHubEvent(message.body);
    if (decoded.ok) {
      const item: Accepted & { partitionId: string } = { partitionId: message.partitionId, sequenceNumber: message.sequenceNumber, event: decoded.event };
      if (decoded.dataJson !== undefined) item.dataJson = decoded.dataJson;
      accepted.push(item);
    }
    else letters.push({ ...message, reason: decoded.reason });
  }

  // A staged payload that is gone can never be written: find out before writing anything, so that its
  // dead letter and the data lines stay in sequence order.
  const writable: typeof accepted = [];
  await eachLimited(accepted, concurrency, async (item) => {
    if (item.event.payload.kind !== 'staged') return;
    const size = await stagedSize(service, systemContainer, item.event.payload, signal);
    if (size === undefined) {
      const original = events.find((m) => m.partitionId === item.partitionId && m.sequenceNumber === item.sequenceNumber)!;
      letters.push({ ...original, reason: `staged payload ${systemContainer}/${item.event.payload.blob} does not exist` });
    } else {
      item.stagedBytes = size;
    }
  });
  for (const item of accepted) if (item.event.payload.kind !== 'staged' || item.stagedBytes !== undefined) writable.push(item);
  letters.sort((a, b) => a.sequenceNumber - b.sequenceNumber);

  const summary: AppendSummary = { received: events.length, written: 0, skipped: 0, deadLettered: 0, lines: 0, conflicts: 0, files: [] };

  const letterGroups = groupBy(letters, (l) => `${l.partitionId}\n${deadLetterFolder(l.enqueuedTime ?? now)}`);
  await eachLimited([...letterGroups.values()], concurrency, async (group) => {
    const first = group[0]!;
    const files: RolledFiles = { container: systemContainer, folder: deadLetterFolder(first.enqueuedTime ?? now), instanceId: first.partitionId };
    const outcome = await writer.write(
      files,
      first.partitionId,
      group,
      async function* (pending) {
        for (const letter of pending) yield buildDeadLetterLine(letter);
      },
      signal,
    );
    summary.deadLettered += outcome.written;
  });

  // Many events of a batch share a second: work each folder out once.
  const folders = new Map<string, string>();
  const folderOf = (event: HubEvent) => {
    const key = `${event.target.path}\n${event.target.rollingRate}\n${event.time}`;
    let folder = folders.get(key);
    if (folder === undefined) folders.set(key, (folder = rolledFolderPath(event.target, event.time)));
    return folder;
  };
  const fileGroups = groupBy(writable, (a) => `${a.partitionId}\n${a.event.target.container}\n${folderOf(a.event)}`);
  await eachLimited([...fileGroups.values()], concurrency, async (group) => {
    const first = group[0]!;
    const container = service.getContainerClient(first.event.target.container);
    const folder = folderOf(first.event);
    const files: RolledFiles = { container: first.event.target.container, folder, instanceId: first.partitionId };
    let lines = 0;
    const outcome = await writer.write(
      files,
      first.partitionId,
      group,
      async function* (pending) {
        lines = 0;
        // Inline lines are handed on in runs rather than one by one: one await per line costs more than the line.
        let run = '';
        for (const line of planLines(pending, maxInline)) {
          const head = line.members[0]!;
          lines += 1;
          if (line.json !== undefined) {
            run += buildLine(head.event, { kind: 'data', json: line.json });
            if (run.length >= runChars) {
              yield run;
              run = '';
            }
            continue;
          }
          const data = await resolveStaged(head.event, head.event.payload as Extract<HubEvent['payload'], { kind: 'staged' }>, head.stagedBytes!, {
                  service,
                  systemContainer,
                  container,
                  folder,
                  maxInlineBytes: maxInline,
                  ...(signal ? { signal } : {}),
                });
          run += buildLine(head.event, data);
        }
        if (run !== '') yield run;
      },
      signal,
    );
    summary.written += outcome.written;
    summary.skipped += outcome.skipped;
    summary.conflicts += outcome.conflicts;
    if (outcome.url) {
      summary.lines += lines;
      summary.files.push(outcome.url);
    }
  });
  return summary;
}
