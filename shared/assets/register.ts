import type { BlobServiceClient } from '@azure/storage-blob';
import { ArmError, dataVersionRequest, putDataVersion, type ArmClientOptions } from './arm';
import { CatalogConflictError, publicView, type CatalogRecord, type CatalogStore, type WorkspaceRegistration } from './catalog';
import { assetDataUri, isPayloadCollection, type CollectionSource } from './collection-source';
import { scanCollection, type ScanOptions } from './scan';

/**
 * One run of the assets timer: for every collection that has data, learn what is new, keep it in the catalog,
 * and upsert the asset in the Azure ML workspace when one is configured. A workspace failure is recorded on
 * the asset and retried next run; it never stops the catalog from being written.
 */

export interface RegisterAssetsOptions {
  blobService: BlobServiceClient;
  catalog: CatalogStore;
  sources: readonly CollectionSource[];
  /** Set when an Azure ML workspace is configured (MDC_AML_WORKSPACE_ID). */
  arm?: ArmClientOptions;
  now?: () => Date;
  abortSignal?: AbortSignal;
  scan?: ScanOptions;
}

export type AssetOutcome =
  | { name: string; result: 'no-data' | 'unchanged' | 'updated' | 'conflict'; workspace?: 'registered' | 'skipped' | 'failed' }
  | { name: string; result: 'error'; error: string };

export interface RegisterAssetsSummary {
  assets: AssetOutcome[];
  /** Requests sent to the workspace in this run. */
  workspaceRequests: number;
}

function sameContent(a: CatalogRecord, b: CatalogRecord): boolean {
  const strip = ({ updatedAt: _u, ...rest }: CatalogRecord) => rest;
  return JSON.stringify(strip(a)) === JSON.stringify(strip(b));
}

async function registerOne(options: RegisterAssetsOptions, source: CollectionSource, summary: RegisterAssetsSummary): Promise<AssetOutcome> {
  const now = (options.now ?? (() => new Date()))();
  const stored = await options.catalog.get(source.assetName, { abortSignal: options.abortSignal });
  const previous = stored?.value;
  const scan = await scanCollection(options.blobService, source, previous ? { stats: previous, ...(previous.progress ? { progress: previous.progress } : {}) } : undefined, {
    ...options.scan,
    ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
  });
  if (!previous && !scan.changed) return { name: source.assetName, result: 'no-data' };

  const record: CatalogRecord = {
    name: source.assetName,
    version: source.version,
    type: 'uri_folder',
    path: assetDataUri(source),
    endpoint: source.endpoint,
    deployment: source.deployment,
    collection: source.collection,
    logging: isPayloadCollection(source.collection) ? 'payload' : 'custom',
    rollingRate: source.rollingRate,
    ...scan.stats,
    updatedAt: now.toISOString(),
    ...(previous?.azureml ? { azureml: previous.azureml } : {}),
    ...(scan.progress ? { progress: scan.progress } : {}),
  };

  let workspace: 'registered' | 'skipped' | 'failed' | undefined;
  if (options.arm) {
    const request = dataVersionRequest(options.arm.baseUrl, options.arm.workspace, publicView(record));
    const known = previous?.azureml;
    if (known?.state === 'registered' && known.registeredHash === request.hash) {
      workspace = 'skipped';
    } else {
      summary.workspaceRequests += 1;
      let registration: WorkspaceRegistration;
      try {
        await putDataVersion(options.arm, request, options.abortSignal);
        registration = { state: 'registered', registeredHash: request.hash, registeredAt: now.toISOString() };
        workspace = 'registered';
      } catch (error) {
        if (!(error instanceof ArmError)) throw error;
        // Keep the last accepted hash, so that what the workspace holds is still known.
        registration = {
          ...(known ?? {}),
          state: 'failed',
          lastError: { ...(error.status !== undefined ? { status: error.status } : {}), message: error.message, at: now.toISOString() },
        };
        workspace = 'failed';
      }
      record.azureml = registration;
    }
  }

  if (previous && sameContent(previous, record)) return { name: source.assetName, result: 'unchanged', ...(workspace ? { workspace } : {}) };
  try {
    await options.catalog.put(record, stored?.etag, { abortSignal: options.abortSignal });
  } catch (error) {
    // Another run wrote this asset meanwhile; it holds at least as much, and the next run catches up.
    if (error instanceof CatalogConflictError) return { name: source.assetName, result: 'conflict' };
    throw error;
  }
  return { name: source.assetName, result: 'updated', ...(workspace ? { workspace } : {}) };
}

/** Runs over every source; one failing collection does not stop the others (its error is in the summary). */
export async function registerAssets(options: RegisterAssetsOptions): Promise<RegisterAssetsSummary> {
  const summary: RegisterAssetsSummary = { assets: [], workspaceRequests: 0 };
  for (const source of options.sources) {
    options.abortSignal?.throwIfAborted();
    try {
      summary.assets.push(await registerOne(options, source, summary));
    } catch (error) {
      if (options.abortSignal?.aborted) throw error;
      summary.assets.push({ name: source.assetName, result: 'error', error: error instanceof Error ? error.message : String(error) });
    }
  }
  return summary;
}
