import { RestError, type ContainerClient } from '@azure/storage-blob';
import type { RollingRate } from '../settings';

/**
 * The data-asset catalog: one JSON blob per asset (`catalog/<name>.json`) in the system container. It is the
 * embedded default registry that the read API serves, and it remembers how far the timer has listed each
 * collection, so a run reads only what is new.
 */

/** Where the timer got to in a collection's rolled folders. */
export interface ScanProgress {
  container: string;
  path: string;
  rollingRate: RollingRate;
  /** The latest rolled folder seen, e.g. `2024/03/05/18`: the next run lists from it on. */
  lastFolder: string;
  /** Blobs and bytes of the folders before `lastFolder`, counted once and not listed again. */
  settledBlobs: number;
  settledBytes: number;
  /** The blobs of `lastFolder` by name, with their ETag and size, to see which ones grew. */
  openBlobs: Record<string, { etag: string; bytes: number }>;
}

/** The state of the asset in the Azure ML workspace, when one is configured. */
export interface WorkspaceRegistration {
  state: 'registered' | 'failed';
  /** Hash of the last request the workspace accepted: an equal one is not sent again. */
  registeredHash?: string;
  registeredAt?: string;
  lastError?: { status?: number; message: string; at: string };
}

/** What the read API shows of an asset. */
export interface DataAsset {
  name: string;
  version: string;
  type: 'uri_folder';
  /** `azureml://datastores/<ds>/paths/<path>`. */
  path: string;
  endpoint: string;
  deployment: string;
  collection: string;
  /** Payload logging (`request`/`response`, one row per line) or custom logging (one row per record). */
  logging: 'payload' | 'custom';
  rollingRate: RollingRate;
  firstDataTime?: string;
  lastDataTime?: string;
  blobCount: number;
  bytes: number;
  columns: string[];
  updatedAt: string;
  azureml?: WorkspaceRegistration;
}

export interface CatalogRecord extends DataAsset {
  progress?: ScanProgress;
}

export function publicView(record: CatalogRecord): DataAsset {
  const { progress: _internal, ...asset } = record;
  return asset;
}

export interface Stored<T> {
  value: T;
  etag: string;
}

const prefix = 'catalog/';

function blobName(name: string): string {
  return `${prefix}${encodeURIComponent(name)}.json`;
}

function isStatus(error: unknown, ...codes: number[]): boolean {
  return error instanceof RestError && error.statusCode !== undefined && codes.includes(error.statusCode);
}

async function text(stream: NodeJS.ReadableStream | undefined): Promise<string> {
  if (!stream) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

export class CatalogConflictError extends Error {
  readonly code = 'CatalogConflict';
  constructor(name: string) {
    super(`catalog entry ${name} was changed by another run`);
    this.name = 'CatalogConflictError';
  }
}

export class CatalogStore {
  private ready: Promise<unknown> | undefined;

  constructor(readonly container: ContainerClient) {}

  async get(name: string, options: { abortSignal?: AbortSignal } = {}): Promise<Stored<CatalogRecord> | undefined> {
    try {
      const response = await this.container.getBlobClient(blobName(name)).download(0, undefined, { abortSignal: options.abortSignal });
      return { value: JSON.parse(await text(response.readableStreamBody)) as CatalogRecord, etag: response.etag ?? '' };
    } catch (error) {
      if (isStatus(error, 404)) return undefined;
      throw error;
    }
  }

  async list(options: { abortSignal?: AbortSignal } = {}): Promise<CatalogRecord[]> {
    const names: string[] = [];
    try {
      for await (const blob of this.container.listBlobsFlat({ prefix, abortSignal: options.abortSignal })) names.push(blob.name);
    } catch (error) {
      if (isStatus(error, 404)) return [];
      throw error;
    }
    const records = await Promise.all(
      names.map(async (name) => {
        const assetName = decodeURIComponent(name.slice(prefix.length, -'.json'.length));
        return (await this.get(assetName, options))?.value;
      }),
    );
    return records.filter((r): r is CatalogRecord => r !== undefined).sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Writes a record. With `etag`, only over that version; without, only when there is none yet. Two timer
   * runs racing on one asset therefore cannot lose each other's counts: the loser gets CatalogConflictError.
   */
  async put(record: CatalogRecord, etag: string | undefined, options: { abortSignal?: AbortSignal } = {}): Promise<string> {
    this.ready ??= this.container.createIfNotExists({ abortSignal: options.abortSignal }).catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    await this.ready;
    const body = JSON.stringify(record);
    try {
      const response = await this.container.getBlockBlobClient(blobName(record.name)).upload(body, Buffer.byteLength(body), {
        abortSignal: options.abortSignal,
        blobHTTPHeaders: { blobContentType: 'application/json' },
        conditions: etag ? { ifMatch: etag } : { ifNoneMatch: '*' },
      });
      return response.etag ?? '';
    } catch (error) {
      if (isStatus(error, 409, 412)) throw new CatalogConflictError(record.name);
      throw error;
    }
  }
}
