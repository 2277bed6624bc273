import type { BlobTarget } from '../hub-event';

type RollingRate = BlobTarget['rollingRate'];

/**
 * The rolled time folder of an event: Year `yyyy`, Month `yyyy/MM`, Day `yyyy/MM/dd`, Hour `yyyy/MM/dd/HH`,
 * Minute `yyyy/MM/dd/HH/mm`, in UTC (SPEC §6). Azure ML monitoring lists `yyyy/MM/dd/HH` folders, which is why
 * Hour is the default.
 */
export function rolledFolder(time: Date | string, rate: RollingRate): string {
  const at = typeof time === 'string' ? new Date(time) : time;
  if (Number.isNaN(at.getTime())) throw new RangeError(`not a time: ${String(time)}`);
  const two = (n: number) => String(n).padStart(2, '0');
  const parts = [
    String(at.getUTCFullYear()).padStart(4, '0'),
    two(at.getUTCMonth() + 1),
    two(at.getUTCDate()),
    two(at.getUTCHours()),
    two(at.getUTCMinutes()),
  ];
  const depth = { Year: 1, Month: 2, Day: 3, Hour: 4, Minute: 5 }[rate];
  return parts.slice(0, depth).join('/');
}

/** The folder that holds one rolled period of one collection: `<path>/<rolled time>` inside the container. */
export function rolledFolderPath(target: BlobTarget, time: Date | string): string {
  return `${target.path}/${rolledFolder(time, target.rollingRate)}`;
}

/**
 * The file of a writer shard: `<instance>.jsonl` first, then `<instance>_1.jsonl`, `<instance>_2.jsonl`, ...
 * once a file is long enough that a new one should start.
 */
export function rolledFileName(instanceId: string, index: number): string {
  return index === 0 ? `${instanceId}.jsonl` : `${instanceId}_${index}.jsonl`;
}

/** The index of a rolled file of `instanceId`, or undefined for any other blob name in the folder. */
export function rolledFileIndex(name: string, instanceId: string): number | undefined {
  if (!name.startsWith(instanceId)) return undefined;
  const rest = name.slice(instanceId.length);
  if (rest === '.jsonl') return 0;
  const match = /^_([1-9]\d*)\.jsonl$/.exec(rest);
  return match ? Number(match[1]) : undefined;
}
