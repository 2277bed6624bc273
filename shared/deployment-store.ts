import { RestError, type ContainerClient } from '@azure/storage-blob';
import { dataBlobService } from './clients';
import type { DataCollectorConfig } from './deployment-config';
import { CollectorError } from './http-errors';
import type { Settings } from './settings';
import { hashesOf, hashKey, issueKeys, verifyKey, type IssuedKeys, type KeyHashes, type KeyKind } from './keys';

/**
 * Registered deployments, kept as JSON blobs in the system container:
 * - `deployments/<endpoint>/<deployment>.json`: the configuration and the hashes of its keys;
 * - `keys/<sha256 of key>.json`: which deployment a key belongs to, so a key of another deployment is told
 *   apart (403) from a wrong one (401) without reading every deployment.
 */
export interface DeploymentRecord {
  endpoint: string;
  deployment: string;
  config: DataCollectorConfig;
  keyHashes: KeyHashes;
  createdAt: string;
  updatedAt: string;
}

/** A deployment as the admin API shows it: never its key hashes. */
export type DeploymentView = Omit<DeploymentRecord, 'keyHashes'>;

export function viewOf(record: DeploymentRecord): DeploymentView {
  const { keyHashes: _hidden, ...view } = record;
  return view;
}

export interface KeyOwner {
  endpoint: string;
  deployment: string;
  kind: KeyKind;
}

export interface PutResult {
  record: DeploymentRecord;
  created: boolean;
  /** Present when keys were issued (creation or rotation): the only time they are ever shown. */
  keys?: IssuedKeys;
}

export interface DeploymentStoreOptions {
  /** How long a read configuration is reused (MDC_CONFIG_CACHE_MS). Writes through this store clear it at once. */
  cacheMs?: number;
  now?: () => number;
}

export interface StoreOperationOptions {
  abortSignal?: AbortSignal;
}

interface Cached<T> {
  value: Promise<T>;
  expires: number;
}

const deploymentsPrefix = 'deployments/';

export function deploymentBlobName(endpoint: string, deployment: string): string {
  return `${deploymentsPrefix}${endpoint}/${deployment}.json`;
}

function keyBlobName(hash: string): string {
  return `keys/${hash}.json`;
}

function isStatus(error: unknown, ...statuses: number[]): boolean {
  return error instanceof RestError && error.statusCode !== undefined && statuses.includes(error.statusCode);
}

export class DeploymentStore {
  private readonly cacheMs: number;
  private readonly now: () => number;
  private readonly records = new Map<string, Cached<DeploymentRecord | undefined>>();
  private readonly owners = new Map<string, Cached<KeyOwner | undefined>>();
  private containerReady: Promise<unknown> | undefined;

