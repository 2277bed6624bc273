import type { Readable } from 'node:stream';
import type { BlobServiceClient } from '@azure/storage-blob';
import { publicView, type CatalogRecord, type CatalogStore, type DataAsset } from '../assets/catalog';
import type { CollectionSource } from '../assets/collection-source';
import { sourcesOf } from '../assets/sources';
import type { DeploymentStore } from '../deployment-store';
import { CollectorError, quote } from '../http-errors';
import { isAdminKey } from '../keys';
import { checkDeploymentName } from '../names';
import { contentTypes, encodeRows, inBatches, primedStream } from './encode';
import { joinedRows } from './join';
import { parseReadQuery } from './query';
import { windowJsonl, windowRowBatches } from './window-reader';

/**
 * The read API for monitors (SPEC §8), without Functions: the catalog, the rows of an asset in a window, and
 * inputs joined to outputs. A read key reads its own deployment's assets; the admin key reads everything.
 */

export interface MonitorServiceOptions {
  blobService: BlobServiceClient;
  catalog: CatalogStore;
  deployments: DeploymentStore;
  /** MDC_DATASTORES. */
  datastores: Record<string, string>;
  /** MDC_ADMIN_KEY. */
  adminKey: string;
}

/** The keys a request presents: a deployment's (`x-mdc-key`) and/or the admin key (`x-mdc-admin-key`). */
export interface Presented {
  key?: string | null;
  adminKey?: string | null;
}

export interface RowStream {
  contentType: string;
  body: Readable;
}

const missingKey = () =>
  new CollectorError(401, 'MissingKey', "send the deployment's read key in the x-mdc-key header (or the admin key in x-mdc-admin-key)", {
    path: 'x-mdc-key',
  });

export class MonitorService {
  constructor(private readonly options: MonitorServiceOptions) {}

  /** True for the admin key; throws 401 when no key at all, or a wrong admin key, is presented. */
  private isAdmin(presented: Presented): boolean {
    if (presented.adminKey) {
      if (isAdminKey(this.options.adminKey, presented.adminKey)) return true;
      throw new CollectorError(401, 'InvalidKey', 'the admin key is not valid', { path: 'x-mdc-admin-key' });
    }
    if (!presented.key) throw missingKey();
    return isAdminKey(this.options.adminKey, presented.key);
  }

  private async authorize(presented: Presented, endpoint: string, deployment: string, signal?: AbortSignal): Promise<void> {
    if (this.isAdmin(presented)) return;
    await this.options.deployments.authorize('read', endpoint, deployment, presented.key, signal ? { abortSignal: signal } : {});
  }

  async listAssets(presented: Presented, signal?: AbortSignal): Promise<DataAsset[]> {
    const admin = this.isAdmin(presented);
    let owner: { endpoint: string; deployment: string } | undefined;
    if (!admin) {
      const found = await this.options.deployments.keyOwner(presented.key!, signal ? { abortSignal: signal } : {});
      if (!found) throw new CollectorError(401, 'InvalidKey', 'the key is not a read key of any deployment', { path: 'x-mdc-key' });
      if (found.kind !== 'read') throw new CollectorError(403, 'WrongKeyKind', 'this is an ingest key; reading needs the read key', { path: 'x-mdc-key' });
      owner = found;
    }
    const records = await this.options.catalog.list(signal ? { abortSignal: signal } : {});
    return records.filter((r) => !owner || (r.endpoint === owner.endpoint && r.deployment === owner.deployment)).map(publicView);
  }

