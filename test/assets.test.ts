import { BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type Azurite } from '../local/azurite';
import { CatalogStore } from '../shared/assets/catalog';
import type { CollectionSource } from '../shared/assets/collection-source';
import { registerAssets, type RegisterAssetsOptions } from '../shared/assets/register';
import { parseWorkspaceId } from '../shared/settings';
import { writeCollected } from './support/collected-data';
import { startFakeArm, staticCredential, type FakeArm } from './support/fake-arm';
import { startStorageLog, type StorageLog } from './support/storage-log';

const container = 'azureml-blobstore';
const workspace = parseWorkspaceId('/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/workspaces/ws-1');

function source(collection: string): CollectionSource {
  return {
    endpoint: 'ep',
    deployment: 'blue',
    collection,
    assetName: `ep-blue-${collection}`,
    version: '1',
    datastore: 'workspaceblobstore',
    container,
    path: `modelDataCollector/ep/blue/${collection}`,
    rollingRate: 'Hour',
  };
}
const sources = [source('model_inputs'), source('model_outputs'), source('request')];

let azurite: Azurite;
let log: StorageLog;
let arm: FakeArm;
let blobService: BlobServiceClient;
let catalog: CatalogStore;
let options: RegisterAssetsOptions;

async function blobStats(prefix: string): Promise<{ count: number; bytes: number }> {
  let count = 0;
  let bytes = 0;
  for await (const blob of blobService.getContainerClient(container).listBlobsFlat({ prefix })) {
    count += 1;
    bytes += blob.properties.contentLength ?? 0;
  }
  return { count, bytes };
}

beforeAll(async () => {
  azurite = await startAzurite();
  log = await startStorageLog(azurite.port);
  arm = await startFakeArm();
  blobService = BlobServiceClient.fromConnectionString(azurite.connectionString.replace(azurite.blobEndpoint, log.blobEndpoint));
  catalog = new CatalogStore(blobService.getContainerClient('mdc-system'));
  options = { blobService, catalog, sources, arm: { baseUrl: arm.url, workspace, credential: staticCredential('token-for-arm') } };
});

afterAll(async () => {
  await arm?.close();
  await log?.close();
  await azurite?.stop();
});

