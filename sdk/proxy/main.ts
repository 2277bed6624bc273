import { parseArgs } from 'node:util';
import { envNames } from '../typescript/src/config';
import type { CollectorError } from '../typescript/src/errors';
import { PayloadProxy, type PayloadProxyOptions } from './proxy';

const usage = `usage: npm run proxy -- --target <model server URL> --endpoint <name> --deployment <name> [options]

  --target        the model server, e.g. http://127.0.0.1:5001 (required)
  --port          where the proxy listens (default 5002)
  --host          the address it binds (default 127.0.0.1)
  --endpoint      the endpoint name (default ${envNames.endpoint})
  --deployment    the deployment name (default ${envNames.deployment})
  --collector     the collector's base URL (default ${envNames.url}, else http://127.0.0.1:7071)
  --key           the deployment's ingest key (default ${envNames.key})
  --max-log-bytes bytes of each body that are logged (default 1048576); bodies always pass whole
  --max-queue     payload logs held while the collector is slow, at most (default 1000)
  --model-version stamped on every line (default "default")`;

export interface ProxyCommand {
  port: number;
  host: string;
  options: PayloadProxyOptions;
}

export class UsageError extends Error {
  readonly code = 'InvalidArgument';
}

function integer(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new UsageError(`--${name} must be a whole number, not "${raw}"`);
  return value;
}

/** Reads the command line and the environment; throws `UsageError` naming what is missing or wrong. */
export function parseProxyArgs(argv: string[], env: Record<string, string | undefined> = process.env): ProxyCommand {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        target: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        endpoint: { type: 'string' },
        deployment: { type: 'string' },
        collector: { type: 'string' },
        key: { type: 'string' },
        'max-log-bytes': { type: 'string' },
        'max-queue': { type: 'string' },
        'model-version': { type: 'string' },
      },
      strict: true,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const target = values.target;
  if (!target) throw new UsageError('--target is required (the model server, e.g. http://127.0.0.1:5001)');
  const endpoint = values.endpoint ?? env[envNames.endpoint];
  const deployment = values.deployment ?? env[envNames.deployment];
  const collector = values.collector ?? env[envNames.url] ?? 'http://127.0.0.1:7071';
  const key = values.key ?? env[envNames.key];
  if (!key) throw new UsageError(`no ingest key: pass --key or set ${envNames.key}`);
  if (!/\/api\/collect\/[^/]+\/[^/]+\/?$/.test(collector) && (!endpoint || !deployment)) {
    throw new UsageError(`--endpoint and --deployment are required (or ${envNames.endpoint} and ${envNames.deployment})`);
  }
  return {
    port: integer('port', values.port, 5002),
    host: values.host ?? '127.0.0.1',
    options: {
      target,
      collector,
      key,
      ...(endpoint ? { endpoint } : {}),
      ...(deployment ? { deployment } : {}),
      maxLoggedBytes: integer('max-log-bytes', values['max-log-bytes'], 1024 * 1024),
      maxQueue: integer('max-queue', values['max-queue'], 1000),
      ...(values['model-version'] ? { modelVersion: values['model-version'] } : {}),
    },
  };
}

/** Losses are reported as they happen, but at most one line per 5 s so a dead collector cannot flood the log. */
function lossReporter(): (error: CollectorError) => void {
  let lastAt = 0;
  let unreported = 0;
  return (error) => {
    unreported += error.dropped;
    const now = Date.now();
    if (now - lastAt < 5000) return;
    lastAt = now;
    console.error(`mdc-proxy: ${unreported} payload log(s) lost; latest: ${error.code}: ${error.message}`);
    unreported = 0;
  };
}

async function main(): Promise<void> {
  let command: ProxyCommand;
  try {
    command = parseProxyArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${usage}`);
    process.exitCode = 2;
    return;
  }
  const proxy = new PayloadProxy({ ...command.options, onError: lossReporter() });
  const port = await proxy.listen(command.port, command.host);
  console.log(`mdc-proxy: http://${command.host}:${port} → ${command.options.target}, logging to ${command.options.collector}`);
  const stop = () => {
    console.log('mdc-proxy: stopping, sending what is left');
    const report = () => {
      const { sent, dropped, failed } = proxy.logger.stats;
      console.log(`mdc-proxy: stopped; ${sent} payload log(s) sent, ${dropped} dropped, ${failed} failed`);
    };
    proxy.close({ timeoutMs: 5000 }).then(
      () => {
        report();
        process.exit(0);
      },
      () => {
        report();
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (require.main === module) void main();