  /**
   * The asset and where its data is. The catalog knows assets the timer has seen; an asset registered since
   * (no run yet) is found in the deployments, so a monitor can read data before the first run.
   */
  private async resolve(name: string, presented: Presented, signal?: AbortSignal): Promise<{ record?: CatalogRecord; source?: CollectionSource }> {
    // Refuse a keyless caller before saying whether an asset exists.
    this.isAdmin(presented);
    const opts = signal ? { abortSignal: signal } : {};
    const record = (await this.options.catalog.get(name, opts))?.value;
    let source: CollectionSource | undefined;
    if (record) {
      const deployment = await this.options.deployments.get(record.endpoint, record.deployment, opts);
      source = deployment ? sourcesOf([deployment], this.options.datastores).find((s) => s.assetName === name) : undefined;
    } else {
      source = sourcesOf(await this.options.deployments.list(opts), this.options.datastores).find((s) => s.assetName === name);
    }
    if (!record && !source) throw new CollectorError(404, 'AssetNotFound', `no data asset is named ${quote(name)}`, { path: 'name' });
    const owner = (source ?? record)!;
    await this.authorize(presented, owner.endpoint, owner.deployment, signal);
    return { ...(record ? { record } : {}), ...(source ? { source } : {}) };
  }

  async getAsset(name: string, presented: Presented, signal?: AbortSignal): Promise<DataAsset> {
    const { record, source } = await this.resolve(name, presented, signal);
    if (record) return publicView(record);
    // Registered but not seen by the timer yet: nothing learnt, no data counted.
    return {
      name: source!.assetName,
      version: source!.version,
      type: 'uri_folder',
      path: `azureml://datastores/${source!.datastore}/paths/${source!.path}`,
      endpoint: source!.endpoint,
      deployment: source!.deployment,
      collection: source!.collection,
      logging: source!.collection === 'request' || source!.collection === 'response' ? 'payload' : 'custom',
      rollingRate: source!.rollingRate,
      blobCount: 0,
      bytes: 0,
      columns: [],
      updatedAt: new Date(0).toISOString(),
    };
  }

  async readAsset(name: string, query: URLSearchParams, presented: Presented, signal?: AbortSignal): Promise<RowStream> {
    const parsed = parseReadQuery(query);
    const { record, source } = await this.resolve(name, presented, signal);
    // A deployment deleted since keeps its data (SPEC §9): read it where the catalog last saw it.
    const where = source ?? (record?.progress ? { ...record.progress, collection: record.collection } : undefined);
    if (!where) throw new CollectorError(404, 'AssetNotFound', `data asset ${quote(name)} has no readable location any more`, { path: 'name' });
    const options = { ...(parsed.limit !== undefined ? { limit: parsed.limit } : {}), ...(signal ? { signal } : {}) };
    const chunks =
      parsed.format === 'jsonl'
        ? windowJsonl(this.options.blobService, where, parsed, options)
        : encodeRows(windowRowBatches(this.options.blobService, where, parsed, options), parsed.format, record?.columns ?? []);
    const body = await primedStream(chunks);
    return { contentType: contentTypes[parsed.format], body };
  }

  async readJoined(endpoint: string, deployment: string, query: URLSearchParams, presented: Presented, signal?: AbortSignal): Promise<RowStream> {
    checkDeploymentName('endpoint', endpoint);
    checkDeploymentName('deployment', deployment);
    const parsed = parseReadQuery(query, { formats: ['jsonl'] });
    this.isAdmin(presented);
    await this.authorize(presented, endpoint, deployment, signal);
    const record = await this.options.deployments.get(endpoint, deployment, signal ? { abortSignal: signal } : {});
    if (!record) throw new CollectorError(404, 'DeploymentNotFound', `deployment ${endpoint}/${deployment} is not registered`);
    const sources = sourcesOf([record], this.options.datastores);
    const side = (collection: string) => {
      const found = sources.find((s) => s.collection === collection);
      if (!found) throw new CollectorError(404, 'CollectionNotFound', `deployment ${endpoint}/${deployment} has no ${collection} collection to join`, { path: collection });
      return found;
    };
    const rows = joinedRows(this.options.blobService, side('model_inputs'), side('model_outputs'), parsed, {
      ...(parsed.limit !== undefined ? { limit: parsed.limit } : {}),
      ...(signal ? { signal } : {}),
    });
    const body = await primedStream(encodeRows(inBatches(rows), 'jsonl'));
    return { contentType: contentTypes.jsonl, body };
  }
}
