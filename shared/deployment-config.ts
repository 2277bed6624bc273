import YAML from 'yaml';
import { z } from 'zod';
import { rollingRates, type BlobTarget } from './hub-event';
import { badRequest, CollectorError } from './http-errors';
import { collectionNamePattern, isPayloadCollection, maxCustomCollections } from './names';
import type { RollingRate } from './settings';

/**
 * A deployment's `data_collector` block (SPEC §3), as Azure ML's deployment YAML writes it, normalised: the
 * rolling rate spelt one way, `enabled` a boolean, every default filled in. GET answers with this shape, so it
 * reads like the YAML the user sent.
 */
export interface CollectionConfig {
  enabled: boolean;
  /** Overrides the deployment's `sampling_rate` for this collection. */
  sampling_rate?: number;
  data: { name: string; path: string; version: string };
}

export interface DataCollectorConfig {
  rolling_rate: RollingRate;
  sampling_rate: number;
  request_logging: { capture_headers: string[] };
  collections: Record<string, CollectionConfig>;
}

export interface ParseConfigOptions {
  endpoint: string;
  deployment: string;
  /** Datastore name → container (MDC_DATASTORES): a `data.path` must name one of these. */
  datastores: Record<string, string>;
}

const blockKeys = ['collections', 'rolling_rate', 'sampling_rate', 'request_logging'];

const rate = z.preprocess(
  (v) => (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : v),
  z.number({ error: 'must be a number from 0.0 to 1.0' }).min(0, 'must be from 0.0 to 1.0').max(1, 'must be from 0.0 to 1.0'),
);

const rollingRate = z.preprocess(
  (v) => (typeof v === 'string' ? (rollingRates.find((r) => r.toLowerCase() === v.trim().toLowerCase()) ?? v) : v),
  z.enum(rollingRates, { error: `must be one of ${rollingRates.join(', ')} (any case)` }),
);

// Azure ML writes enabled: 'True'; YAML readers also produce booleans.
const enabled = z.preprocess(
  (v) => {
    if (typeof v !== 'string') return v;
    const lower = v.trim().toLowerCase();
    return lower === 'true' ? true : lower === 'false' ? false : v;
  },
  z.boolean({ error: "must be 'True' or 'False'" }),
);

const text = (what: string) => z.string({ error: `must be ${what}` }).trim().min(1, `must be ${what}`);

const dataSchema = z
  .object({
    name: text('a data asset name').optional(),
    path: text('an azureml:// path').optional(),
    version: z.union([z.string(), z.number()], { error: 'must be a version such as 1' }).transform(String).pipe(text('a version such as 1')).optional(),
  })
  .nullish();

const collectionSchema = z
  .object({
    enabled: enabled.optional(),
    sampling_rate: rate.optional(),
    data: dataSchema,
  })
  .nullish();

