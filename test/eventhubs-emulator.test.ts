import { EventHubConsumerClient, EventHubProducerClient, earliestEventPosition, type ReceivedEventData } from '@azure/event-hubs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEventHubsEmulator, type EventHubsEmulator } from '../local/eventhubs';

const hub = 'mdc-events';
let emulator: EventHubsEmulator;
let producer: EventHubProducerClient;
const consumers: EventHubConsumerClient[] = [];

function consumer(group = '$Default', hubName = hub): EventHubConsumerClient {
  const client = new EventHubConsumerClient(group, emulator.connectionString(), hubName);
  consumers.push(client);
  return client;
}

/** Collects what subscribe() delivers until `enough` says so or the deadline passes. */
async function receive(
  client: EventHubConsumerClient,
  partitionId: string,
  options: Parameters<EventHubConsumerClient['subscribe']>[2],
  enough: (events: ReceivedEventData[]) => boolean,
  timeoutMs = 10_000,
): Promise<ReceivedEventData[]> {
  const events: ReceivedEventData[] = [];
  const errors: Error[] = [];
  const subscription = client.subscribe(
    partitionId,
    {
      processEvents: async (batch) => {
        events.push(...batch);
      },
      processError: async (error) => {
        errors.push(error);
      },
    },
    { maxWaitTimeInSeconds: 1, ...options },
  );
  const deadline = Date.now() + timeoutMs;
  while (!enough(events) && errors.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  await subscription.close();
  if (errors.length > 0 && !enough(events)) throw errors[0];
  return events;
}

beforeAll(async () => {
  emulator = await startEventHubsEmulator({ port: 0, hubs: [{ name: hub, partitionCount: 4, consumerGroups: ['$Default', 'readers'] }] });
  producer = new EventHubProducerClient(emulator.connectionString(), hub);
});

afterAll(async () => {
  await producer?.close();
  await Promise.all(consumers.map((c) => c.close()));
  await emulator?.close();
});

describe('Event Hubs emulator with the real SDK clients', () => {
  it('answers CBS and $management: hub and partition properties', async () => {
    const properties = await producer.getEventHubProperties();
    expect(properties.name).toBe(hub);
    expect(properties.partitionIds).toEqual(['0', '1', '2', '3']);
    expect(properties.createdOn).toBeInstanceOf(Date);
    const partition = await producer.getPartitionProperties('3');
    expect(partition).toMatchObject({ eventHubName: hub, partitionId: '3', isEmpty: true, lastEnqueuedSequenceNumber: -1 });
  });

  it('sends a batch and a single event to one partition, and subscribe() reads them from the earliest', async () => {
    const batch = await producer.createBatch({ partitionId: '0' });
    for (let i = 0; i < 3; i++) expect(batch.tryAdd({ body: { n: i } })).toBe(true);
    await producer.sendBatch(batch);
    await producer.sendBatch([{ body: 'single', properties: { kind: 'one' } }], { partitionId: '0' });

    const events = await receive(consumer(), '0', { startPosition: earliestEventPosition }, (e) => e.length >= 4);
    expect(events.map((e) => e.body)).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }, 'single']);
    expect(events.map((e) => e.sequenceNumber)).toEqual([0, 1, 2, 3]);
    expect(events[3].properties).toEqual({ kind: 'one' });
    expect(typeof events[0].offset).toBe('string');
    expect(events[0].enqueuedTimeUtc).toBeInstanceOf(Date);

    const partition = await producer.getPartitionProperties('0');
    expect(partition.isEmpty).toBe(false);
    expect(partition.lastEnqueuedSequenceNumber).toBe(3);
    expect(partition.lastEnqueuedOffset).toBe(events[3].offset);
  });
});
