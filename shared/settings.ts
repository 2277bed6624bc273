import { z } from 'zod';

/**
 * Every app setting the collector reads, in one place. Settings are read once and validated; a missing or
 * bad one stops start-up with a message that names it (SPEC §10). The Bicep templates and
 * local.settings.json are tested against `settingNames` and `requiredSettings`, so keep them the single
 * source of truth.
 */

export type RollingRate = 'Minute' | 'Hour' | 'Day' | 'Month' | 'Year';

/** A connection given either as a connection string or as identity-based settings, as the Functions host reads them. */
export type StorageConnection =
  | { kind: 'connectionString'; connectionString: string }
  | { kind: 'identity'; blobServiceUri: string; credential?: 'managedidentity'; clientId?: string };

export type EventHubsConnection =
  | { kind: 'connectionString'; connectionString: string }
  | { kind: 'identity'; fullyQualifiedNamespace: string; credential?: 'managedidentity'; clientId?: string };

export interface WorkspaceRef {
  resourceId: string;
  subscriptionId: string;
  resourceGroup: string;
  workspaceName: string;
}

export interface Settings {
  /** The data account: datastore containers, deployment configurations, staged payloads, the catalog. */
  storage: StorageConnection;
  eventHubs: EventHubsConnection;
  eventHubName: string;
  consumerGroup: string;
  adminKey: string;
  /** Azure ML datastore name → container on the data account. */
  datastores: Record<string, string>;
  /** Container for the collector's own state: deployments, staged payloads, dead letters, the catalog. */
  systemContainer: string;
  /** The Azure ML workspace, when data assets are also registered there (SPEC §7). */
  workspace?: WorkspaceRef;
  armBaseUrl: string;
  assetsSchedule: string;
  maxBodyBytes: number;
  configCacheMs: number;
}

/** Connection names: `<NAME>` is a connection string, `<NAME>__...` are the identity-based forms. */
export const connectionNames = {
  storage: 'MDC_STORAGE',
  eventHubs: 'MDC_EVENTHUB',
  hostStorage: 'AzureWebJobsStorage',
} as const;

export const settingNames = {
  eventHubName: 'MDC_EVENTHUB_NAME',
  consumerGroup: 'MDC_EVENTHUB_CONSUMER_GROUP',
  adminKey: 'MDC_ADMIN_KEY',
  datastores: 'MDC_DATASTORES',
  systemContainer: 'MDC_SYSTEM_CONTAINER',
  workspace: 'MDC_AML_WORKSPACE_ID',
  armBaseUrl: 'MDC_ARM_BASE_URL',
  assetsSchedule: 'MDC_ASSETS_SCHEDULE',
  maxBodyBytes: 'MDC_MAX_BODY_BYTES',
  configCacheMs: 'MDC_CONFIG_CACHE_MS',
} as const;

/**
 * What a deployment must set. A connection counts as set when its connection string or its identity-based
 * endpoint setting is present.
 */
export const requiredSettings = {
  connections: [connectionNames.storage, connectionNames.eventHubs, connectionNames.hostStorage],
  values: [settingNames.eventHubName, settingNames.adminKey],
} as const;

/**
 * Settings the Functions host reads itself, never our code: its own storage (keys, timer locks, Event Hubs
 * checkpoints) and telemetry. A deployment must set them, so the Bicep contract accepts them besides
 * `settingNames` and the connections.
 */
export const hostSettingNames = [
  connectionNames.hostStorage,
  `${connectionNames.hostStorage}__blobServiceUri`,
  `${connectionNames.hostStorage}__credential`,
  `${connectionNames.hostStorage}__clientId`,
  'APPLICATIONINSIGHTS_CONNECTION_STRING',
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
] as const;

export class SettingsError extends Error {
  readonly code = 'InvalidSetting';
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`Setting ${setting}: ${message}`);
    this.name = 'SettingsError';
  }
}

type Env = Record<string, string | undefined>;

const nonEmpty = z.string().trim().min(1);
const credentialSchema = z
  .string()
  .transform((v) => v.toLowerCase())
  .pipe(z.literal('managedidentity'))
  .optional();

function value(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
}

function parse<T>(env: Env, name: string, schema: z.ZodType<T>, fallback?: string): T {
  const raw = value(env, name) ?? fallback;
  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new SettingsError(name, raw === undefined ? 'is required but not set' : (issue?.message ?? 'is invalid'));
  }
  return result.data;
}

