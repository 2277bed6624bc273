import { Cron } from 'croner';
import type { FunctionTrigger, Timer, TimerFunctionOptions } from '@azure/functions';
import { resolveAppSettings } from './app-settings';
import { errorText, invocationContext } from './context';
import type { HostLog } from './log';
import { mayRetry, pause, retryDelayMs } from './retry';

export interface TimerTriggerOptions {
  name: string;
  options: TimerFunctionOptions;
  log: HostLog;
  env?: Record<string, string | undefined>;
}

export interface TimerTrigger {
  readonly schedule: string;
  nextRun(): Date | null;
  /** Runs the function now with a Timer, as `POST /admin/functions/{name}` does; rejects when it throws. */
  invoke(): Promise<void>;
  close(): Promise<void>;
}

export class ScheduleError extends Error {
  readonly code = 'InvalidSchedule';
}

/**
 * Runs a timer function on its six-field NCRONTAB schedule (`{second} {minute} {hour} {day} {month}
 * {day-of-week}`, UTC, `%SETTING%` resolved) as the Functions host does. A run that is still going when the
 * next one is due makes that one wait rather than overlap, as the host's singleton lock does.
 */
export function startTimerTrigger(init: TimerTriggerOptions): TimerTrigger {
  const { name, options, log } = init;
  const source = `Functions.${name}`;
  const schedule = resolveAppSettings(options.schedule, init.env ?? process.env).trim();
  if (schedule.split(/\s+/).length !== 6) {
    throw new ScheduleError(`${name}: schedule "${schedule}" must have six fields: second minute hour day month day-of-week`);
  }
  const trigger: FunctionTrigger = { type: 'timerTrigger', name: 'myTimer', schedule: options.schedule };
  const stopping = new AbortController();
  let last: Date | undefined;
  let queue: Promise<void> = Promise.resolve();

  const runOnce = async (scheduledAt: Date | undefined): Promise<void> => {
    const started = new Date();
    const timer: Timer = {
      // Late because the previous run overran (or the process stalled), as the host reports it.
      isPastDue: scheduledAt !== undefined && started.getTime() - scheduledAt.getTime() > 1_000,
      schedule: { adjustForDST: true },
      scheduleStatus: {
        last: (last ?? new Date(0)).toISOString(),
        next: (job.nextRun() ?? started).toISOString(),
        lastUpdated: started.toISOString(),
      },
    };
    last = started;
    for (let retryCount = 0; ; retryCount++) {
      const context = invocationContext({
        functionName: name,
        trigger,
        log,
        ...(options.retry ? { retryContext: { retryCount, maxRetryCount: options.retry.maxRetryCount } } : {}),
      });
      try {
        await options.handler(timer, context);
        return;
      } catch (error) {
        log('error', source, `Executed (Failed, Id=${context.invocationId}, retry ${retryCount}):`, errorText(error));
        if (!mayRetry(options.retry, retryCount)) throw error;
        if (!(await pause(retryDelayMs(options.retry!, retryCount + 1), stopping.signal))) throw error;
      }
    }
  };

  /** Runs one after another; the returned promise settles with this run. */
  const enqueue = (scheduledAt: Date | undefined): Promise<void> => {
    const run = queue.then(() => (stopping.signal.aborted ? undefined : runOnce(scheduledAt)));
    queue = run.catch(() => undefined);
    return run;
  };

  let job: Cron;
  try {
    job = new Cron(schedule, { mode: '6-part', timezone: 'Etc/UTC', unref: true }, () => {
      enqueue(new Date()).catch(() => undefined);
    });
  } catch (error) {
    throw new ScheduleError(`${name}: schedule "${schedule}" is not valid NCRONTAB: ${errorText(error)}`);
  }
  if (options.runOnStartup) enqueue(undefined).catch(() => undefined);

  return {
    schedule,
    nextRun: () => job.nextRun(),
    invoke: () => enqueue(undefined),
    async close() {
      job.stop();
      stopping.abort();
      await queue;
    },
  };
}
