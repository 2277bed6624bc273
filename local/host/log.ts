import { format } from 'node:util';
import type { LogLevel } from '@azure/functions';

export type HostLogLevel = Exclude<LogLevel, 'none'> | 'none';

const order: Record<HostLogLevel, number> = { trace: 0, debug: 1, information: 2, warning: 3, error: 4, critical: 5, none: 6 };

/** Writes what the host and the functions log, one line each, prefixed with the time and the source. */
export type HostLog = (level: LogLevel, source: string, ...args: unknown[]) => void;

export function consoleLog(minimum: HostLogLevel = 'information'): HostLog {
  return (level, source, ...args) => {
    if (level === 'none' || order[level] < order[minimum]) return;
    const line = `[${new Date().toISOString()}] ${source}: ${format(...args)}`;
    if (order[level] >= order.warning) console.error(line);
    else console.log(line);
  };
}

export function isLogLevel(value: string | undefined): value is HostLogLevel {
  return value !== undefined && value in order;
}