function identityExtras(env: Env, name: string): { credential?: 'managedidentity'; clientId?: string } {
  const credential = parse(env, `${name}__credential`, credentialSchema);
  const clientId = value(env, `${name}__clientId`);
  return { ...(credential ? { credential } : {}), ...(clientId ? { clientId } : {}) };
}

export function readStorageConnection(env: Env, name: string): StorageConnection {
  const connectionString = value(env, name);
  if (connectionString) return { kind: 'connectionString', connectionString };
  const serviceUri = value(env, `${name}__blobServiceUri`) ?? value(env, `${name}__serviceUri`);
  const accountName = value(env, `${name}__accountName`);
  const blobServiceUri = serviceUri ?? (accountName ? `https://${accountName}.blob.core.windows.net` : undefined);
  if (!blobServiceUri) {
    throw new SettingsError(name, `is required: set ${name} (a connection string) or ${name}__blobServiceUri`);
  }
  parse(env, serviceUri ? `${name}__blobServiceUri` : `${name}__accountName`, z.string().url(), blobServiceUri);
  return { kind: 'identity', blobServiceUri, ...identityExtras(env, name) };
}

export function readEventHubsConnection(env: Env, name: string): EventHubsConnection {
  const connectionString = value(env, name);
  if (connectionString) {
    if (!/Endpoint=sb:\/\//i.test(connectionString)) {
      throw new SettingsError(name, 'is not an Event Hubs connection string (no Endpoint=sb://...)');
    }
    return { kind: 'connectionString', connectionString };
  }
  const fullyQualifiedNamespace = value(env, `${name}__fullyQualifiedNamespace`);
  if (!fullyQualifiedNamespace) {
    throw new SettingsError(name, `is required: set ${name} (a connection string) or ${name}__fullyQualifiedNamespace`);
  }
  return { kind: 'identity', fullyQualifiedNamespace, ...identityExtras(env, name) };
}

const workspaceIdSchema = z
  .string()
  .regex(
    /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.MachineLearningServices\/workspaces\/[^/]+$/i,
    'must be an Azure ML workspace resource id: /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>',
  );

export function parseWorkspaceId(resourceId: string): WorkspaceRef {
  const parts = resourceId.split('/');
  return { resourceId, subscriptionId: parts[2]!, resourceGroup: parts[4]!, workspaceName: parts[8]! };
}

const datastoresSchema = z
  .string()
  .transform((raw, ctx) => {
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be JSON, e.g. {"workspaceblobstore":"azureml-blobstore"}' });
      return z.NEVER;
    }
  })
  .pipe(
    z.record(
      z.string(),
      z.string().regex(/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/, 'container names are 3-63 lowercase letters, digits and single hyphens'),
    ),
  );

export function readSettings(env: Env = process.env): Settings {
  const workspaceId = parse(env, settingNames.workspace, workspaceIdSchema.optional());
  return {
    storage: readStorageConnection(env, connectionNames.storage),
    eventHubs: readEventHubsConnection(env, connectionNames.eventHubs),
    eventHubName: parse(env, settingNames.eventHubName, nonEmpty),
    consumerGroup: parse(env, settingNames.consumerGroup, nonEmpty, '$Default'),
    adminKey: parse(env, settingNames.adminKey, z.string().min(16, 'must be at least 16 characters')),
    datastores: parse(env, settingNames.datastores, datastoresSchema, '{"workspaceblobstore":"azureml-blobstore"}'),
    systemContainer: parse(env, settingNames.systemContainer, nonEmpty, 'mdc-system'),
    ...(workspaceId ? { workspace: parseWorkspaceId(workspaceId) } : {}),
    armBaseUrl: parse(env, settingNames.armBaseUrl, z.string().url(), 'https://management.azure.com'),
    assetsSchedule: parse(env, settingNames.assetsSchedule, nonEmpty, '0 */5 * * * *'),
    maxBodyBytes: parse(env, settingNames.maxBodyBytes, z.coerce.number().int().positive(), String(16 * 1024 * 1024)),
    configCacheMs: parse(env, settingNames.configCacheMs, z.coerce.number().int().nonnegative(), '10000'),
  };
}

let cached: Settings | undefined;

/** The settings of this process, read and validated on first use. */
export function getSettings(): Settings {
  cached ??= readSettings();
  return cached;
}
