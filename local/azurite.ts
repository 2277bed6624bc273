import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { freePort, waitForPort } from './ports';

/** Azurite's well-known development account (public, documented by Microsoft). */
export const devAccountName = 'devstoreaccount1';
export const devAccountKey = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuriteOptions {
  /** Port for the blob service; a free one when omitted. */
  port?: number;
  /** Folder for Azurite's data. In memory when omitted. */
  location?: string;
}

export interface Azurite {
  readonly port: number;
  readonly connectionString: string;
  readonly blobEndpoint: string;
  /** The process id of the running Azurite, for measuring it (undefined while stopped). */
  readonly pid: number | undefined;
  /** Stops Azurite. With a `location`, `start()` brings the same data back. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

function launch(port: number, location: string | undefined): ChildProcess {
  const main = require.resolve('azurite/dist/src/blob/main.js');
  const args = [main, '--blobHost', '127.0.0.1', '--blobPort', String(port), '--silent', '--loose', '--skipApiVersionCheck', '--disableTelemetry'];
  if (location) {
    mkdirSync(location, { recursive: true });
    args.push('--location', location);
  } else {
    args.push('--inMemoryPersistence');
  }
  return spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** Starts Azurite's blob service from the `azurite` npm package, as a child process. */
export async function startAzurite(options: AzuriteOptions = {}): Promise<Azurite> {
  const port = options.port ?? (await freePort());
  const blobEndpoint = `http://127.0.0.1:${port}/${devAccountName}`;
  let child: ChildProcess | undefined;

  const start = async () => {
    if (child) return;
    const started = launch(port, options.location);
    child = started;
    const exited = new Promise<never>((_, reject) =>
      started.once('exit', (code) => reject(new Error(`Azurite exited with code ${code} before listening on ${port}`))),
    );
    exited.catch(() => undefined);
    await Promise.race([waitForPort(port), exited]);
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      running.once('exit', () => resolve());
      running.kill('SIGTERM');
    });
  };

  await start();
  return {
    port,
    blobEndpoint,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${devAccountName};AccountKey=${devAccountKey};BlobEndpoint=${blobEndpoint};`,
    get pid() {
      return child?.pid;
    },
    start,
    stop,
  };
}
