/**
 * The local host alone, as a process: `tsx local/host/main.ts`. Settings come from the environment, then
 * local.settings.json. `MDC_LOCAL_HOST_PORT` picks the port (default 7071). Prints one line
 * `local host ready <url>` once every trigger is running; SIGINT or SIGTERM closes it cleanly.
 */
import { startLocalHost } from './index';
import { consoleLog, isLogLevel } from './log';

async function main(): Promise<void> {
  const port = Number(process.env.MDC_LOCAL_HOST_PORT ?? 7071);
  const level = process.env.MDC_LOCAL_LOG_LEVEL;
  const expiry = process.env.MDC_LOCAL_OWNERSHIP_EXPIRY_MS;
  const host = await startLocalHost({
    port,
    log: consoleLog(isLogLevel(level) ? level : 'information'),
    ...(expiry ? { ownershipExpiryMs: Number(expiry) } : {}),
  });
  process.stdout.write(`local host ready ${host.url}\n`);
  const stop = () => {
    host.close().then(
      () => process.exit(0),
      (error) => {
        console.error('local host: could not close cleanly:', error);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error) => {
  console.error('local host: could not start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
