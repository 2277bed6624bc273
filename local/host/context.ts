import { randomUUID } from 'node:crypto';
import { InvocationContext, type FunctionTrigger, type RetryContext, type TriggerMetadata } from '@azure/functions';
import type { HostLog } from './log';

export interface ContextInit {
  functionName: string;
  trigger: FunctionTrigger;
  log: HostLog;
  triggerMetadata?: TriggerMetadata;
  retryContext?: RetryContext;
}

/** An `InvocationContext` like the worker builds: a fresh invocation id, the trigger, logs to the host log. */
export function invocationContext(init: ContextInit): InvocationContext {
  const invocationId = randomUUID();
  return new InvocationContext({
    invocationId,
    functionName: init.functionName,
    ...(init.triggerMetadata ? { triggerMetadata: init.triggerMetadata } : {}),
    ...(init.retryContext ? { retryContext: init.retryContext } : {}),
    options: { trigger: init.trigger },
    logHandler: (level, ...args) => init.log(level, `Functions.${init.functionName}`, ...args),
  });
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
