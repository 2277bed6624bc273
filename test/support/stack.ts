import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { BlobServiceClient } from '@azure/storage-blob';
import { startAzurite, type Azurite } from '../../local/azurite';
import { startEventHubsEmulator, type EventHubsEmulator, type HubConfig } from '../../local/eventhubs';
import { startLocalHost, type FunctionTables, type LocalHost } from '../../local/host';
import { consoleLog } from '../../local/host/log';
import { freePort } from '../../local/ports';

export const testAdminKey = 'test-admin-key-0123456789';

export interface StackOptions {
  /** Azurite's data folder; in memory when omitted. */
  location?: string;
  /** Extra settings, set in process.env before the host starts (and given to `spawnHost`). */
  env?: Record<string, string>;
  /** The emulator's hubs; local/emulator.config.json's when omitted. The first is MDC_EVENTHUB_NAME. */
  hubs?: HubConfig[];
  /** The functions the in-process host serves; local/functions.ts when omitted. */
  functions?: FunctionTables;
  /** False to start no in-process host (e.g. to run it with `spawnHost` only). */
  host?: boolean;
}

export interface Stack {
  /** The in-process host, `http://127.0.0.1:<port>` (functions under `/api`); '' without a host. */
  url: string;
  adminKey: string;
  azurite: Azurite;
  emulator: EventHubsEmulator;
  host: LocalHost | undefined;
  hubName: string;
  /** A client on the data account (Azurite). */
  blobService: BlobServiceClient;
  eventHubConnectionString: string;
  storageConnectionString: string;
  /** The settings this stack set: pass them to `spawnHost`. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Azurite, the Event Hubs emulator and the local host, each on a free port, with process.env pointing at
 * them. `getSettings()` is read once per process, so start one stack per test file.
 */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mdc-stack-'));
  const azurite = await startAzurite(options.location ? { location: options.location } : {});
  let emulator: EventHubsEmulator | undefined;
  let host: LocalHost | undefined;
  const previous: Record<string, string | undefined> = {};
  try {
    emulator = await startEventHubsEmulator({ port: 0, dataDir, ...(options.hubs ? { hubs: options.hubs } : {}) });
    const hubName = options.hubs?.[0]?.name ?? 'mdc-events';
    const env: Record<string, string> = {
      AzureWebJobsStorage: azurite.connectionString,
      MDC_STORAGE: azurite.connectionString,
      MDC_EVENTHUB: emulator.connectionString(),
      MDC_EVENTHUB_NAME: hubName,
      MDC_EVENTHUB_CONSUMER_GROUP: '$Default',
      MDC_ADMIN_KEY: testAdminKey,
      ...options.env,
    };
    for (const [name, value] of Object.entries(env)) {
      previous[name] = process.env[name];
      process.env[name] = value;
    }
    if (options.host !== false) {
      host = await startLocalHost({
        port: 0,
        log: consoleLog('warning'),
        ownershipExpiryMs: 3_000,
        ...(options.functions ? { functions: options.functions } : {}),
      });
    }
    const started = emulator;
    return {
      url: host?.url ?? '',
      adminKey: env.MDC_ADMIN_KEY!,
      azurite,
      emulator: started,
      host,
      hubName,
      blobService: BlobServiceClient.fromConnectionString(azurite.connectionString),
      eventHubConnectionString: started.connectionString(),
      storageConnectionString: azurite.connectionString,
      env,
      async stop() {
        await host?.close();
        await started.close();
        await azurite.stop();
        for (const [name, value] of Object.entries(previous)) {
          if (value === undefined) delete process.env[name];
          else process.env[name] = value;
        }
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await host?.close();
    await emulator?.close();
    await azurite.stop();
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

export interface SpawnedHost {
  url: string;
  /** Everything the process wrote, for a failing test's message. */
  output(): string;
  kill(signal?: NodeJS.Signals): void;
  /** Resolves with the exit code (or the signal's name) once the process has gone. */
  exited: Promise<number | string>;
}

/**
 * Runs local/host/main.ts in its own process with these settings (e.g. `stack.env`), for tests that must
 * kill a host mid-work. Resolves once the host says it is ready.
 */
export async function spawnHost(env: Record<string, string>, options: { timeoutMs?: number } = {}): Promise<SpawnedHost> {
  const port = await freePort();
  const root = path.resolve(__dirname, '..', '..');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'local', 'host', 'main.ts')], {
    cwd: root,
    env: {
      ...process.env,
      ...env,
      MDC_LOCAL_HOST_PORT: String(port),
      MDC_LOCAL_LOG_LEVEL: 'warning',
      MDC_LOCAL_OWNERSHIP_EXPIRY_MS: '3000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const lines = createInterface({ input: child.stdout! });
  const ready = new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      output += `${line}\n`;
      const match = /^local host ready (\S+)/.exec(line);
      if (match) resolve(match[1]!);
    });
    exited.then((code) => reject(new Error(`the host exited (${code}) before it was ready:\n${output}`)));
  });
  const timeoutMs = options.timeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the host was not ready after ${timeoutMs} ms:\n${output}`)), timeoutMs);
  });
  try {
    const url = await Promise.race([ready, timeout]);
    return { url, output: () => output, kill: (signal = 'SIGKILL') => void child.kill(signal), exited };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Polls until `probe` returns something other than undefined/false, or fails at the deadline with `what`. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
}
