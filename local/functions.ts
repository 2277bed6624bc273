import type { EventHubFunctionOptions, HttpFunctionOptions, TimerFunctionOptions } from '@azure/functions';
import { appendOptions } from '../functions/append';
import { collectOptions } from '../functions/collect';
import { deploymentsOptions } from '../functions/deployments';
import { healthOptions } from '../functions/health';
import { getAssetOptions, listAssetsOptions, readAssetDataOptions, readJoinedOptions } from '../functions/monitor-api';
import { registerAssetsOptions } from '../functions/register-assets';

/**
 * The functions the local host serves: the very options objects that `functions/*.ts` pass to `app.http`,
 * `app.eventHub` and `app.timer`, under the same names. Outside the Functions host those `app.*` calls only
 * log, so `npm start` binds these instead; test/function-table.test.ts holds this table to the `app.*` calls.
 */
export const httpFunctions: Record<string, HttpFunctionOptions> = {
  health: healthOptions,
  collect: collectOptions,
  deployments: deploymentsOptions,
  'list-assets': listAssetsOptions,
  'get-asset': getAssetOptions,
  'read-asset-data': readAssetDataOptions,
  'read-joined': readJoinedOptions,
};

export const eventHubFunctions: Record<string, EventHubFunctionOptions> = {
  append: appendOptions,
};

export const timerFunctions: Record<string, TimerFunctionOptions> = {
  'register-assets': registerAssetsOptions,
};
