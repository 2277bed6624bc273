import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventHubConsumerClient, EventHubProducerClient, earliestEventPosition, type ReceivedEventData } from '@azure/event-hubs';
import { BlobCheckpointStore } from '@azure/eventhubs-checkpointstore-blob';
import { ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type Azurite } from '../local/azurite';
import { startEventHubsEmulator, type EventHubsEmulator } from '../local/eventhubs';
import { freePort } from '../local/ports';

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

type Watched = { events: ReceivedEventData[]; errors: Array<Error & { code?: string }>; close(): Promise<void> };

function watch(client: EventHubConsumerClient, checkpoint = false): Watched {
  const events: ReceivedEventData[] = [];
  const errors: Array<Error & { code?: string }> = [];
  const subscription = client.subscribe(
    {
      processEvents: async (batch, context) => {
        events.push(...batch);
        if (checkpoint && batch.length) await context.updateCheckpoint(batch[batch.length - 1]);
      },
      processError: async (error) => {
        errors.push(error);
      },
    },
    { startPosition: earliestEventPosition, maxWaitTimeInSeconds: 1, maxBatchSize: 50 },
  );
  return { events, errors, close: () => subscription.close() };
}

describe('Event Hubs emulator durability', () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mdc-eh-restart-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('keeps the events across a restart on the same data folder and port, and delivers each once', async () => {
    const hubs = [{ name: 'durable', partitionCount: 2 }];
    const port = await freePort();
    let emulator: EventHubsEmulator = await startEventHubsEmulator({ port, dataDir, hubs });
    let producer = new EventHubProducerClient(emulator.connectionString(), 'durable');
    for (let i = 0; i < 20; i += 4) await producer.sendBatch([i, i + 1, i + 2, i + 3].map((n) => ({ body: n })));
    await producer.close();
    await emulator.close();
    // A crash mid-write leaves a torn record at the end of a file; the restart must cut it off, not serve it.
    appendFileSync(path.join(dataDir, 'durable', 'partition-0.log'), Buffer.from([0, 0, 1, 0, 1, 2, 3]));

    emulator = await startEventHubsEmulator({ port, dataDir, hubs });
    try {
      producer = new EventHubProducerClient(emulator.connectionString(), 'durable');
      const sizes = await Promise.all(['0', '1'].map(async (id) => (await producer.getPartitionProperties(id)).lastEnqueuedSequenceNumber + 1));
      expect(sizes[0] + sizes[1]).toBe(20);

      const consumer = new EventHubConsumerClient('$Default', emulator.connectionString(), 'durable');
      const watched = watch(consumer);
      await until(() => watched.events.length >= 20, 'the events sent before the restart');
      // A marker per partition, sent after the restart, arrives after anything the log still holds.
      await producer.sendBatch([{ body: 'marker' }], { partitionId: '0' });
      await producer.sendBatch([{ body: 'marker' }], { partitionId: '1' });
      await until(() => watched.events.filter((e) => e.body === 'marker').length === 2, 'the markers');
      await watched.close();
      await consumer.close();
      await producer.close();

      const bodies = watched.events.filter((e) => e.body !== 'marker').map((e) => e.body as number);
      expect(bodies.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(watched.errors).toEqual([]);
      const markers = watched.events.filter((e) => e.body === 'marker');
      expect(markers.map((e) => e.sequenceNumber).sort()).toEqual([...sizes].sort());
    } finally {
      await emulator.close();
    }
  });
});

describe('Event Hubs emulator with BlobCheckpointStore on Azurite', () => {
  let azurite: Azurite;
  let emulator: EventHubsEmulator;
  let container: ContainerClient;
  const clients: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    [azurite, emulator] = await Promise.all([
      startAzurite(),
      startEventHubsEmulator({ port: 0, hubs: [{ name: 'checked', partitionCount: 2 }, { name: 'contested', partitionCount: 1 }] }),
    ]);
    container = new ContainerClient(azurite.connectionString, 'checkpoints');
    await container.create();
  });

  afterAll(async () => {
    for (const client of clients.reverse()) await client.close().catch(() => undefined);
    await emulator?.close();
    await azurite?.stop();
  });

  /** The load balancer runs every `updateIntervalInMs`; a short interval keeps the suite fast. */
  function consumer(hub: string, identifier?: string, updateIntervalInMs = 250, partitionOwnershipExpirationIntervalInMs = 60_000): EventHubConsumerClient {
    const client = new EventHubConsumerClient('$Default', emulator.connectionString(), hub, new BlobCheckpointStore(container), {
      identifier,
      loadBalancingOptions: { strategy: 'greedy', updateIntervalInMs, partitionOwnershipExpirationIntervalInMs },
    });
    clients.push(client);
    return client;
  }

  it('resumes after the checkpoint: a new consumer gets only what came after', async () => {
    const producer = new EventHubProducerClient(emulator.connectionString(), 'checked');
    clients.push(producer);
    for (let i = 0; i < 10; i++) await producer.sendBatch([{ body: i }]);

    const store = new BlobCheckpointStore(container);
    const first = watch(consumer('checked'), true);
    await until(() => first.events.length >= 10, 'the first consumer to read everything');
    await until(async () => {
      const checkpoints = await store.listCheckpoints(emulator.host, 'checked', '$Default');
      const total = checkpoints.reduce((sum, c) => sum + c.sequenceNumber + 1, 0);
      return checkpoints.length === 2 && total === 10;
    }, 'checkpoints at the last events');
    await first.close();

    for (let i = 10; i < 16; i++) await producer.sendBatch([{ body: i }]);
    const second = watch(consumer('checked'), true);
    await until(() => second.events.length >= 6, 'the second consumer to read the new events');
    await second.close();
    // Per partition, anything before the checkpoint would have arrived ahead of the new events.
    expect(second.events.map((e) => e.body as number).sort((a, b) => a - b)).toEqual([10, 11, 12, 13, 14, 15]);
    expect(first.errors).toEqual([]);
    expect(second.errors).toEqual([]);
  });

  it('disconnects the old reader with amqp:link:stolen when another consumer claims its partition', async () => {
    const producer = new EventHubProducerClient(emulator.connectionString(), 'contested');
    clients.push(producer);
    await producer.sendBatch([{ body: 'x' }]);

    const store = new BlobCheckpointStore(container);
    // consumer-a checks the store rarely, so it learns of the loss from its link, not from the store.
    const old = watch(consumer('contested', 'consumer-a', 60_000));
    await until(() => old.events.length === 1, 'the first consumer to read');
    const [owned] = await store.listOwnership(emulator.host, 'contested', '$Default');
    expect(owned.ownerId).toBe('consumer-a');

    // consumer-b deems an ownership older than a second expired, so it claims the partition and opens its own link.
    const newer = watch(consumer('contested', 'consumer-b', 250, 1000));
    await until(() => old.errors.length > 0, 'the first consumer to lose its link');
    expect(old.errors[0].code).toBe('ReceiverDisconnectedError');
    await until(() => newer.events.length === 1, 'the new owner to read');
    await Promise.all([old.close(), newer.close()]);
  });
});
