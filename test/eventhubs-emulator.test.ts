import {
  EventHubConsumerClient,
  EventHubProducerClient,
  earliestEventPosition,
  latestEventPosition,
  type EventPosition,
  type ReceivedEventData,
} from '@azure/event-hubs';
import rhea, { type Connection, type Message } from 'rhea';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEventHubsEmulator, type EventHubsEmulator } from '../local/eventhubs';

let emulator: EventHubsEmulator;
const producers = new Map<string, EventHubProducerClient>();
const closers: Array<() => Promise<unknown>> = [];

function producer(hub: string): EventHubProducerClient {
  let client = producers.get(hub);
  if (!client) {
    client = new EventHubProducerClient(emulator.connectionString(), hub);
    producers.set(hub, client);
    closers.push(() => client!.close());
  }
  return client;
}

function consumer(hub: string, group = '$Default'): EventHubConsumerClient {
  const client = new EventHubConsumerClient(group, emulator.connectionString(), hub);
  closers.push(() => client.close());
  return client;
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Subscribes to one partition (or all) and collects events and errors until closed. */
function watch(client: EventHubConsumerClient, partitionId: string | undefined, options: { startPosition?: EventPosition; ownerLevel?: number } = {}) {
  const events: ReceivedEventData[] = [];
  const errors: Array<Error & { code?: string }> = [];
  const handlers = {
    processEvents: async (batch: ReceivedEventData[]) => {
      events.push(...batch);
    },
    processError: async (error: Error) => {
      errors.push(error);
    },
  };
  const subscribeOptions = { maxWaitTimeInSeconds: 1, maxBatchSize: 50, ...options };
  const subscription =
    partitionId === undefined ? client.subscribe(handlers, subscribeOptions) : client.subscribe(partitionId, handlers, subscribeOptions);
  return { events, errors, close: () => subscription.close() };
}

async function receive(hub: string, partitionId: string | undefined, startPosition: EventPosition, count: number): Promise<ReceivedEventData[]> {
  const watcher = watch(consumer(hub), partitionId, { startPosition });
  try {
    await until(() => watcher.events.length >= count || watcher.errors.length > 0, `${count} events from ${hub}/${partitionId ?? '*'}`);
    if (watcher.errors.length) throw watcher.errors[0];
    return watcher.events;
  } finally {
    await watcher.close();
  }
}

/** A plain rhea client, to check the wire where the SDK hides it (credit, annotation types, server-side limits). */
async function rawConnection(): Promise<Connection> {
  const connection = rhea.create_container().connect({ host: emulator.host, port: emulator.port, reconnect: false });
  await new Promise<void>((resolve, reject) => {
    connection.once('connection_open', () => resolve());
    connection.once('connection_error', () => reject(connection.error));
    connection.once('disconnected', (context) => reject(context.error ?? new Error('disconnected')));
  });
  closers.push(async () => connection.close());
  return connection;
}

/** A CBS put-token round trip: its reply proves that everything the server wrote before it has arrived. */
async function roundTrip(connection: Connection): Promise<void> {
  const replyTo = `reply-${rhea.generate_uuid()}`;
  const receiver = connection.open_receiver({ source: { address: '$cbs' }, target: { address: replyTo }, name: replyTo });
  const sender = connection.open_sender({ target: { address: '$cbs' } });
  await new Promise<void>((resolve) => {
    receiver.once('message', () => resolve());
    sender.once('sendable', () =>
      sender.send({ message_id: rhea.generate_uuid(), reply_to: replyTo, application_properties: { operation: 'put-token' }, body: 'token' }),
    );
  });
  receiver.close();
  sender.close();
}

beforeAll(async () => {
  emulator = await startEventHubsEmulator({
    port: 0,
    hubs: [
      { name: 'mdc-events', partitionCount: 4, consumerGroups: ['readers'] },
      { name: 'keys', partitionCount: 4 },
      { name: 'spread', partitionCount: 4 },
      { name: 'positions', partitionCount: 1 },
      { name: 'raw', partitionCount: 1 },
      { name: 'owners', partitionCount: 1 },
      { name: 'sizes', partitionCount: 1 },
      { name: 'window', partitionCount: 1 },
    ],
  });
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await emulator?.close();
});

describe('Event Hubs emulator with the real SDK clients', () => {
  it('reports hub and partition properties through CBS and $management', async () => {
    const properties = await producer('mdc-events').getEventHubProperties();
    expect(properties.name).toBe('mdc-events');
    expect(properties.partitionIds).toEqual(['0', '1', '2', '3']);
    expect(properties.createdOn).toBeInstanceOf(Date);
    const partition = await producer('mdc-events').getPartitionProperties('3');
    expect(partition).toMatchObject({ eventHubName: 'mdc-events', partitionId: '3', isEmpty: true, lastEnqueuedSequenceNumber: -1 });
  });

  it('sends a batch and a single event to one partition; subscribe() reads them from the earliest', async () => {
    const hub = producer('mdc-events');
    const batch = await hub.createBatch({ partitionId: '0' });
    for (let i = 0; i < 3; i++) expect(batch.tryAdd({ body: { n: i } })).toBe(true);
    await hub.sendBatch(batch);
    await hub.sendBatch([{ body: 'single', properties: { kind: 'one' } }], { partitionId: '0' });

    const events = await receive('mdc-events', '0', earliestEventPosition, 4);
    expect(events.map((e) => e.body)).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }, 'single']);
    expect(events.map((e) => e.sequenceNumber)).toEqual([0, 1, 2, 3]);
    expect(events[3].properties).toEqual({ kind: 'one' });
    expect(typeof events[0].offset).toBe('string');
    expect(events[0].enqueuedTimeUtc).toBeInstanceOf(Date);

    const partition = await hub.getPartitionProperties('0');
    expect(partition).toMatchObject({ isEmpty: false, lastEnqueuedSequenceNumber: 3, lastEnqueuedOffset: events[3].offset });
    expect(partition.lastEnqueuedOnUtc.getTime()).toBe(events[3].enqueuedTimeUtc.getTime());
  });

  it('reads with a second consumer group, independently of the first', async () => {
    const events = await receive('mdc-events', '0', earliestEventPosition, 4);
    const watcher = watch(consumer('mdc-events', 'readers'), '0', { startPosition: earliestEventPosition });
    await until(() => watcher.events.length >= 4, 'events in consumer group readers');
    await watcher.close();
    expect(watcher.events.map((e) => e.sequenceNumber)).toEqual(events.map((e) => e.sequenceNumber));
  });

  it('spreads sends to the hub over its partitions, and subscribe() without a partition reads them all', async () => {
    for (let i = 0; i < 8; i++) await producer('spread').sendBatch([{ body: `e${i}` }]);
    const counts = await Promise.all(['0', '1', '2', '3'].map(async (id) => (await producer('spread').getPartitionProperties(id)).lastEnqueuedSequenceNumber + 1));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(8);
    expect(counts.filter((n) => n > 0).length).toBeGreaterThan(1);

    const events = await receive('spread', undefined, earliestEventPosition, 8);
    expect(events.map((e) => e.body).sort()).toEqual(['e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7']);
  });

  it('sends every event with the same partition key to the same partition, and stamps the key', async () => {
    const hub = producer('keys');
    for (let round = 0; round < 3; round++) {
      for (const key of ['alpha', 'beta', 'gamma', 'delta', 'epsilon']) {
        const batch = await hub.createBatch({ partitionKey: key });
        batch.tryAdd({ body: { key, round } });
        await hub.sendBatch(batch);
      }
      await hub.sendBatch([{ body: { key: 'alpha', round, array: true } }], { partitionKey: 'alpha' });
    }
    const byPartition = await Promise.all(
      ['0', '1', '2', '3'].map(async (id) => {
        const size = (await hub.getPartitionProperties(id)).lastEnqueuedSequenceNumber + 1;
        return size === 0 ? [] : receive('keys', id, earliestEventPosition, size);
      }),
    );
    const partitionOfKey = new Map<string, Set<number>>();
    byPartition.forEach((events, partition) => {
      for (const event of events) {
        expect(event.partitionKey).toBe((event.body as { key: string }).key);
        const seen = partitionOfKey.get(event.partitionKey!) ?? new Set<number>();
        seen.add(partition);
        partitionOfKey.set(event.partitionKey!, seen);
      }
    });
    expect(byPartition.flat()).toHaveLength(18);
    expect([...partitionOfKey.values()].every((partitions) => partitions.size === 1)).toBe(true);
  });

  describe('start positions', () => {
    let first: ReceivedEventData[];

    beforeAll(async () => {
      await producer('positions').sendBatch([0, 1, 2, 3, 4].map((n) => ({ body: n })));
      first = await receive('positions', '0', earliestEventPosition, 5);
      // The second batch must be enqueued in a later millisecond for the time filter to tell them apart.
      await until(() => Date.now() > first[4].enqueuedTimeUtc.getTime() + 2, 'the clock to move on');
      await producer('positions').sendBatch([5, 6, 7, 8, 9].map((n) => ({ body: n })));
    });

    const bodiesFrom = async (position: EventPosition, expected: number) =>
      (await receive('positions', '0', position, expected)).map((e) => e.body);

    it('by offset, exclusive and inclusive', async () => {
      expect(await bodiesFrom({ offset: first[2].offset }, 7)).toEqual([3, 4, 5, 6, 7, 8, 9]);
      expect(await bodiesFrom({ offset: first[2].offset, isInclusive: true }, 8)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    });

    it('by sequence number, exclusive and inclusive', async () => {
      expect(await bodiesFrom({ sequenceNumber: 6 }, 3)).toEqual([7, 8, 9]);
      expect(await bodiesFrom({ sequenceNumber: 6, isInclusive: true }, 4)).toEqual([6, 7, 8, 9]);
    });

    it('by enqueued time', async () => {
      expect(await bodiesFrom({ enqueuedOn: first[4].enqueuedTimeUtc }, 5)).toEqual([5, 6, 7, 8, 9]);
    });

    it('from the latest: only events sent after the link opened', async () => {
      const watcher = watch(consumer('positions'), '0', { startPosition: latestEventPosition });
      let sent = 0;
      await until(() => {
        if (watcher.events.length === 0 && sent < 200) void producer('positions').sendBatch([{ body: 100 + sent++ }]);
        return watcher.events.length > 0;
      }, 'an event sent after subscribing from the latest');
      await watcher.close();
      expect(watcher.events.every((e) => e.sequenceNumber >= 10)).toBe(true);
      expect(watcher.events[0].body).toBeGreaterThanOrEqual(100);
    });
  });

  it('never sends beyond the credit a receiver granted, sends settled, and stamps the annotations with their types', async () => {
    await producer('raw').sendBatch([0, 1, 2, 3, 4, 5].map((n) => ({ body: n })), { partitionKey: 'k1' });
    const connection = await rawConnection();
    const messages: Message[] = [];
    const settled: boolean[] = [];
    const receiver = connection.open_receiver({
      source: { address: 'raw/ConsumerGroups/$default/Partitions/0' },
      credit_window: 0,
      autoaccept: true,
    });
    receiver.on('message', (context) => {
      messages.push(context.message!);
      settled.push(context.delivery!.remote_settled);
    });
    await new Promise<void>((resolve) => receiver.once('receiver_open', () => resolve()));
    receiver.add_credit(2);
    await until(() => messages.length >= 2, 'two messages');
    await roundTrip(connection);
    expect(messages).toHaveLength(2);
    receiver.add_credit(3);
    await until(() => messages.length >= 5, 'five messages');
    await roundTrip(connection);
    expect(messages).toHaveLength(5);

    // Settled on send, as the service sends events: the client owes no disposition.
    expect(settled.every(Boolean)).toBe(true);
    const annotations = messages.map((m) => m.message_annotations!);
    expect(annotations.map((a) => a['x-opt-sequence-number'])).toEqual([0, 1, 2, 3, 4]);
    expect(annotations.every((a) => typeof a['x-opt-offset'] === 'string')).toBe(true);
    expect(annotations.every((a) => a['x-opt-enqueued-time'] instanceof Date)).toBe(true);
    expect(annotations.every((a) => a['x-opt-partition-key'] === 'k1')).toBe(true);
    receiver.close();
  });

  it('keeps streaming on one connection when a receiver grants more credit than the session has room for unsettled deliveries', async () => {
    const total = 3000;
    for (let from = 0; from < total; from += 500) {
      await producer('window').sendBatch(Array.from({ length: 500 }, (_, i) => ({ body: from + i })), { partitionId: '0' });
    }
    const connection = await rawConnection();
    let disconnected = false;
    connection.on('disconnected', () => (disconnected = true));
    const deliveries: Array<{ message: Message; accept(): void }> = [];
    // Nothing is settled until the end, so the server's outgoing session window stays full of unsettled deliveries;
    // a session of its own keeps the round trips below out of that window.
    const session = connection.create_session();
    session.begin();
    const receiver = session.attach_receiver({
      source: { address: 'window/ConsumerGroups/$default/Partitions/0' },
      credit_window: 0,
      autoaccept: false,
      snd_settle_mode: 0,
    });
    receiver.on('message', (context) => deliveries.push({ message: context.message!, accept: () => context.delivery!.accept() }));
    await new Promise<void>((resolve) => receiver.once('receiver_open', () => resolve()));
    receiver.add_credit(2000);
    await until(() => deliveries.length >= 2000, '2000 messages');
    receiver.add_credit(total - 2000);
    await roundTrip(connection);
    expect(disconnected).toBe(false);
    for (const delivery of deliveries) delivery.accept();
    await until(() => deliveries.length >= total || disconnected, `${total} messages`);
    expect(disconnected).toBe(false);
    expect(deliveries.map((d) => d.message.message_annotations!['x-opt-sequence-number'])).toEqual(Array.from({ length: total }, (_, i) => i));
    receiver.close();
  });

  it('gives the partition to a newer owner level, disconnecting the old link with amqp:link:stolen, and refuses a lower one', async () => {
    await producer('owners').sendBatch([{ body: 'first' }]);
    const old = watch(consumer('owners'), '0', { startPosition: earliestEventPosition, ownerLevel: 1 });
    await until(() => old.events.length === 1, 'the first owner to read');

    const newer = watch(consumer('owners'), '0', { startPosition: earliestEventPosition, ownerLevel: 2 });
    await until(() => old.errors.length > 0, 'the first owner to be disconnected');
    expect(old.errors[0].code).toBe('ReceiverDisconnectedError');
    await until(() => newer.events.length === 1, 'the new owner to read');

    const lower = watch(consumer('owners'), '0', { startPosition: earliestEventPosition, ownerLevel: 1 });
    await until(() => lower.errors.length > 0, 'the lower owner level to be refused');
    expect(lower.errors[0].code).toBe('ReceiverDisconnectedError');
    expect(lower.events).toHaveLength(0);
    expect(newer.errors).toHaveLength(0);
    await Promise.all([old.close(), newer.close(), lower.close()]);
  });

  it('answers an unknown hub or consumer group with amqp:not-found', async () => {
    const missing = producer('no-such-hub');
    await expect(missing.getEventHubProperties()).rejects.toMatchObject({ code: 'MessagingEntityNotFoundError' });
    await expect(missing.sendBatch([{ body: 1 }], { partitionId: '0' })).rejects.toMatchObject({ code: 'MessagingEntityNotFoundError' });

    const watcher = watch(consumer('mdc-events', 'no-such-group'), '0', { startPosition: earliestEventPosition });
    await until(() => watcher.errors.length > 0, 'the consumer group to be refused');
    await watcher.close();
    expect(watcher.errors[0].code).toBe('MessagingEntityNotFoundError');
    expect(watcher.errors[0].message).toMatch(/no-such-group/);

    const connection = await rawConnection();
    const receiver = connection.open_receiver({ source: { address: 'no-such-hub/ConsumerGroups/$default/Partitions/0' } });
    await new Promise<void>((resolve) => receiver.once('receiver_close', () => resolve()));
    expect(receiver.error).toMatchObject({ condition: 'amqp:not-found' });
  });

  it('reports a 1 MiB max message size on attach and rejects larger sends with amqp:link:message-size-exceeded', async () => {
    const sizes = producer('sizes');
    const batch = await sizes.createBatch();
    expect(batch.maxSizeInBytes).toBe(1024 * 1024);
    expect(batch.tryAdd({ body: Buffer.alloc(1024 * 1024 + 1) })).toBe(false);
    await expect(sizes.sendBatch([{ body: Buffer.alloc(1024 * 1024 + 1) }])).rejects.toMatchObject({ code: 'MessageTooLargeError' });

    const connection = await rawConnection();
    const sender = connection.open_sender({ target: { address: 'sizes' } });
    await new Promise<void>((resolve) => sender.once('sendable', () => resolve()));
    expect(sender.max_message_size).toBe(1024 * 1024);
    const outcome = await new Promise<{ condition?: string }>((resolve) => {
      sender.once('rejected', (context) => resolve((context.delivery?.remote_state as { error?: { condition?: string } })?.error ?? {}));
      sender.once('accepted', () => resolve({ condition: 'accepted' }));
      sender.send({ body: Buffer.alloc(1024 * 1024 + 10) });
    });
    expect(outcome.condition).toBe('amqp:link:message-size-exceeded');
    expect((await sizes.getPartitionProperties('0')).isEmpty).toBe(true);
    sender.close();
  });
});
