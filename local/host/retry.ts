import type { Duration, RetryOptions } from '@azure/functions';

export function durationMs(value: Duration | number | undefined): number {
  if (value === undefined) return 0;
  if (typeof value === 'number') return value;
  return ((value.hours ?? 0) * 3_600 + (value.minutes ?? 0) * 60 + (value.seconds ?? 0)) * 1_000 + (value.milliseconds ?? 0);
}

/** True while the policy allows another try after `retryCount` retries (-1 retries for ever). */
export function mayRetry(retry: RetryOptions | undefined, retryCount: number): boolean {
  if (!retry) return false;
  return retry.maxRetryCount === -1 || retryCount < retry.maxRetryCount;
}

/**
 * The wait before retry number `retry` (1 for the first). Exponential back-off doubles from the minimum up to
 * the maximum, with a little randomness so that retries of many partitions do not line up.
 */
export function retryDelayMs(policy: RetryOptions, retry: number): number {
  if (policy.strategy === 'fixedDelay') return durationMs(policy.delayInterval);
  const min = durationMs(policy.minimumInterval);
  const max = Math.max(min, durationMs(policy.maximumInterval));
  const doubled = min * 2 ** Math.min(retry - 1, 30);
  const jittered = doubled * (0.8 + Math.random() * 0.4);
  return Math.min(max, Math.max(min, jittered));
}

/** Waits, or resolves false at once when the signal aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Waits for `work`, but rejects once `ms` have passed without it settling. */
export function bounded(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up after ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
