import http from 'node:http';
import { EventHubConsumerClient, earliestEventPosition, type Subscription } from '@azure/event-hubs';
import type { HubEvent } from '../../shared/hub-event';

/** What a test reads back from the hub: the event body and the partition key it travelled under. */
export interface SeenEvent {
  body: HubEvent;
  partitionKey: string | null | undefined;
}

/** Collects every event that reaches the hub, from the start, so tests can wait for the ones they sent. */
export class HubWatcher {
  readonly seen = new Map<string, SeenEvent>();
  private readonly consumer: EventHubConsumerClient;
  private subscription: Subscription | undefined;

  constructor(connectionString: string, hubName: string) {
    this.consumer = new EventHubConsumerClient('$Default', connectionString, hubName);
  }

  start(): void {
    this.subscription = this.consumer.subscribe(
      {
        processEvents: async (events) => {
          for (const event of events) {
            const body = (Buffer.isBuffer(event.body) ? JSON.parse(event.body.toString('utf8')) : event.body) as HubEvent;
            this.seen.set(body.id, { body, partitionKey: event.partitionKey });
          }
        },
        processError: async () => undefined,
      },
      { startPosition: earliestEventPosition, maxWaitTimeInSeconds: 0.2, maxBatchSize: 500 },
    );
  }

  /** The events with these ids, once all have arrived; fails at the deadline naming what is missing. */
  async events(ids: string[], timeoutMs = 20_000): Promise<SeenEvent[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const missing = ids.filter((id) => !this.seen.has(id));
      if (missing.length === 0) return ids.map((id) => this.seen.get(id)!);
      if (Date.now() > deadline) throw new Error(`events never reached the hub: ${missing.join(', ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** How many events the hub holds, from its partitions' properties (no waiting involved). */
  async count(): Promise<number> {
    let total = 0;
    for (const id of await this.consumer.getPartitionIds()) {
      const p = await this.consumer.getPartitionProperties(id);
      if (!p.isEmpty) total += p.lastEnqueuedSequenceNumber - p.beginningSequenceNumber + 1;
    }
    return total;
  }

  async close(): Promise<void> {
    await this.subscription?.close();
    await this.consumer.close();
  }
}

export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

/**
 * An HTTP request sent as written: unlike fetch, node:http does not normalise `..` or re-encode the path, so
 * tests can send the odd names a careless client would.
 */
export function send(base: string, method: string, path: string, options: { headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<RawAnswer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: url.hostname, port: url.port, method, path, headers: { ...(options.body !== undefined ? { 'content-length': String(Buffer.byteLength(options.body)) } : {}), ...options.headers } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: response.statusCode ?? 0, headers: response.headers, text, json });
        });
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(options.body);
  });
}
