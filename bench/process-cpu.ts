import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU seconds (user + system) used so far, from /proc (clock ticks of 1/100 s): by a process, by one thread of it
 * (`thread`), by this process (`'self'`), or by every core whoever spent it (`'machine'`, the kernel's loopback
 * networking included). NaN off Linux, or once the process has exited.
 */
export function cpuSeconds(pid: number | undefined | 'self' | 'machine', thread?: number): number {
  try {
    if (pid === 'machine') {
      const [user, nice, system, , , irq, softirq, steal] = machineTicks();
      return (user! + nice! + system! + irq! + softirq! + steal!) / 100;
    }
    if (pid === 'self') {
      const usage = process.cpuUsage();
      return (usage.user + usage.system) / 1e6;
    }
    if (pid === undefined) return Number.NaN;
    const stat = readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** The machine's clock ticks so far, all cores, by kind: user, nice, system, idle, iowait, irq, softirq, steal, ... */
function machineTicks(): number[] {
  return readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
}

/** Clock ticks the hypervisor gave to other guests while this machine wanted to run ("steal"), and all ticks so far. */
export function stealTicks(): { steal: number; total: number } {
  try {
    const ticks = machineTicks();
    return { steal: ticks[7] ?? 0, total: ticks.reduce((a, b) => a + b, 0) };
  } catch {
    return { steal: Number.NaN, total: Number.NaN };
  }
}

/** CPU seconds used so far by each thread of a process, by thread id (empty off Linux). */
export function threadCpuSeconds(pid: number): Map<number, number> {
  const threads = new Map<number, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) threads.set(Number(tid), cpuSeconds(pid, Number(tid)));
  } catch {
    // not Linux, or gone
  }
  return threads;
}
