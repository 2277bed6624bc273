import { rolledFolder as appendFolder } from '../append/rolled-path';
import type { RollingRate } from '../settings';

/**
 * Rolled folders (SPEC §6): `yyyy`, `yyyy/MM`, `yyyy/MM/dd`, `yyyy/MM/dd/HH`, `yyyy/MM/dd/HH/mm`, in UTC.
 * A window is read by listing blob-name prefixes, never the whole collection, so this file turns a time
 * window into the fewest prefixes that hold only folders overlapping it.
 */

const levels: readonly RollingRate[] = ['Year', 'Month', 'Day', 'Hour', 'Minute'];

function depthOf(rate: RollingRate): number {
  return levels.indexOf(rate) + 1;
}

/** The rolled folder (no slashes at the ends) that holds data of `time`: the very names `append` writes. */
export function rolledFolder(rate: RollingRate, time: Date): string {
  return appendFolder(time, rate);
}

/** The start of the unit a folder stands for, or undefined when the name is not a rolled folder of that rate. */
export function folderStart(rate: RollingRate, folder: string): Date | undefined {
  const parts = folder.split('/');
  if (parts.length !== depthOf(rate) || !parts.every((p, i) => (i === 0 ? /^\d{4}$/ : /^\d{2}$/).test(p))) return undefined;
  const [y, mo = 1, d = 1, h = 0, mi = 0] = parts.map(Number);
  const start = new Date(Date.UTC(y!, mo - 1, d, h, mi));
  return rolledFolder(rate, start) === folder ? start : undefined;
}

/** The start of the next unit of `rate` after `start` (which must be aligned). */
export function nextUnit(rate: RollingRate, start: Date): Date {
  const t = new Date(start.getTime());
  switch (rate) {
    case 'Year':
      t.setUTCFullYear(t.getUTCFullYear() + 1);
      break;
    case 'Month':
      t.setUTCMonth(t.getUTCMonth() + 1);
      break;
    case 'Day':
      t.setUTCDate(t.getUTCDate() + 1);
      break;
    case 'Hour':
      t.setUTCHours(t.getUTCHours() + 1);
      break;
    case 'Minute':
      t.setUTCMinutes(t.getUTCMinutes() + 1);
      break;
  }
  return t;
}

/** The start of the unit of `rate` that holds `time`. */
export function floorTo(rate: RollingRate, time: Date): Date {
  return folderStart(rate, rolledFolder(rate, time))!;
}

export interface WindowPrefix {
  /** Relative to the collection's path, ending with `/`, e.g. `2024/03/06/` for a whole day of hourly folders. */
  prefix: string;
  start: Date;
  end: Date;
}

/**
 * The prefixes to list for `[start, end)`: every rolled folder that overlaps the window falls under exactly one
 * of them, and no folder outside it does. Where a whole day (month, year) lies inside the window, the day is
 * listed as one prefix instead of 24 hourly ones, so a long window costs few list calls.
 */
export function windowPrefixes(rate: RollingRate, start: Date, end: Date): WindowPrefix[] {
  if (!(start.getTime() < end.getTime())) return [];
  const first = floorTo(rate, start);
  let last = floorTo(rate, end);
  if (last.getTime() < end.getTime()) last = nextUnit(rate, last);
  const usable = levels.slice(0, depthOf(rate));
  const prefixes: WindowPrefix[] = [];
  let cursor = first;
  while (cursor.getTime() < last.getTime()) {
    let chosen: WindowPrefix | undefined;
    for (const level of usable) {
      if (floorTo(level, cursor).getTime() !== cursor.getTime()) continue;
      const unitEnd = nextUnit(level, cursor);
      if (unitEnd.getTime() > last.getTime()) continue;
      chosen = { prefix: `${rolledFolder(level, cursor)}/`, start: cursor, end: unitEnd };
      break;
    }
    // The finest level always fits, since `cursor` and `last` are aligned to it.
    prefixes.push(chosen!);
    cursor = chosen!.end;
  }
  return prefixes;
}
