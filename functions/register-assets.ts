import { app, type InvocationContext, type Timer, type TimerFunctionOptions } from '@azure/functions';
import type { TokenCredential } from '@azure/identity';
import { CatalogStore } from '../shared/assets/catalog';
import { registerAssets } from '../shared/assets/register';
import { sourcesOf } from '../shared/assets/sources';
import { credentialFor, dataBlobService } from '../shared/clients';
import { deploymentStore } from '../shared/deployment-store';
import { getSettings } from '../shared/settings';

/**
 * Timer (MDC_ASSETS_SCHEDULE, every 5 minutes by default): registers or updates the data asset of every
 * collection that has data (SPEC §7), in the catalog and, when MDC_AML_WORKSPACE_ID is set, in Azure ML.
 */

let armCredential: TokenCredential | undefined;
function workspaceCredential(): TokenCredential {
  const storage = getSettings().storage;
  // The identity that reads the data registers it: the app's managed identity in Azure.
  armCredential ??= credentialFor(storage.kind === 'identity' ? storage : {});
  return armCredential;
}

export async function registerAssetsTimer(_timer: Timer, context: InvocationContext): Promise<void> {
  const settings = getSettings();
  const blobService = dataBlobService(settings);
  const summary = await registerAssets({
    blobService,
    catalog: new CatalogStore(blobService.getContainerClient(settings.systemContainer)),
    sources: sourcesOf(await deploymentStore(settings).list(), settings.datastores),
    ...(settings.workspace ? { arm: { baseUrl: settings.armBaseUrl, workspace: settings.workspace, credential: workspaceCredential() } } : {}),
  });
  const failed = summary.assets.filter((a) => a.result === 'error' || ('workspace' in a && a.workspace === 'failed'));
  context.log(`register-assets: ${summary.assets.length} collections, ${summary.workspaceRequests} workspace requests, ${failed.length} failed`);
  for (const asset of failed) context.warn(`register-assets: ${asset.name}: ${JSON.stringify(asset)}`);
  // Storage errors fail the run so they show in monitoring; workspace errors are retried by the next run.
  const broken = summary.assets.filter((a) => a.result === 'error');
  if (broken.length > 0) throw new Error(`register-assets could not scan ${broken.map((a) => a.name).join(', ')}`);
}

export const registerAssetsOptions: TimerFunctionOptions = {
  schedule: '%MDC_ASSETS_SCHEDULE%',
  handler: registerAssetsTimer,
};

app.timer('register-assets', registerAssetsOptions);