  constructor(
    readonly container: ContainerClient,
    options: DeploymentStoreOptions = {},
  ) {
    this.cacheMs = options.cacheMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** The deployment's record, from the cache when it is fresh. Concurrent callers share one read. */
  get(endpoint: string, deployment: string, options: StoreOperationOptions = {}): Promise<DeploymentRecord | undefined> {
    const name = deploymentBlobName(endpoint, deployment);
    return this.cached(this.records, name, async () => (await this.read<DeploymentRecord>(name, options))?.value);
  }

  async list(options: StoreOperationOptions = {}): Promise<DeploymentRecord[]> {
    const found: DeploymentRecord[] = [];
    try {
      for await (const blob of this.container.listBlobsFlat({ prefix: deploymentsPrefix, abortSignal: options.abortSignal })) {
        const record = await this.read<DeploymentRecord>(blob.name, options);
        if (record) found.push(record.value);
      }
    } catch (error) {
      if (isStatus(error, 404)) return [];
      throw error;
    }
    return found.sort((a, b) => `${a.endpoint}/${a.deployment}`.localeCompare(`${b.endpoint}/${b.deployment}`));
  }

  /** Creates the deployment with new keys, or updates its configuration (new keys only when `rotateKeys`). */
  async put(
    endpoint: string,
    deployment: string,
    config: DataCollectorConfig,
    options: StoreOperationOptions & { rotateKeys?: boolean } = {},
  ): Promise<PutResult> {
    await this.ensureContainer(options);
    const name = deploymentBlobName(endpoint, deployment);
    const existing = await this.read<DeploymentRecord>(name, options);
    const at = new Date(this.now()).toISOString();
    const keys = !existing || options.rotateKeys ? issueKeys() : undefined;
    const record: DeploymentRecord = {
      endpoint,
      deployment,
      config,
      keyHashes: keys ? hashesOf(keys) : existing!.value.keyHashes,
      createdAt: existing?.value.createdAt ?? at,
      updatedAt: at,
    };
    // Index the new keys before they can be handed out, so a key never works without its owner being known.
    if (keys) {
      await this.writeJson(keyBlobName(record.keyHashes.ingest), { endpoint, deployment, kind: 'ingest' } satisfies KeyOwner, options);
      await this.writeJson(keyBlobName(record.keyHashes.read), { endpoint, deployment, kind: 'read' } satisfies KeyOwner, options);
    }
    try {
      await this.writeJson(name, record, {
        ...options,
        conditions: existing ? { ifMatch: existing.etag } : { ifNoneMatch: '*' },
      });
    } catch (error) {
      if (isStatus(error, 409, 412)) {
        throw new CollectorError(409, 'Conflict', `deployment ${endpoint}/${deployment} was changed by another request at the same time; send the PUT again`);
      }
      throw error;
    } finally {
      this.forget(name, existing?.value.keyHashes);
    }
    if (keys && existing) await this.deleteKeyIndex(existing.value.keyHashes, options);
    return { record, created: !existing, ...(keys ? { keys } : {}) };
  }

  /** Stops collection: the configuration and its keys go, the collected data stays. False when there was none. */
  async delete(endpoint: string, deployment: string, options: StoreOperationOptions = {}): Promise<boolean> {
    const name = deploymentBlobName(endpoint, deployment);
    const existing = await this.read<DeploymentRecord>(name, options);
    if (!existing) return false;
    try {
      await this.container.getBlockBlobClient(name).delete({ abortSignal: options.abortSignal });
    } catch (error) {
      if (!isStatus(error, 404)) throw error;
    }
    this.forget(name, existing.value.keyHashes);
    await this.deleteKeyIndex(existing.value.keyHashes, options);
    return true;
  }

  /** Which deployment a key belongs to, if any (for telling a key of another deployment from a wrong key). */
  keyOwner(presented: string, options: StoreOperationOptions = {}): Promise<KeyOwner | undefined> {
    const hash = hashKey(presented);
    return this.cached(this.owners, hash, async () => (await this.read<KeyOwner>(keyBlobName(hash), options))?.value);
  }

  /**
   * Checks a presented key against a deployment: the record when it is that deployment's key of `kind`, else a
   * 401 (missing or unknown key), 403 (another deployment's key, or the other kind) or 404 (no such deployment).
   */
  async authorize(
    kind: KeyKind,
    endpoint: string,
    deployment: string,
    presented: string | null | undefined,
    options: StoreOperationOptions = {},
  ): Promise<DeploymentRecord> {
    if (!presented) throw new CollectorError(401, 'MissingKey', `send the deployment's ${kind} key in the x-mdc-key header`, { path: 'x-mdc-key' });
    const record = await this.get(endpoint, deployment, options);
    if (!record) throw new CollectorError(404, 'DeploymentNotFound', `deployment ${endpoint}/${deployment} is not registered`);
    if (verifyKey(kind, record.keyHashes, presented)) return record;
    const other: KeyKind = kind === 'ingest' ? 'read' : 'ingest';
    if (verifyKey(other, record.keyHashes, presented)) {
      throw new CollectorError(403, 'WrongKeyKind', `this is the deployment's ${other} key; ${kind === 'ingest' ? 'collecting' : 'reading'} needs its ${kind} key`, {
        path: 'x-mdc-key',
      });
    }
    const owner = await this.keyOwner(presented, options);
    if (owner && (owner.endpoint !== endpoint || owner.deployment !== deployment)) {
      throw new CollectorError(403, 'KeyOfAnotherDeployment', `this key belongs to another deployment, not to ${endpoint}/${deployment}`, {
        path: 'x-mdc-key',
      });
    }
    throw new CollectorError(401, 'InvalidKey', `the key is not valid for deployment ${endpoint}/${deployment}`, { path: 'x-mdc-key' });
  }

  private cached<T>(cache: Map<string, Cached<T>>, key: string, load: () => Promise<T>): Promise<T> {
    const now = this.now();
    const hit = cache.get(key);
    if (hit && hit.expires > now) return hit.value;
    const value = load();
    cache.set(key, { value, expires: now + this.cacheMs });
    // A failed read is not remembered: the next request tries again.
    value.catch(() => {
      if (cache.get(key)?.value === value) cache.delete(key);
    });
    if (cache.size > 10_000) this.prune(cache, now);
    return value;
  }

  private prune<T>(cache: Map<string, Cached<T>>, now: number): void {
    for (const [key, entry] of cache) if (entry.expires <= now) cache.delete(key);
  }

  private forget(name: string, hashes?: KeyHashes): void {
    this.records.delete(name);
    if (hashes) {
      this.owners.delete(hashes.ingest);
      this.owners.delete(hashes.read);
    }
  }

  private async deleteKeyIndex(hashes: KeyHashes, options: StoreOperationOptions): Promise<void> {
    for (const hash of [hashes.ingest, hashes.read]) {
      this.owners.delete(hash);
      await this.container.getBlockBlobClient(keyBlobName(hash)).deleteIfExists({ abortSignal: options.abortSignal });
    }
  }

  private async read<T>(name: string, options: StoreOperationOptions): Promise<{ value: T; etag: string } | undefined> {
    try {
      const blob = this.container.getBlockBlobClient(name);
      const response = await blob.download(0, undefined, { abortSignal: options.abortSignal });
      const body = await streamToText(response.readableStreamBody);
      return { value: JSON.parse(body) as T, etag: response.etag ?? '' };
    } catch (error) {
      if (isStatus(error, 404)) return undefined;
      throw error;
    }
  }

  private async writeJson(
    name: string,
    value: unknown,
    options: StoreOperationOptions & { conditions?: { ifMatch?: string; ifNoneMatch?: string } },
  ): Promise<void> {
    const body = JSON.stringify(value);
    await this.container.getBlockBlobClient(name).upload(body, Buffer.byteLength(body), {
      abortSignal: options.abortSignal,
      blobHTTPHeaders: { blobContentType: 'application/json' },
      ...(options.conditions ? { conditions: options.conditions } : {}),
    });
  }

  private ensureContainer(options: StoreOperationOptions): Promise<unknown> {
    this.containerReady ??= this.container.createIfNotExists({ abortSignal: options.abortSignal }).catch((error: unknown) => {
      this.containerReady = undefined;
      throw error;
    });
    return this.containerReady;
  }
}

async function streamToText(stream: NodeJS.ReadableStream | undefined): Promise<string> {
  if (!stream) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

let shared: { settings: Settings; store: DeploymentStore } | undefined;

/** The process-wide store over the system container, so that its cache serves every request. */
export function deploymentStore(settings: Settings): DeploymentStore {
  if (shared?.settings !== settings) {
    const container = dataBlobService(settings).getContainerClient(settings.systemContainer);
    shared = { settings, store: new DeploymentStore(container, { cacheMs: settings.configCacheMs }) };
  }
  return shared.store;
}
