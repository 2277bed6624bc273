/**
 * `npm start`: Azurite, the Event Hubs emulator and the local Functions host, with no Docker and no Core
 * Tools. Data lives in `.mdc-local/` and survives a restart. Ctrl-C stops everything.
 *
 * Ports and folder can be moved with MDC_LOCAL_HOST_PORT (7071), MDC_LOCAL_AZURITE_PORT (10000),
 * MDC_LOCAL_EVENTHUBS_PORT (5672) and MDC_LOCAL_DATA (.mdc-local), e.g. when a real Azurite already runs.
 * MDC_LOCAL_HOST=off starts only Azurite and the emulator, for `func start`.
 */
import path from 'node:path';
import { startAzurite, type Azurite } from './azurite';
import { startEventHubsEmulator, type EventHubsEmulator } from './eventhubs';
import { startLocalHost, type LocalHost } from './host';
import { loadLocalSettings } from './host/app-settings';
import { consoleLog, isLogLevel } from './host/log';

function port(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65_535) throw new Error(`${name} must be a port number, got "${raw}"`);
  return value;
}

/** Settings that name the local services (as local.settings.json does) are pointed at the ones started here. */
function pointAtLocalServices(azurite: Azurite, emulator: EventHubsEmulator): void {
  for (const name of ['AzureWebJobsStorage', 'MDC_STORAGE']) {
    if (/UseDevelopmentStorage=true/i.test(process.env[name] ?? '')) process.env[name] = azurite.connectionString;
  }
  if (/UseDevelopmentEmulator=true/i.test(process.env.MDC_EVENTHUB ?? '')) process.env.MDC_EVENTHUB = emulator.connectionString();
}

function banner(host: LocalHost, azurite: Azurite, emulator: EventHubsEmulator, dataDir: string): string {
  const api = `${host.url}/api`;
  const adminKey = process.env.MDC_ADMIN_KEY ?? '<MDC_ADMIN_KEY>';
  const shown = path.relative(process.cwd(), dataDir) || dataDir;
  return [
    '',
    'Model data collector is running (Ctrl-C stops it).',
    `  Functions    ${api}  (${host.functionNames.http.join(', ')}; triggers: ${[...host.functionNames.eventHub, ...host.functionNames.timer].join(', ') || 'none'})`,
    `  Azurite      ${azurite.blobEndpoint}  (data in ${shown}/azurite)`,
    `  Event Hubs   amqp://${emulator.host}:${emulator.port}  hub ${process.env.MDC_EVENTHUB_NAME ?? 'mdc-events'}  (data in ${shown}/eventhubs)`,
    '',
    'Try it:',
    `  curl ${api}/health`,
    `  curl -X PUT ${api}/deployments/my-endpoint/blue -H 'x-mdc-admin-key: ${adminKey}' \\`,
    `       -H 'content-type: application/yaml' --data-binary $'data_collector:\\n  collections:\\n    model_inputs:\\n      enabled: "True"\\n'`,
    `  curl -X POST ${api}/collect/my-endpoint/blue/model_inputs -H 'x-mdc-key: <ingestKey from the PUT>' \\`,
    `       -H 'content-type: application/json' -d '[{"AGE": 54, "LIMIT_BAL": 502970}]'`,
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  // Like `func start`: local.settings.json fills in what the environment does not set.
  loadLocalSettings(path.resolve('local.settings.json'));
  const dataDir = path.resolve(process.env.MDC_LOCAL_DATA ?? '.mdc-local');
  const level = process.env.MDC_LOCAL_LOG_LEVEL;
  const stoppers: (() => Promise<void>)[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      for (const close of stoppers.reverse()) {
        await close().catch((error) => console.error('while stopping:', error instanceof Error ? error.message : error));
      }
    })());
  const onSignal = (signal: NodeJS.Signals) => {
    process.stdout.write(`\n${signal}: stopping...\n`);
    stop().then(() => process.exit(0));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const azurite = await startAzurite({ port: port('MDC_LOCAL_AZURITE_PORT', 10_000), location: path.join(dataDir, 'azurite') });
    stoppers.push(() => azurite.stop());
    const emulator = await startEventHubsEmulator({
      port: port('MDC_LOCAL_EVENTHUBS_PORT', 5672),
      dataDir: path.join(dataDir, 'eventhubs'),
    });
    stoppers.push(() => emulator.close());
    pointAtLocalServices(azurite, emulator);
    if (/^(off|false|0)$/i.test(process.env.MDC_LOCAL_HOST ?? '')) {
      // Services only, for `func start` to run the functions.
      process.stdout.write(
        `\nAzurite ${azurite.blobEndpoint} and Event Hubs amqp://${emulator.host}:${emulator.port} are running; now run \`func start\`. Ctrl-C stops them.\n`,
      );
      return;
    }
    const host = await startLocalHost({
      port: port('MDC_LOCAL_HOST_PORT', 7071),
      localSettings: false,
      log: consoleLog(isLogLevel(level) ? level : 'information'),
    });
    stoppers.push(() => host.close());
    process.stdout.write(banner(host, azurite, emulator, dataDir));
  } catch (error) {
    console.error(`npm start: ${error instanceof Error ? error.message : String(error)}`);
    if (error instanceof Error && /EADDRINUSE/.test(error.message)) {
      console.error('A port is taken (another `npm start`, Azurite or emulator?). Stop it, or move ours with MDC_LOCAL_*_PORT.');
    }
    await stop();
    process.exit(1);
  }
}

void main();
