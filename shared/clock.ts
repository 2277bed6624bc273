/**
 * The time the collector stamps on events. Tests set it so that rolling across an hour, a day or a month is
 * tested without waiting for one to pass.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

let current: Clock = systemClock;

export function clock(): Clock {
  return current;
}

/** Replaces the clock of this process; `setClock(systemClock)` restores it. */
export function setClock(next: Clock): void {
  current = next;
}

/** A clock that stands at `start` and moves only when told. */
export function manualClock(start: Date | string): Clock & { set(time: Date | string): void; advance(ms: number): void } {
  let time = new Date(start).getTime();
  return {
    now: () => new Date(time),
    set: (next) => {
      time = new Date(next).getTime();
    },
    advance: (ms) => {
      time += ms;
    },
  };
}
