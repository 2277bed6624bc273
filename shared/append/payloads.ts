import type { Readable } from 'node:stream';
import { RestError, type BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import type { HubEvent } from '../hub-event';
import { serializeData, type LineData } from './line';

/**
 * Staged payloads: `collect` puts what does not fit in one Event Hubs event, and what is not JSON, in the
 * system container; the event carries its blob name. Here they become what the line says (SPEC §5).
 */

/** AML inlines serialized data up to 4 MB; larger data goes in its own blob and the line carries `dataref`. */
export const maxInlineDataBytes = 4 * 1024 * 1024;

export type StagedPayload = Extract<HubEvent['payload'], { kind: 'staged' }>;

/** The size of the staged blob, or undefined when it is gone (the event can then never be written). */
export async function stagedSize(
  service: BlobServiceClient,
  systemContainer: string,
  payload: StagedPayload,
  signal?: AbortSignal,
): Promise<number | undefined> {
  try {
    const properties = await service.getContainerClient(systemContainer).getBlobClient(payload.blob).getProperties({ abortSignal: signal });
    return properties.contentLength ?? 0;
  } catch (error) {
    if (error instanceof RestError && error.statusCode === 404) return undefined;
    throw error;
  }
}

export interface ResolveContext {
  service: BlobServiceClient;
  systemContainer: string;
  /** Where the rolled file lives: payload blobs go next to it. */
  container: ContainerClient;
  folder: string;
  maxInlineBytes?: number;
  signal?: AbortSignal;
}

/**
 * Copies the staged bytes to `<folder>/<name>` as a stream, so a payload is never held in memory whole. Writing
 * it again on a replay gives the same bytes, so it needs no condition.
 */
async function copyNextToFile(ctx: ResolveContext, payload: StagedPayload, name: string): Promise<string> {
  const source = ctx.service.getContainerClient(ctx.systemContainer).getBlobClient(payload.blob);
  const target = ctx.container.getBlockBlobClient(`${ctx.folder}/${name}`);
  const download = await source.download(0, undefined, { abortSignal: ctx.signal, maxRetryRequests: 5 });
  await target.uploadStream(download.readableStreamBody as Readable, 4 * 1024 * 1024, 2, {
    blobHTTPHeaders: { blobContentType: payload.contentType },
    abortSignal: ctx.signal,
  });
  return target.url;
}

export async function resolveStaged(event: HubEvent, payload: StagedPayload, size: number, ctx: ResolveContext): Promise<LineData> {
  const limit = ctx.maxInlineBytes ?? maxInlineDataBytes;
  if (payload.json && size <= limit) {
    const bytes = await ctx.service
      .getContainerClient(ctx.systemContainer)
      .getBlobClient(payload.blob)
      .downloadToBuffer(0, undefined, { abortSignal: ctx.signal });
    let parsed: { ok: true; value: unknown } | { ok: false } = { ok: false };
    try {
      parsed = { ok: true, value: JSON.parse(bytes.toString('utf8')) as unknown };
    } catch {
      // Marked JSON but is not: keep the bytes as they came rather than lose them.
    }
    if (parsed.ok) {
      const json = serializeData(parsed.value);
      if (Buffer.byteLength(json, 'utf8') <= limit) return { kind: 'data', json };
      return { kind: 'dataref', url: await copyNextToFile(ctx, payload, `${event.id}.json`), bytes: size };
    }
    return { kind: 'inblob', url: await copyNextToFile(ctx, payload, event.id), bytes: size };
  }
  if (payload.json) return { kind: 'dataref', url: await copyNextToFile(ctx, payload, `${event.id}.json`), bytes: size };
  return { kind: 'inblob', url: await copyNextToFile(ctx, payload, event.id), bytes: size };
}
