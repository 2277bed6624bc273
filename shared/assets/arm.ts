import { createHash } from 'node:crypto';
import type { TokenCredential } from '@azure/identity';
import type { WorkspaceRef } from '../settings';
import type { DataAsset } from './catalog';

/**
 * Upserts data asset versions in an Azure ML workspace through ARM (SPEC §7), the way the Python SDK does:
 * `PUT .../workspaces/<ws>/data/<name>/versions/<version>?api-version=2024-04-01`.
 */

export const armApiVersion = '2024-04-01';
export const armScope = 'https://management.azure.com/.default';

export interface ArmClientOptions {
  /** MDC_ARM_BASE_URL: `https://management.azure.com`, or a local fake in tests. */
  baseUrl: string;
  workspace: WorkspaceRef;
  credential: TokenCredential;
  /** Per request; ARM answers in well under this. */
  timeoutMs?: number;
}

export class ArmError extends Error {
  readonly code = 'ArmRequestFailed';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ArmError';
  }
}

export interface DataVersionRequest {
  url: string;
  body: { properties: { dataType: 'uri_folder'; dataUri: string; description: string; tags: Record<string, string> } };
  /** Equal hashes mean an equal request: it is not sent again. */
  hash: string;
}

export function dataVersionRequest(baseUrl: string, workspace: WorkspaceRef, asset: DataAsset): DataVersionRequest {
  const base = baseUrl.replace(/\/+$/, '');
  const url =
    `${base}/subscriptions/${encodeURIComponent(workspace.subscriptionId)}/resourceGroups/${encodeURIComponent(workspace.resourceGroup)}` +
    `/providers/Microsoft.MachineLearningServices/workspaces/${encodeURIComponent(workspace.workspaceName)}` +
    `/data/${encodeURIComponent(asset.name)}/versions/${encodeURIComponent(asset.version)}?api-version=${armApiVersion}`;
  // Tags carry what the collector learnt, so the workspace shows how fresh the data is.
  const tags: Record<string, string> = {
    'mdc.endpoint': asset.endpoint,
    'mdc.deployment': asset.deployment,
    'mdc.collection': asset.collection,
    'mdc.blobCount': String(asset.blobCount),
    'mdc.bytes': String(asset.bytes),
  };
  if (asset.firstDataTime) tags['mdc.firstDataTime'] = asset.firstDataTime;
  if (asset.lastDataTime) tags['mdc.lastDataTime'] = asset.lastDataTime;
  const body: DataVersionRequest['body'] = {
    properties: {
      dataType: 'uri_folder',
      dataUri: asset.path,
      description: `Collected ${asset.collection} of ${asset.endpoint}/${asset.deployment} (model data collector)`,
      tags,
    },
  };
  const hash = createHash('sha256').update(url).update('\n').update(JSON.stringify(body)).digest('hex');
  return { url, body, hash };
}

export async function putDataVersion(options: ArmClientOptions, request: DataVersionRequest, signal?: AbortSignal): Promise<void> {
  const token = await options.credential.getToken(armScope, { abortSignal: signal });
  if (!token) throw new ArmError(`no token for ${armScope}`);
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 30_000);
  let response: Response;
  try {
    response = await fetch(request.url, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(request.body),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
  } catch (error) {
    throw new ArmError(`PUT ${request.url.split('?')[0]} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (response.ok) {
    await response.body?.cancel();
    return;
  }
  const detail = (await response.text().catch(() => '')).slice(0, 500);
  throw new ArmError(`PUT ${request.url.split('?')[0]} answered ${response.status}${detail ? `: ${detail}` : ''}`, response.status);
}
