import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { EventHubFunctionOptions, HttpFunctionOptions, TimerFunctionOptions } from '@azure/functions';
import { closeSharedClients } from '../../shared/clients';
import { loadLocalSettings } from './app-settings';
import { errorText } from './context';
import { startEventHubTrigger, type EventHubTrigger } from './event-hub-trigger';
import { readHostJson, type HostJson } from './host-json';
import { dispatchHttp, httpBindings, sendError, sendJson } from './http-trigger';
import { consoleLog, type HostLog } from './log';
import { startTimerTrigger, type TimerTrigger } from './timer-trigger';

/** The shape of local/functions.ts; tests pass their own. */
export interface FunctionTables {
  httpFunctions?: Record<string, HttpFunctionOptions>;
  eventHubFunctions?: Record<string, EventHubFunctionOptions>;
  timerFunctions?: Record<string, TimerFunctionOptions>;
}

export interface LocalHostOptions {
  /** 7071 when omitted, as `func start`; 0 for a free port. */
  port?: number;
  /** The functions to serve; local/functions.ts when omitted. */
  functions?: FunctionTables;
  /** A host.json path or its parsed form; ./host.json when omitted. */
  hostJson?: string | HostJson;
  /**
   * local.settings.json, whose `Values` fill the environment for names not already set (as `func start`);
   * ./local.settings.json when omitted, `false` to read none.
   */
  localSettings?: string | false;
  log?: HostLog;
  /** How soon a restarted host takes over the partitions a killed one owned. */
  ownershipExpiryMs?: number;
  /** Aborting it closes the host. */
  signal?: AbortSignal;
}

export interface LocalHost {
  /** `http://127.0.0.1:<port>`; functions are under `/api`. */
  readonly url: string;
  readonly port: number;
  readonly functionNames: { http: string[]; eventHub: string[]; timer: string[] };
  close(): Promise<void>;
}

/**
 * A stand-in for the Functions host where Core Tools cannot be installed: it serves the HTTP functions
 * under `/api`, drives the Event Hubs and timer functions, and runs any non-HTTP function on
 * `POST /admin/functions/{name}`. It binds the same options objects the `app.*` calls register.
 */
export async function startLocalHost(options: LocalHostOptions = {}): Promise<LocalHost> {
  const log = options.log ?? consoleLog();
  if (options.localSettings !== false) loadLocalSettings(path.resolve(options.localSettings ?? 'local.settings.json'));
  const hostJson = typeof options.hostJson === 'object' ? options.hostJson : readHostJson(path.resolve(options.hostJson ?? 'host.json'));
  // Loaded only when needed, so that a test serving its own table does not load every function.
  const tables: FunctionTables = options.functions ?? (require('../functions') as typeof import('../functions'));
  const bindings = httpBindings(tables.httpFunctions ?? {});
  const eventHubs = new Map<string, EventHubTrigger>();
  const timers = new Map<string, TimerTrigger>();
  const prefix = hostJson.routePrefix === '' ? '/' : `/${hostJson.routePrefix}/`;

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error) => {
      log('error', 'Host', `${req.method} ${req.url}:`, error);
      if (!res.headersSent) sendError(res, 500, 'HostError', errorText(error));
      else res.destroy();
    });
  });

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const pathname = (req.url ?? '/').split('?')[0]!;
    if (pathname === prefix.slice(0, -1) || pathname.startsWith(prefix)) {
      await dispatchHttp(bindings, pathname.slice(prefix.length), req, res, { log });
      return;
    }
    const admin = /^\/admin\/functions\/([^/]+)\/?$/.exec(pathname);
    if (admin && req.method === 'POST') {
      await invokeNow(decodeURIComponent(admin[1]!), req, res);
      return;
    }
    if (pathname === '/admin/host/status' && req.method === 'GET') {
      sendJson(res, 200, { state: 'Running', functions: functionNames });
      return;
    }
    sendError(res, 404, 'NotFound', `nothing is served at ${req.method} ${pathname}; functions are under ${prefix}`);
  };

  /** Like the Functions host's admin API, but it answers once the run has finished, so callers can wait on it. */
  const invokeNow = async (name: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const timer = timers.get(name);
    const hub = eventHubs.get(name);
    if (!timer && !hub) {
      const isHttp = bindings.some((b) => b.name === name);
      sendError(res, 404, 'FunctionNotFound', isHttp ? `${name} is an HTTP function: call it under ${prefix}` : `no non-HTTP function named ${name}`);
      return;
    }
    let input: unknown;
    if (hub) {
      const text = await readSmallBody(req, 1024 * 1024);
      if (text === undefined) return sendError(res, 413, 'RequestBodyTooLarge', 'the admin request body takes at most 1 MiB');
      try {
        input = text.trim() === '' ? undefined : (JSON.parse(text) as { input?: unknown }).input;
      } catch {
        return sendError(res, 400, 'InvalidJson', 'the body must be JSON: {"input": <event body>}');
      }
    } else req.resume();
    try {
      if (timer) await timer.invoke();
      else await hub!.invoke([input]);
    } catch (error) {
      sendError(res, 500, 'FunctionFailed', `function ${name} failed: ${errorText(error)}`);
      return;
    }
    sendJson(res, 202, { function: name, status: 'completed' });
  };

  const functionNames = {
    http: bindings.map((b) => b.name),
    eventHub: Object.keys(tables.eventHubFunctions ?? {}),
    timer: Object.keys(tables.timerFunctions ?? {}),
  };

  const close = async (): Promise<void> => {
    await Promise.allSettled([...timers.values()].map((t) => t.close()));
    await Promise.allSettled([...eventHubs.values()].map((t) => t.close()));
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 2_000).unref();
    });
    // The functions' process-wide clients hold AMQP and HTTP connections open.
    await closeSharedClients().catch((error) => log('warning', 'Host', 'closing shared clients:', errorText(error)));
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 7071, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  try {
    for (const [name, fn] of Object.entries(tables.timerFunctions ?? {})) {
      timers.set(name, startTimerTrigger({ name, options: fn, log }));
    }
    for (const [name, fn] of Object.entries(tables.eventHubFunctions ?? {})) {
      eventHubs.set(
        name,
        await startEventHubTrigger({
          name,
          options: fn,
          hostOptions: hostJson.eventHubs,
          log,
          ...(options.ownershipExpiryMs !== undefined ? { ownershipExpiryMs: options.ownershipExpiryMs } : {}),
        }),
      );
    }
  } catch (error) {
    await close();
    throw error;
  }

  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  const host: LocalHost = {
    url: `http://127.0.0.1:${port}`,
    port,
    functionNames,
    close: () => (closing ??= close()),
  };
  if (options.signal) {
    if (options.signal.aborted) await host.close();
    else options.signal.addEventListener('abort', () => void host.close(), { once: true });
  }
  return host;
}

/** The body as text, or undefined when it is over `limit` bytes. */
async function readSmallBody(req: http.IncomingMessage, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