describe('register-assets', () => {
  it('registers nothing while no collection has data', async () => {
    const summary = await registerAssets(options);
    expect(summary.assets.map((a) => a.result)).toEqual(['no-data', 'no-data', 'no-data']);
    expect(await catalog.list()).toEqual([]);
    expect(arm.requests).toEqual([]);
  });

  it('registers exactly the collections with data, with their stats, in the catalog and the workspace', async () => {
    const inputs = source('model_inputs');
    const outputs = source('model_outputs');
    await writeCollected(blobService, { ...inputs, instance: '0' }, [
      { time: '2024-03-05T10:00:07Z', correlationid: 'c1', collection: 'model_inputs', data: [{ AGE: 54, LIMIT_BAL: 502970 }] },
    ]);
    await writeCollected(blobService, { ...inputs, instance: '0' }, [
      { time: '2024-03-05T11:10:00Z', correlationid: 'c2', collection: 'model_inputs', data: [{ AGE: 33, LIMIT_BAL: 1000, SEX: 'F' }] },
    ]);
    await writeCollected(blobService, { ...inputs, instance: '1' }, [
      { time: '2024-03-05T11:20:00Z', correlationid: 'c3', collection: 'model_inputs', data: [{ AGE: 41, LIMIT_BAL: 2000 }] },
      { time: '2024-03-05T11:42:13Z', correlationid: 'c4', collection: 'model_inputs', data: [{ AGE: 42, LIMIT_BAL: 3000 }] },
    ]);
    await writeCollected(blobService, outputs, [{ time: '2024-03-05T10:00:08Z', correlationid: 'c1', collection: 'model_outputs', data: [{ default: 1 }] }]);

    const summary = await registerAssets(options);
    expect(summary.assets).toEqual([
      { name: 'ep-blue-model_inputs', result: 'updated', workspace: 'registered' },
      { name: 'ep-blue-model_outputs', result: 'updated', workspace: 'registered' },
      { name: 'ep-blue-request', result: 'no-data' },
    ]);
    const assets = await catalog.list();
    expect(assets.map((a) => a.name)).toEqual(['ep-blue-model_inputs', 'ep-blue-model_outputs']);
    const stored = await blobStats(`${inputs.path}/`);
    expect(assets[0]).toMatchObject({
      name: 'ep-blue-model_inputs',
      version: '1',
      type: 'uri_folder',
      path: 'azureml://datastores/workspaceblobstore/paths/modelDataCollector/ep/blue/model_inputs',
      firstDataTime: '2024-03-05T10:00:07Z',
      lastDataTime: '2024-03-05T11:42:13Z',
      blobCount: 3,
      bytes: stored.bytes,
      azureml: { state: 'registered' },
    });
    expect(stored.count).toBe(3);
    expect([...assets[0]!.columns].sort()).toEqual(['AGE', 'LIMIT_BAL', 'SEX']);
    expect(assets[1]).toMatchObject({ firstDataTime: '2024-03-05T10:00:08Z', lastDataTime: '2024-03-05T10:00:08Z', blobCount: 1, columns: ['default'] });

    expect(arm.requests).toHaveLength(2);
    const [first] = arm.requests;
    expect(first).toMatchObject({
      method: 'PUT',
      path: '/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/workspaces/ws-1/data/ep-blue-model_inputs/versions/1',
      apiVersion: '2024-04-01',
      authorization: 'Bearer token-for-arm',
      body: { properties: { dataType: 'uri_folder', dataUri: 'azureml://datastores/workspaceblobstore/paths/modelDataCollector/ep/blue/model_inputs' } },
    });
    expect((first!.body as { properties: { tags: Record<string, string> } }).properties.tags['mdc.lastDataTime']).toBe('2024-03-05T11:42:13Z');
  });

  it('sends nothing to the workspace and lists only from the last folder when no data is new', async () => {
    arm.requests.length = 0;
    log.requests.length = 0;
    const summary = await registerAssets(options);
    expect(summary.assets.map((a) => a.result)).toEqual(['unchanged', 'unchanged', 'no-data']);
    expect(summary.workspaceRequests).toBe(0);
    expect(arm.requests).toEqual([]);
    const inputs = source('model_inputs').path;
    const flatListings = log.requests
      .filter((r) => r.url.searchParams.get('comp') === 'list' && !r.url.searchParams.has('delimiter'))
      .map((r) => r.url.searchParams.get('prefix'));
    // The hour already settled (10) is never listed again; the last one (11) is, to see blobs that grew.
    expect(flatListings).toContain(`${inputs}/2024/03/05/11/`);
    expect(flatListings).not.toContain(`${inputs}/2024/03/05/10/`);
    expect(flatListings).not.toContain(`${inputs}/`);
    // And no blob was downloaded to learn it.
    expect(log.requests.filter((r) => r.method === 'GET' && !r.url.searchParams.has('comp') && r.url.pathname.includes('/modelDataCollector/'))).toEqual([]);
  });

  it('moves the last data time when a new hour of data arrives', async () => {
    arm.requests.length = 0;
    const inputs = source('model_inputs');
    await writeCollected(blobService, inputs, [{ time: '2024-03-05T12:03:00Z', correlationid: 'c5', collection: 'model_inputs', data: [{ AGE: 20, LIMIT_BAL: 1, EDUCATION: 2 }] }]);
    const summary = await registerAssets(options);
    expect(summary.assets.map((a) => a.result)).toEqual(['updated', 'unchanged', 'no-data']);
    const asset = (await catalog.get('ep-blue-model_inputs'))!.value;
    expect(asset).toMatchObject({ firstDataTime: '2024-03-05T10:00:07Z', lastDataTime: '2024-03-05T12:03:00Z', blobCount: 4, bytes: (await blobStats(`${inputs.path}/`)).bytes });
    expect(asset.columns).toContain('EDUCATION');
    expect(arm.requests.map((r) => r.path.split('/data/')[1])).toEqual(['ep-blue-model_inputs/versions/1']);
  });

  it('keeps the catalog when the workspace answers 5xx, and retries on the next run', async () => {
    arm.requests.length = 0;
    arm.failNext(1, 503);
    await writeCollected(blobService, source('model_outputs'), [{ time: '2024-03-05T13:00:00Z', correlationid: 'c9', collection: 'model_outputs', data: [{ default: 0 }] }]);
    const failed = await registerAssets(options);
    expect(failed.assets[1]).toEqual({ name: 'ep-blue-model_outputs', result: 'updated', workspace: 'failed' });
    const afterFailure = (await catalog.get('ep-blue-model_outputs'))!.value;
    expect(afterFailure).toMatchObject({ lastDataTime: '2024-03-05T13:00:00Z', blobCount: 2, azureml: { state: 'failed', lastError: { status: 503 } } });

    const retried = await registerAssets(options);
    expect(retried.assets[1]).toEqual({ name: 'ep-blue-model_outputs', result: 'updated', workspace: 'registered' });
    expect(arm.requests.map((r) => r.path.split('/data/')[1])).toEqual(['ep-blue-model_outputs/versions/1', 'ep-blue-model_outputs/versions/1']);
    expect((await catalog.get('ep-blue-model_outputs'))!.value).toMatchObject({ lastDataTime: '2024-03-05T13:00:00Z', blobCount: 2, azureml: { state: 'registered' } });
    arm.requests.length = 0;
    await registerAssets(options);
    expect(arm.requests).toEqual([]);
  });
});
