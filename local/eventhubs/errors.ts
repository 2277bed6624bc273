/**
 * The AMQP error conditions Event Hubs answers with. The SDK maps the condition (and, for not-found, the wording
 * of the description) to its own error codes, so both follow the real service.
 */
export interface AmqpError {
  condition: string;
  description: string;
}

export const conditions = {
  linkStolen: 'amqp:link:stolen',
  notFound: 'amqp:not-found',
  argumentOutOfRange: 'com.microsoft:argument-out-of-range',
  messageSizeExceeded: 'amqp:link:message-size-exceeded',
  resourceLimitExceeded: 'amqp:resource-limit-exceeded',
  notImplemented: 'amqp:not-implemented',
  internalError: 'amqp:internal-error',
} as const;

/** HTTP-like status codes that request/response links ($management) carry next to the condition. */
export const statusOf: Record<string, number> = {
  [conditions.notFound]: 404,
  [conditions.argumentOutOfRange]: 400,
  [conditions.notImplemented]: 501,
  [conditions.internalError]: 500,
};

/** An emulator failure that knows the AMQP condition to report. */
export class EmulatorError extends Error {
  readonly code: string;
  constructor(condition: string, description: string) {
    super(description);
    this.name = 'EmulatorError';
    this.code = condition;
  }
  toAmqp(): AmqpError {
    return { condition: this.code, description: this.message };
  }
}

export const errors = {
  hubNotFound: (endpoint: string, hub: string) =>
    new EmulatorError(conditions.notFound, `The messaging entity '${endpoint}${hub}' could not be found.`),
  consumerGroupNotFound: (endpoint: string, hub: string, group: string) =>
    new EmulatorError(
      conditions.notFound,
      `The messaging entity '${endpoint}${hub}/consumergroups/${group}' could not be found.`,
    ),
  partitionOutOfRange: (partition: string, ids: readonly string[]) =>
    new EmulatorError(
      conditions.argumentOutOfRange,
      `The specified partition '${partition}' is invalid for an EventHub partition sender or receiver. It should be one of: ${ids.join(', ')}.`,
    ),
  unknownAddress: (address: string) =>
    new EmulatorError(conditions.notFound, `The messaging entity '${address}' could not be found.`),
  badFilter: (filter: string) =>
    new EmulatorError(conditions.argumentOutOfRange, `The filter expression '${filter}' is not supported.`),
  sequenceOutOfRange: (requested: number, last: number) =>
    new EmulatorError(
      conditions.argumentOutOfRange,
      `The supplied sequence number '${requested}' is invalid. The last sequence number in the system is '${last}'.`,
    ),
  stolenByNewer: (link: string, epoch: number | undefined) =>
    new EmulatorError(
      conditions.linkStolen,
      `New receiver with higher epoch of '${epoch ?? 0}' is created hence current receiver '${link}' with lower epoch is getting disconnected.`,
    ),
  refusedLowerEpoch: (link: string, epoch: number | undefined, current: number) =>
    new EmulatorError(
      conditions.linkStolen,
      `Receiver '${link}' with epoch '${epoch ?? 'none'}' cannot be created: a receiver with higher epoch '${current}' already exists.`,
    ),
  tooManyReceivers: (max: number) =>
    new EmulatorError(
      conditions.resourceLimitExceeded,
      `Exceeded the maximum number of allowed receivers per partition in a consumer group which is ${max}.`,
    ),
  messageTooLarge: (size: number, max: number) =>
    new EmulatorError(
      conditions.messageSizeExceeded,
      `The received message (size ${size} bytes) exceeds the limit (${max} bytes) currently allowed on the link.`,
    ),
  unsupportedOperation: (operation: string, type: string) =>
    new EmulatorError(conditions.notImplemented, `The management operation '${operation}' on '${type}' is not supported.`),
};
