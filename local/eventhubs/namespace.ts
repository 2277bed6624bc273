import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { type HubDefinition } from './config';
import { errors } from './errors';
import { PartitionLog } from './partition-log';
import { stampEvent, type PublishedEvents } from './codec';

export interface Hub {
  readonly name: string;
  readonly partitionIds: readonly string[];
  readonly createdAt: Date;
  readonly consumerGroups: ReadonlySet<string>;
  readonly partitions: ReadonlyMap<string, PartitionLog>;
}

/**
 * The hubs and their partition logs on disk. Knows nothing of AMQP links: it routes published events to a
 * partition and appends them.
 */
export class Namespace {
  private readonly hubs = new Map<string, Hub & { nextPartition: number }>();

  constructor(readonly endpoint: string, dataDir: string, definitions: Map<string, HubDefinition>) {
    for (const [key, definition] of definitions) {
      const folder = path.join(dataDir, encodeURIComponent(definition.name));
      mkdirSync(folder, { recursive: true });
      const partitions = new Map<string, PartitionLog>();
      for (const id of definition.partitionIds) partitions.set(id, new PartitionLog(path.join(folder, `partition-${id}.log`)));
      this.hubs.set(key, {
        name: definition.name,
        partitionIds: definition.partitionIds,
        consumerGroups: definition.consumerGroups,
        createdAt: createdAt(folder),
        partitions,
        nextPartition: 0,
      });
    }
  }

  hub(name: string): Hub {
    const hub = this.hubs.get(name.toLowerCase());
    if (!hub) throw errors.hubNotFound(this.endpoint, name);
    return hub;
  }

  partition(hubName: string, partitionId: string): PartitionLog {
    const hub = this.hub(hubName);
    const log = hub.partitions.get(partitionId);
    if (!log) throw errors.partitionOutOfRange(partitionId, hub.partitionIds);
    return log;
  }

  consumerGroup(hubName: string, group: string): Hub {
    const hub = this.hub(hubName);
    if (!hub.consumerGroups.has(group.toLowerCase())) throw errors.consumerGroupNotFound(this.endpoint, hub.name, group);
    return hub;
  }

  /** Appends a publish to its partition: the one named, the key's, or the next in turn. */
  publish(hubName: string, partitionId: string | undefined, published: PublishedEvents): { partitionId: string } {
    const hub = this.hubs.get(hubName.toLowerCase());
    if (!hub) throw errors.hubNotFound(this.endpoint, hubName);
    let id = partitionId;
    if (id === undefined) {
      id =
        published.partitionKey !== undefined
          ? hub.partitionIds[partitionIndexOf(published.partitionKey, hub.partitionIds.length)]
          : hub.partitionIds[hub.nextPartition++ % hub.partitionIds.length];
    }
    const log = this.partition(hub.name, id);
    log.append(published.events.map((event) => (meta) => stampEvent(event, meta, published.partitionKey)));
    return { partitionId: id };
  }

  close(): void {
    for (const hub of this.hubs.values()) for (const log of hub.partitions.values()) log.close();
  }
}

/** FNV-1a over the key's UTF-8 bytes: stable across runs and machines, so one key always lands on one partition. */
export function partitionIndexOf(partitionKey: string, partitionCount: number): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(partitionKey, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % partitionCount;
}

function createdAt(folder: string): Date {
  const file = path.join(folder, 'hub.json');
  if (existsSync(file)) {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { createdAt?: string };
    if (saved.createdAt) return new Date(saved.createdAt);
  }
  const now = new Date();
  writeFileSync(file, JSON.stringify({ createdAt: now.toISOString() }));
  return now;
}
