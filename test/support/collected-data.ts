import { randomUUID } from 'node:crypto';
import type { BlobServiceClient } from '@azure/storage-blob';
import { rolledFolder } from '../../shared/read/rolled-folders';
import type { RollingRate } from '../../shared/settings';

/**
 * Collected files written exactly as SPEC §5/§6 lay them out, for tests of the read side that must not wait
 * for `collect` → `append`: `<path>/<rolled time>/<instance_id>.jsonl`, one CloudEvents-style line per call.
 */

export interface LineInit {
  time: string;
  correlationid: string;
  collection: string;
  data?: unknown;
  endpoint?: string;
  deployment?: string;
  [field: string]: unknown;
}

export function collectedLine(init: LineInit): string {
  const { time, correlationid, collection, data, endpoint = 'ep', deployment = 'blue', ...extra } = init;
  const line: Record<string, unknown> = {
    specversion: '1.0',
    id: randomUUID(),
    source: `/subscriptions//resourceGroups//providers/Microsoft.MachineLearningServices/workspaces//onlineEndpoints/${endpoint}/deployments/${deployment}`,
    type: `azureml.inference.${collection}`,
    datacontenttype: 'application/json',
    time,
  };
  if (data !== undefined) line.data = data;
  Object.assign(line, { correlationid, xrequestid: correlationid, modelversion: 'default', collectdatatype: 'pandas.core.frame.DataFrame', agent: 'test' }, extra);
  if (data !== undefined) {
    const n = Buffer.byteLength(JSON.stringify(data));
    line.contentrange = `bytes 0-${n - 1}/${n}`;
  }
  return JSON.stringify(line);
}

export interface WriteOptions {
  container: string;
  path: string;
  rollingRate?: RollingRate;
  instance?: string;
}

/** Writes (or replaces) the blob of `instance` in the rolled folder of the lines' first time. Returns its name. */
export async function writeCollected(blobService: BlobServiceClient, options: WriteOptions, lines: LineInit[]): Promise<string> {
  const container = blobService.getContainerClient(options.container);
  await container.createIfNotExists();
  const folder = rolledFolder(options.rollingRate ?? 'Hour', new Date(lines[0]!.time));
  const name = `${options.path}/${folder}/${options.instance ?? '0'}.jsonl`;
  const text = lines.map((l) => `${collectedLine(l)}\n`).join('');
  await container.getBlockBlobClient(name).upload(text, Buffer.byteLength(text));
  return name;
}
