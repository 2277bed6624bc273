export { Collector, sdkVersion, type CollectorOptions } from './collector';
export { BasicCorrelationContext, type CorrelationContext } from './context';
export { CollectorError, type CollectorErrorCode } from './errors';
export { deploymentUrl, envNames } from './config';
export type { Records, Columns } from './data';
export type { RetryOptions } from './transport';
