import { parseDataPath } from '../deployment-config';
import type { DeploymentRecord } from '../deployment-store';
import type { CollectionSource } from './collection-source';

/**
 * The collections of registered deployments, resolved to containers. Disabled collections are included: they
 * may hold data from before they were disabled, and their assets stay readable. A collection whose datastore
 * is no longer mapped has nowhere to be read from and is left out.
 */
export function sourcesOf(records: readonly DeploymentRecord[], datastores: Record<string, string>): CollectionSource[] {
  const sources: CollectionSource[] = [];
  for (const record of records) {
    for (const [collection, entry] of Object.entries(record.config.collections)) {
      const parsed = parseDataPath(entry.data.path);
      const container = parsed ? datastores[parsed.datastore] : undefined;
      if (!parsed || !container) continue;
      sources.push({
        endpoint: record.endpoint,
        deployment: record.deployment,
        collection,
        assetName: entry.data.name,
        version: entry.data.version,
        datastore: parsed.datastore,
        container,
        path: parsed.path,
        rollingRate: record.config.rolling_rate,
      });
    }
  }
  return sources;
}
