import { mkdtempSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defineHubs, readHubConfig, type HubConfig } from './config';
import { Namespace } from './namespace';
import { AmqpServer } from './server';

export type { HubConfig } from './config';

export interface EventHubsEmulatorOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 5672, as the SDK assumes with `UseDevelopmentEmulator=true`; 0 picks a free port. */
  port?: number;
  /** Folder for the partition logs; a fresh temporary folder when omitted. */
  dataDir?: string;
  /** Default: the hubs of local/emulator.config.json. */
  hubs?: HubConfig[];
  /** Default 1 MiB, the Standard tier's limit per event (and per batch). */
  maxMessageSize?: number;
}

export interface EventHubsEmulator {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  connectionString(): string;
  /** Closes connections and the listener. A new start on the same dataDir finds the events. */
  close(): Promise<void>;
}

/** Starts the AMQP 1.0 Event Hubs emulator that the unmodified `@azure/event-hubs` clients talk to. */
export async function startEventHubsEmulator(options: EventHubsEmulatorOptions = {}): Promise<EventHubsEmulator> {
  const host = options.host ?? '127.0.0.1';
  const dataDir = options.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'mdc-eventhubs-'));
  mkdirSync(dataDir, { recursive: true });
  const hubs = defineHubs(options.hubs ?? readHubConfig());
  const namespace = new Namespace(`sb://${host}/`, dataDir, hubs);
  const server = new AmqpServer(namespace, { maxMessageSize: options.maxMessageSize ?? 1024 * 1024 });
  let port: number;
  try {
    port = await server.listen(host, options.port ?? 5672);
  } catch (error) {
    namespace.close();
    throw error;
  }
  let closing: Promise<void> | undefined;
  return {
    host,
    port,
    dataDir,
    connectionString: () =>
      `Endpoint=sb://${host}:${port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true`,
    close: () =>
      (closing ??= server.close().finally(() => namespace.close())),
  };
}