const blockSchema = z.object({
  rolling_rate: rollingRate.optional(),
  sampling_rate: rate.optional(),
  request_logging: z
    .object({
      capture_headers: z
        .array(z.string().trim().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name'), { error: 'must be a list of header names' })
        .optional(),
    })
    .nullish(),
  collections: z.record(z.string(), collectionSchema, { error: 'must map collection names to their settings' }),
});

/** `data.path` split into its datastore and its path part (no leading or trailing slash). */
export interface DataPath {
  datastore: string;
  path: string;
}

const shortPath = /^azureml:\/\/datastores\/([^/]+)\/paths\/(.+)$/i;
const longPath = /^azureml:\/\/subscriptions\/[^/]+\/resourcegroups\/[^/]+\/workspaces\/[^/]+\/datastores\/([^/]+)\/paths\/(.+)$/i;

export function parseDataPath(uri: string): DataPath | undefined {
  const match = shortPath.exec(uri) ?? longPath.exec(uri);
  if (!match) return undefined;
  const segments = match[2]!.split('/').filter((s) => s !== '');
  // The path part becomes blob names: no dot segments, nothing a blob name cannot hold.
  if (segments.length === 0 || segments.some((s) => s === '.' || s === '..' || /[\\\u0000-\u001f]/.test(s))) return undefined;
  return { datastore: match[1]!, path: segments.join('/') };
}

export function defaultDataPath(endpoint: string, deployment: string, collection: string): string {
  return `azureml://datastores/workspaceblobstore/paths/modelDataCollector/${endpoint}/${deployment}/${collection}`;
}

function fieldPath(path: readonly PropertyKey[]): string {
  return ['data_collector', ...path.map(String)].join('.');
}

/** Reads a request body (YAML or JSON: JSON is YAML) into a plain value, or a 400 naming the line. */
export function parseYamlOrJson(body: string): unknown {
  if (body.trim() === '') throw badRequest('EmptyBody', 'the body is empty: send the deployment YAML or its data_collector block');
  try {
    return YAML.parse(body, { prettyErrors: true, maxAliasCount: 100 });
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw badRequest('InvalidYaml', `the body is neither valid YAML nor JSON: ${message}`);
  }
}

/**
 * Takes the whole Azure ML deployment document, or only its `data_collector` block, and returns the block
 * normalised. Everything outside the block is ignored; an invalid value inside it is a 400 naming the field.
 */
export function parseDataCollector(document: unknown, options: ParseConfigOptions): DataCollectorConfig {
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    throw badRequest('InvalidConfig', 'the body must be a deployment YAML or its data_collector block (a mapping)');
  }
  const root = document as Record<string, unknown>;
  let block: unknown;
  if ('data_collector' in root) block = root['data_collector'];
  else if (blockKeys.some((k) => k in root)) block = root;
  else throw badRequest('MissingDataCollector', 'the body has no data_collector block', 'data_collector');
  if (block === null || typeof block !== 'object' || Array.isArray(block)) {
    throw badRequest('InvalidConfig', 'data_collector must be a mapping', 'data_collector');
  }

  const parsed = blockSchema.safeParse(block);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = fieldPath(issue.path);
    throw badRequest('InvalidConfig', `${path} ${issue.message}`, path);
  }
  const raw = parsed.data;

  const names = Object.keys(raw.collections);
  if (names.length === 0) throw badRequest('InvalidConfig', 'data_collector.collections names no collection', 'data_collector.collections');
  const custom = names.filter((n) => !isPayloadCollection(n));
  if (custom.length > maxCustomCollections) {
    throw badRequest(
      'InvalidConfig',
      `data_collector.collections has ${custom.length} custom collections; Azure ML allows at most ${maxCustomCollections}`,
      'data_collector.collections',
    );
  }

  const collections: Record<string, CollectionConfig> = {};
  for (const name of names) {
    const at = `data_collector.collections.${name}`;
    if (!collectionNamePattern.test(name)) {
      throw badRequest('InvalidConfig', `${at}: collection names are 1-64 ASCII letters, digits and underscores, not starting with a digit`, at);
    }
    const entry = raw.collections[name] ?? {};
    const data = entry.data ?? {};
    const path = data.path ?? defaultDataPath(options.endpoint, options.deployment, name);
    const parsedPath = parseDataPath(path);
    if (!parsedPath) {
      throw badRequest(
        'InvalidConfig',
        `${at}.data.path must be azureml://datastores/<datastore>/paths/<path> or azureml://subscriptions/<sub>/resourcegroups/<rg>/workspaces/<ws>/datastores/<datastore>/paths/<path>`,
        `${at}.data.path`,
      );
    }
    if (!(parsedPath.datastore in options.datastores)) {
      throw badRequest(
        'UnknownDatastore',
        `${at}.data.path names datastore "${parsedPath.datastore}", which this collector does not map (MDC_DATASTORES has: ${Object.keys(options.datastores).join(', ') || 'none'})`,
        `${at}.data.path`,
      );
    }
    collections[name] = {
      // A listed collection without `enabled` is collected: listing it is the intent.
      enabled: entry.enabled ?? true,
      ...(entry.sampling_rate !== undefined ? { sampling_rate: entry.sampling_rate } : {}),
      data: { name: data.name ?? `${options.endpoint}-${options.deployment}-${name}`, path, version: data.version ?? '1' },
    };
  }

  return {
    rolling_rate: raw.rolling_rate ?? 'Hour',
    sampling_rate: raw.sampling_rate ?? 1,
    request_logging: { capture_headers: (raw.request_logging?.capture_headers ?? []).map((h) => h.toLowerCase()) },
    collections,
  };
}

/** Parses a PUT body: YAML or JSON text in, normalised block out. */
export function parseDeploymentConfig(body: string, options: ParseConfigOptions): DataCollectorConfig {
  return parseDataCollector(parseYamlOrJson(body), options);
}

/** The effective sampling rate of a collection: its own, else the deployment's. */
export function samplingRateOf(config: DataCollectorConfig, collection: string): number {
  return config.collections[collection]?.sampling_rate ?? config.sampling_rate;
}

/**
 * Where a collection's rolled files go, resolved against today's datastore map so that `append` never needs
 * the configuration. A datastore removed from MDC_DATASTORES since registration is an operator problem.
 */
export function blobTargetOf(config: DataCollectorConfig, collection: string, datastores: Record<string, string>): BlobTarget {
  const entry = config.collections[collection];
  const parsed = entry ? parseDataPath(entry.data.path) : undefined;
  const container = parsed ? datastores[parsed.datastore] : undefined;
  if (!entry || !parsed || !container) {
    throw new CollectorError(503, 'DatastoreNotMapped', `collection ${collection} writes to a datastore that MDC_DATASTORES no longer maps`, {
      retryAfterSeconds: 60,
    });
  }
  return { container, path: parsed.path, rollingRate: config.rolling_rate };
}
