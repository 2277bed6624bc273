import type { RollingRate } from '../settings';

/**
 * One collection of one deployment, as the assets timer and the read API see it: where its rolled files
 * are and which data asset names them. Built from the deployment registry; nothing here reads Functions.
 */
export interface CollectionSource {
  endpoint: string;
  deployment: string;
  collection: string;
  /** `data.name`, default `<endpoint>-<deployment>-<collection>`. */
  assetName: string;
  /** `data.version`, default `1`. */
  version: string;
  /** The Azure ML datastore name of `data.path`. */
  datastore: string;
  /** The storage container the datastore maps to. */
  container: string;
  /** `data.path`'s path part, no slashes at the ends. */
  path: string;
  rollingRate: RollingRate;
}

/** `request` and `response` are payload logging (SPEC §2): one row per line, `data` kept as JSON. */
export function isPayloadCollection(collection: string): boolean {
  return collection === 'request' || collection === 'response';
}

export function defaultAssetName(endpoint: string, deployment: string, collection: string): string {
  return `${endpoint}-${deployment}-${collection}`;
}

/** The asset's `uri_folder` path, in the form Azure ML's SDK registers (SPEC §7). */
export function assetDataUri(source: Pick<CollectionSource, 'datastore' | 'path'>): string {
  return `azureml://datastores/${source.datastore}/paths/${source.path}`;
}
