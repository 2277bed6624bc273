import { BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type Azurite } from '../local/azurite';
import { parseDeploymentConfig } from '../shared/deployment-config';
import { DeploymentStore, viewOf } from '../shared/deployment-store';
import { CollectorError } from '../shared/http-errors';
import { hashesOf, hashKey, issueKeys, verifyKey } from '../shared/keys';

const datastores = { workspaceblobstore: 'azureml-blobstore' };
const config = (endpoint: string, deployment: string, rate = 1) =>
  parseDeploymentConfig(`data_collector:\n  sampling_rate: ${rate}\n  collections:\n    model_inputs:\n      enabled: 'True'\n`, { endpoint, deployment, datastores });

async function refusal(promise: Promise<unknown>): Promise<CollectorError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof CollectorError) return error;
    throw error;
  }
  throw new Error('the key was accepted');
}

async function blobText(service: BlobServiceClient, name: string): Promise<string> {
  return (await service.getContainerClient('mdc-system').getBlockBlobClient(name).downloadToBuffer()).toString('utf8');
}

describe('deployment store (Azurite)', () => {
  let azurite: Azurite;
  let service: BlobServiceClient;
  let store: DeploymentStore;

  beforeAll(async () => {
    azurite = await startAzurite();
    service = BlobServiceClient.fromConnectionString(azurite.connectionString);
    store = new DeploymentStore(service.getContainerClient('mdc-system'), { cacheMs: 60_000 });
  });
  afterAll(async () => {
    await azurite?.stop();
  });

  it('creates a deployment with keys shown once and stored only as hashes', async () => {
    const created = await store.put('credit-ep', 'blue', config('credit-ep', 'blue'));
    expect(created.created).toBe(true);
    const keys = created.keys!;
    expect(keys.ingestKey).toMatch(/^mdc_ingest_[A-Za-z0-9_-]{43}$/);
    expect(keys.readKey).toMatch(/^mdc_read_[A-Za-z0-9_-]{43}$/);

    const stored = await blobText(service, 'deployments/credit-ep/blue.json');
    expect(stored).not.toContain(keys.ingestKey);
    expect(stored).not.toContain(keys.readKey);
    expect(stored).toContain(hashKey(keys.ingestKey));
    expect(JSON.parse(await blobText(service, `keys/${hashKey(keys.readKey)}.json`))).toEqual({ endpoint: 'credit-ep', deployment: 'blue', kind: 'read' });

    const record = (await store.get('credit-ep', 'blue'))!;
    expect(verifyKey('ingest', record.keyHashes, keys.ingestKey)).toBe(true);
    expect(verifyKey('ingest', record.keyHashes, keys.readKey)).toBe(false);
    expect(JSON.stringify(viewOf(record))).not.toContain(record.keyHashes.ingest);
  });

  it('checks a key that has verified before against the stored hashes again, each time', async () => {
    const keys = issueKeys();
    const other = issueKeys();
    for (let i = 0; i < 2; i++) {
      expect(verifyKey('ingest', hashesOf(keys), keys.ingestKey)).toBe(true);
      expect(verifyKey('read', hashesOf(keys), keys.ingestKey)).toBe(false);
      expect(verifyKey('ingest', hashesOf(other), keys.ingestKey)).toBe(false);
    }
  });

  it('updates without new keys, rotates on request, and lists what it holds', async () => {
    const first = (await store.put('rot-ep', 'blue', config('rot-ep', 'blue'))).keys!;
    const updated = await store.put('rot-ep', 'blue', config('rot-ep', 'blue', 0.5));
    expect(updated).toMatchObject({ created: false });
    expect(updated.keys).toBeUndefined();
    expect((await store.get('rot-ep', 'blue'))!.config.sampling_rate).toBe(0.5);
    expect((await store.authorize('ingest', 'rot-ep', 'blue', first.ingestKey)).deployment).toBe('blue');

    const rotated = (await store.put('rot-ep', 'blue', config('rot-ep', 'blue'), { rotateKeys: true })).keys!;
    expect(rotated.ingestKey).not.toBe(first.ingestKey);
    expect((await refusal(store.authorize('ingest', 'rot-ep', 'blue', first.ingestKey))).status).toBe(401);
    expect((await store.authorize('ingest', 'rot-ep', 'blue', rotated.ingestKey)).endpoint).toBe('rot-ep');

    const listed = (await store.list()).map((r) => `${r.endpoint}/${r.deployment}`);
    expect(listed).toEqual(expect.arrayContaining(['credit-ep/blue', 'rot-ep/blue']));
  });

  it('answers 401, 403 and 404 as SPEC §4 says', async () => {
    const a = (await store.put('auth-ep', 'one', config('auth-ep', 'one'))).keys!;
    const b = (await store.put('auth-ep', 'two', config('auth-ep', 'two'))).keys!;
    expect(await refusal(store.authorize('ingest', 'auth-ep', 'one', undefined))).toMatchObject({ status: 401, code: 'MissingKey' });
    expect(await refusal(store.authorize('ingest', 'auth-ep', 'one', 'mdc_ingest_wrong'))).toMatchObject({ status: 401, code: 'InvalidKey' });
    expect(await refusal(store.authorize('ingest', 'auth-ep', 'one', b.ingestKey))).toMatchObject({ status: 403, code: 'KeyOfAnotherDeployment' });
    expect(await refusal(store.authorize('ingest', 'auth-ep', 'one', a.readKey))).toMatchObject({ status: 403, code: 'WrongKeyKind' });
    expect(await refusal(store.authorize('ingest', 'auth-ep', 'nope', a.ingestKey))).toMatchObject({ status: 404, code: 'DeploymentNotFound' });
    expect((await store.authorize('read', 'auth-ep', 'one', a.readKey)).deployment).toBe('one');
  });

  it('deletes the configuration and its keys, and keeps nothing cached', async () => {
    const keys = (await store.put('del-ep', 'blue', config('del-ep', 'blue'))).keys!;
    await store.authorize('ingest', 'del-ep', 'blue', keys.ingestKey);
    expect(await store.delete('del-ep', 'blue')).toBe(true);
    expect(await store.get('del-ep', 'blue')).toBeUndefined();
    expect(await store.keyOwner(keys.ingestKey)).toBeUndefined();
    expect(await store.delete('del-ep', 'blue')).toBe(false);
    expect((await refusal(store.authorize('ingest', 'del-ep', 'blue', keys.ingestKey))).status).toBe(404);
  });

  it('serves a configuration from its cache until it expires', async () => {
    let now = 1_000;
    const cached = new DeploymentStore(service.getContainerClient('mdc-system'), { cacheMs: 5_000, now: () => now });
    await cached.put('cache-ep', 'blue', config('cache-ep', 'blue'));
    expect((await cached.get('cache-ep', 'blue'))!.config.sampling_rate).toBe(1);
    // Another instance changes it: this one keeps its copy until the cache expires.
    await store.put('cache-ep', 'blue', config('cache-ep', 'blue', 0.25));
    expect((await cached.get('cache-ep', 'blue'))!.config.sampling_rate).toBe(1);
    now += 5_001;
    expect((await cached.get('cache-ep', 'blue'))!.config.sampling_rate).toBe(0.25);
  });
});
