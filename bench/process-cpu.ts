import { readFileSync } from 'node:fs';

/**
 * CPU seconds (user + system) a process, or one thread of it, has used so far, from /proc (USER_HZ is 100);
 * NaN off Linux or once it has exited.
 */
export function cpuSeconds(pid: number | undefined, thread?: number): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}
