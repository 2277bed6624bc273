import { existsSync, readFileSync } from 'node:fs';

/** host.json's `extensions.eventHubs`, with the Event Hubs extension's defaults for what it leaves out. */
export interface EventHubsHostOptions {
  maxEventBatchSize: number;
  /** Read for completeness; the SDK's pump has no minimum, so a batch may be smaller. */
  minEventBatchSize: number;
  maxWaitTimeInSeconds: number;
  prefetchCount: number;
  batchCheckpointFrequency: number;
  initialOffset: { type: 'fromStart' } | { type: 'fromEnd' } | { type: 'fromEnqueuedTime'; enqueuedTimeUtc: Date };
}

export interface HostJson {
  /** `extensions.http.routePrefix`, `api` by default. */
  routePrefix: string;
  eventHubs: EventHubsHostOptions;
}

export class HostJsonError extends Error {
  readonly code = 'InvalidHostJson';
}

/** A .NET TimeSpan as host.json writes it: `hh:mm:ss[.fff]` or `d.hh:mm:ss`. */
export function timeSpanSeconds(text: string): number {
  const match = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)$/.exec(text.trim());
  if (!match) throw new HostJsonError(`"${text}" is not a TimeSpan (hh:mm:ss)`);
  const [, days, hours, minutes, seconds] = match;
  return Number(days ?? 0) * 86_400 + Number(hours) * 3_600 + Number(minutes) * 60 + Number(seconds);
}

type Json = Record<string, unknown>;

function positiveInt(source: Json, name: string, fallback: number): number {
  const value = source[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new HostJsonError(`extensions.eventHubs.${name} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function parseHostJson(json: Json): HostJson {
  const extensions = (json.extensions ?? {}) as Json;
  const http = (extensions.http ?? {}) as Json;
  const hubs = (extensions.eventHubs ?? {}) as Json;
  const offset = (hubs.initialOffsetOptions ?? {}) as Json;
  const offsetType = String(offset.type ?? 'fromStart');
  let initialOffset: EventHubsHostOptions['initialOffset'];
  if (offsetType.toLowerCase() === 'fromend') initialOffset = { type: 'fromEnd' };
  else if (offsetType.toLowerCase() === 'fromenqueuedtime') {
    const enqueuedTimeUtc = new Date(String(offset.enqueuedTimeUtc));
    if (Number.isNaN(enqueuedTimeUtc.getTime())) {
      throw new HostJsonError('extensions.eventHubs.initialOffsetOptions.enqueuedTimeUtc must be a date');
    }
    initialOffset = { type: 'fromEnqueuedTime', enqueuedTimeUtc };
  } else initialOffset = { type: 'fromStart' };
  return {
    routePrefix: typeof http.routePrefix === 'string' ? http.routePrefix.replace(/^\/+|\/+$/g, '') : 'api',
    eventHubs: {
      maxEventBatchSize: positiveInt(hubs, 'maxEventBatchSize', 100),
      minEventBatchSize: positiveInt(hubs, 'minEventBatchSize', 1),
      maxWaitTimeInSeconds: hubs.maxWaitTime === undefined ? 60 : timeSpanSeconds(String(hubs.maxWaitTime)),
      prefetchCount: positiveInt(hubs, 'prefetchCount', 300),
      batchCheckpointFrequency: positiveInt(hubs, 'batchCheckpointFrequency', 1),
      initialOffset,
    },
  };
}

export function readHostJson(file: string): HostJson {
  if (!existsSync(file)) return parseHostJson({});
  return parseHostJson(JSON.parse(readFileSync(file, 'utf8')) as Json);
}
