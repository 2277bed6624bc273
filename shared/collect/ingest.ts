import { randomUUID } from 'node:crypto';
import type { EventData, EventHubProducerClient } from '@azure/event-hubs';
import type { ContainerClient } from '@azure/storage-blob';
import { clock } from '../clock';
import { blobTargetOf, samplingRateOf, type DataCollectorConfig } from '../deployment-config';
import type { DeploymentStore } from '../deployment-store';
import { partitionKeyOf, type BlobTarget, type HubEvent, type Payload } from '../hub-event';
import { badRequest, CollectorError, quote } from '../http-errors';
import { keyHeader } from '../keys';
import { checkCollectionName, checkDeploymentName, isPayloadCollection } from '../names';
import type { Settings } from '../settings';
import { customBodyFormat, isJsonMediaType, mediaTypeOf, parseCustomBody, type CustomCall } from './custom-body';
import { isSampledIn } from './sampling';
import { senderFor } from './send';

export interface CollectRequest {
  /** Route values as received; they are validated here. */
  endpoint: string | undefined;
  deployment: string | undefined;
  collection: string | undefined;
  headers: Headers;
  body: Uint8Array;
}

export interface CollectDependencies {
  settings: Pick<Settings, 'datastores' | 'workspace'>;
  store: DeploymentStore;
  producer: EventHubProducerClient;
  /** The system container, where payloads that cannot ride in an event are staged. */
  staging: ContainerClient;
  /** How long one send to Event Hubs may take before the answer is 503 (default 10 s; the first sender of a producer sets it). */
  sendTimeoutMs?: number;
  abortSignal?: AbortSignal;
}

export interface CollectAnswer {
  /** Events handed to Event Hubs. */
  accepted: number;
  ids: string[];
  /** The correlation id of the (first) call: pass it to the outputs call to tie inputs and outputs. */
  correlationid: string;
  /** One per call, in body order (NDJSON bodies carry several calls). */
  correlationids: string[];
  /** Whether the (first) call was kept by sampling. */
  sampled: boolean;
  dropped?: number;
  reason?: 'collection_disabled' | 'sampled_out';
}

/** Default `collectdatatype` of custom logging: what Azure ML's Python collector writes for a DataFrame. */
export const dataFrameType = 'pandas.core.frame.DataFrame';

/**
 * Largest hub event, in bytes of JSON, sent as is. Event Hubs takes 1 MB per event; the margin covers the
 * AMQP envelope and batch framing. Larger payloads are staged in blob storage and referenced.
 */
export const maxInlineEventBytes = 1_000_000 - 24 * 1024;

const defaultSendTimeoutMs = 10_000;

interface Call {
  correlationid: string;
  xrequestid: string;
  modelversion: string;
  collectdatatype: string;
  agent: string;
  time: string;
  datacontenttype: string;
  /**
   * Parsed JSON data (with its text when it can be forwarded as sent, and that text's UTF-8 bytes when they are
   * the request body itself), or raw bytes to stage.
   */
  data: { json: unknown; text?: string; bytes?: Uint8Array } | { raw: Uint8Array };
  extra: Pick<HubEvent, 'path' | 'method' | 'statuscode' | 'durationms' | 'headers'>;
}

export function sourceOf(workspace: Settings['workspace'], endpoint: string, deployment: string): string {
  return (
    `/subscriptions/${workspace?.subscriptionId ?? ''}/resourceGroups/${workspace?.resourceGroup ?? ''}` +
    `/providers/Microsoft.MachineLearningServices/workspaces/${workspace?.workspaceName ?? ''}` +
    `/onlineEndpoints/${endpoint}/deployments/${deployment}`
  );
}

export function eventTime(date: Date): string {
  return date.toISOString().slice(0, 19) + 'Z';
}

let formattedSecond = NaN;
let formattedTime = '';

/** `eventTime` of the clock's now; the text changes once a second, so it is formatted once a second. */
function eventTimeNow(): string {
  const second = Math.floor(clock().now().getTime() / 1000);
  if (second !== formattedSecond) {
    formattedTime = eventTime(new Date(second * 1000));
    formattedSecond = second;
  }
  return formattedTime;
}

type EventBase = Pick<HubEvent, 'endpoint' | 'deployment' | 'collection' | 'source' | 'type'>;

interface Resolved {
  datastores: Record<string, string>;
  workspace: Settings['workspace'];
  endpoint: string;
  deployment: string;
  base: EventBase;
  target: BlobTarget;
}

/**
 * Where a collection's events go and what they say about it, worked out once per configuration read: the
 * store hands out the same configuration object until it reads the deployment again.
 */
const resolvedCollections = new WeakMap<DataCollectorConfig, Map<string, Resolved>>();

function resolveCollection(config: DataCollectorConfig, endpoint: string, deployment: string, collection: string, settings: CollectDependencies['settings']): Resolved {
  let byCollection = resolvedCollections.get(config);
  const hit = byCollection?.get(collection);
  if (hit && hit.datastores === settings.datastores && hit.workspace === settings.workspace && hit.endpoint === endpoint && hit.deployment === deployment) return hit;
  const resolved: Resolved = {
    datastores: settings.datastores,
    workspace: settings.workspace,
    endpoint,
    deployment,
    base: { endpoint, deployment, collection, source: sourceOf(settings.workspace, endpoint, deployment), type: `azureml.inference.${collection}` },
    target: blobTargetOf(config, collection, settings.datastores),
  };
  if (!byCollection) {
    byCollection = new Map();
    resolvedCollections.set(config, byCollection);
  }
  byCollection.set(collection, resolved);
  return resolved;
}

export function stagingBlobName(event: Pick<HubEvent, 'endpoint' | 'deployment' | 'collection' | 'id'>): string {
  return `staging/${event.endpoint}/${event.deployment}/${event.collection}/${event.id}`;
}

function header(headers: Headers, name: string, max = 256): string | undefined {
  const value = headers.get(name)?.trim();
  if (!value) return undefined;
  if (value.length > max) throw badRequest('InvalidHeader', `the ${name} header is longer than ${max} characters`, name);
  return value;
}

/** Correlation (SPEC §4): envelope id, else x-ms-client-request-id, else x-request-id, else a new UUID. */
function correlationOf(headers: Headers, fromEnvelope: string | undefined, useHeaders: boolean): string {
  return fromEnvelope ?? (useHeaders ? (header(headers, 'x-ms-client-request-id') ?? header(headers, 'x-request-id')) : undefined) ?? randomUUID();
}

function customCalls(request: CollectRequest, now: string): Call[] {
  const parsed: CustomCall[] = parseCustomBody(request.body, customBodyFormat(request.headers.get('content-type')));
  // Request headers describe one call; several NDJSON calls must not share a correlation id, or their rows merge.
  const useHeaders = parsed.length === 1;
  // A body that starts with "[" and ends with "]" is exactly the rows' text (no BOM, no blank around it), and
  // valid UTF-8, so its bytes are that text's encoding: the event can take them without encoding the text again.
  const body = request.body;
  const bodyIsRows = useHeaders && body[0] === 0x5b && body[body.byteLength - 1] === 0x5d;
  const xRequestId = header(request.headers, 'x-request-id');
  const agent = header(request.headers, 'user-agent', 1024) ?? '';
  const modelVersion = header(request.headers, 'x-mdc-model-version');
  return parsed.map((call) => {
    const correlationid = correlationOf(request.headers, call.correlationid, useHeaders);
    return {
      correlationid,
      xrequestid: call.xrequestid ?? (useHeaders ? xRequestId : undefined) ?? correlationid,
      modelversion: call.modelversion ?? modelVersion ?? 'default',
      collectdatatype: call.collectdatatype ?? dataFrameType,
      agent: call.agent ?? agent,
      time: call.time ?? now,
      datacontenttype: 'application/json',
      data: call.rowsJson === undefined ? { json: call.rows } : { json: call.rows, text: call.rowsJson, ...(bodyIsRows ? { bytes: body } : {}) },
      extra: {},
    };
  });
}

function numberHeader(headers: Headers, name: string, check: (n: number) => boolean, expected: string): number | undefined {
  const raw = header(headers, name, 32);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || !check(value)) throw badRequest('InvalidHeader', `the ${name} header must be ${expected}, not ${JSON.stringify(raw)}`, name);
  return value;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Payload logging: the body is whatever the model endpoint received or returned, kept as it was. */
function payloadCall(request: CollectRequest, collection: string, config: DataCollectorConfig, now: string): Call {
  const { headers, body } = request;
  const contentType = header(headers, 'content-type') ?? 'application/octet-stream';
  let data: Call['data'] = { raw: body };
  if (body.byteLength === 0) data = { json: null };
  else if (isJsonMediaType(mediaTypeOf(contentType))) {
    try {
      data = { json: JSON.parse(utf8.decode(body)) };
    } catch {
      // A malformed JSON body is exactly what the endpoint saw: keep its bytes rather than refuse the log.
    }
  }
  const method = header(headers, 'x-mdc-method', 16);
  if (method !== undefined && !/^[A-Za-z]+$/.test(method)) throw badRequest('InvalidHeader', 'the x-mdc-method header must be an HTTP method such as POST', 'x-mdc-method');
  const path = header(headers, 'x-mdc-path', 2048);
  const extra: Call['extra'] = {};
  if (path !== undefined) extra.path = path;
  if (method !== undefined) extra.method = method.toUpperCase();
  if (collection === 'response') {
    const status = numberHeader(headers, 'x-mdc-status', (n) => Number.isInteger(n) && n >= 100 && n <= 599, 'an HTTP status code (100-599)');
    const duration = numberHeader(headers, 'x-mdc-duration-ms', (n) => n >= 0, 'a duration in milliseconds (0 or more)');
    if (status !== undefined) extra.statuscode = status;
    if (duration !== undefined) extra.durationms = duration;
  }
  const captured: Record<string, string> = {};
  for (const name of config.request_logging.capture_headers) {
    const value = headers.get(name);
    if (value !== null) captured[name] = value;
  }
  if (Object.keys(captured).length > 0) extra.headers = captured;
  const correlationid = correlationOf(headers, undefined, true);
  return {
    correlationid,
    xrequestid: header(headers, 'x-request-id') ?? correlationid,
    modelversion: header(headers, 'x-mdc-model-version') ?? 'default',
    collectdatatype: '',
    agent: header(headers, 'user-agent', 1024) ?? '',
    time: now,
    datacontenttype: contentType,
    data,
    extra,
  };
}

interface Prepared {
  event: HubEvent;
  body: Buffer;
  /** Bytes to stage before the event is sent. */
  stage?: { blob: string; bytes: Uint8Array; contentType: string };
}

const payloadTail = Buffer.from('}}');

/**
 * The event's JSON with the data written as the caller's own (already validated) JSON text: no second
 * serialisation, and no second encoding when the text's bytes are at hand.
 */
function splicedBody(event: HubEvent, text: string, bytes: Uint8Array | undefined): Buffer {
  const { payload: _payload, ...rest } = event;
  const head = `${JSON.stringify(rest).slice(0, -1)},"payload":{"kind":"inline","data":`;
  if (!bytes) return Buffer.from(`${head}${text}}}`);
  const headBytes = Buffer.from(head);
  return Buffer.concat([headBytes, bytes, payloadTail], headBytes.byteLength + bytes.byteLength + payloadTail.byteLength);
}

function makeEvent(id: string, call: Call, base: EventBase, target: BlobTarget, payload: Payload): HubEvent {
  const { data: _data, extra, ...fields } = call;
  return { v: 1, id, ...base, ...fields, target, payload, ...extra };
}

function prepare(call: Call, base: EventBase, target: BlobTarget): Prepared {
  const id = randomUUID();
  const { data } = call;
  if ('json' in data) {
    const event = makeEvent(id, call, base, target, { kind: 'inline', data: data.json });
    const body = data.text === undefined ? Buffer.from(JSON.stringify(event)) : splicedBody(event, data.text, data.bytes);
    if (body.byteLength <= maxInlineEventBytes) return { event, body };
  }
  const blob = stagingBlobName({ ...base, id });
  const bytes = 'json' in data ? Buffer.from(JSON.stringify(data.json)) : data.raw;
  const contentType = 'json' in data ? 'application/json' : call.datacontenttype;
  const event = makeEvent(id, call, base, target, { kind: 'staged', blob, contentType, bytes: bytes.byteLength, json: 'json' in data });
  return { event, body: Buffer.from(JSON.stringify(event)), stage: { blob, bytes, contentType } };
}

async function stageBytes(container: ContainerClient, stage: NonNullable<Prepared['stage']>, options: { abortSignal?: AbortSignal }): Promise<void> {
  const upload = () =>
    container.getBlockBlobClient(stage.blob).uploadData(stage.bytes, { blobHTTPHeaders: { blobContentType: stage.contentType }, ...options });
  try {
    await upload();
  } catch (error) {
    // The system container is created on the first registration; a fresh account may lack it.
    if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    await container.createIfNotExists(options);
    await upload();
  }
}

/**
 * Collects one call (or several, for NDJSON) to a deployment's collection: validates names, key and body,
 * samples, stages what cannot ride in an event, and resolves once Event Hubs has accepted every event.
 */
export async function collect(request: CollectRequest, deps: CollectDependencies): Promise<CollectAnswer> {
  if (request.collection?.includes('/')) {
    throw badRequest('InvalidName', `the path has too many segments (${quote(request.collection)}): names cannot contain "/"; use /api/collect/{endpoint}/{deployment}/{collection}`, 'collection');
  }
  const endpoint = checkDeploymentName('endpoint', request.endpoint);
  const deployment = checkDeploymentName('deployment', request.deployment);
  const collection = checkCollectionName(request.collection);
  const options = deps.abortSignal ? { abortSignal: deps.abortSignal } : {};
  const record = await deps.store.authorize('ingest', endpoint, deployment, request.headers.get(keyHeader), options);
  const config = record.config;
  const settings = config.collections[collection];
  if (!settings) {
    throw new CollectorError(404, 'CollectionNotFound', `deployment ${endpoint}/${deployment} has no collection ${collection} (it has: ${Object.keys(config.collections).join(', ')})`, {
      path: 'collection',
    });
  }

  const now = eventTimeNow();
  const calls = isPayloadCollection(collection) ? [payloadCall(request, collection, config, now)] : customCalls(request, now);
  const correlationids = calls.map((c) => c.correlationid);
  const answer = { correlationid: correlationids[0]!, correlationids };
  if (!settings.enabled) return { accepted: 0, ids: [], ...answer, sampled: false, dropped: calls.length, reason: 'collection_disabled' };

  const rate = samplingRateOf(config, collection);
  const kept = calls.filter((c) => isSampledIn(c.correlationid, rate));
  const sampled = isSampledIn(correlationids[0]!, rate);
  const dropped = calls.length - kept.length;
  const dropInfo = dropped > 0 ? { dropped, reason: 'sampled_out' as const } : {};
  if (kept.length === 0) return { accepted: 0, ids: [], ...answer, sampled, ...dropInfo };

  const { base, target } = resolveCollection(config, endpoint, deployment, collection, deps.settings);
  const prepared = kept.map((call) => prepare(call, base, target));

  const staged = prepared.filter((p) => p.stage);
  if (staged.length > 0) {
    await Promise.all(
      staged.map(async ({ stage }) => {
        await stageBytes(deps.staging, stage!, options);
      }),
    );
  }
  const events: EventData[] = prepared.map((p) => ({ body: p.body, contentType: 'application/json' }));
  try {
    await senderFor(deps.producer, deps.sendTimeoutMs ?? defaultSendTimeoutMs).send(partitionKeyOf(base), events);
  } catch (error) {
    // Nothing was acknowledged, so the staged copies would never be referenced.
    await Promise.allSettled(staged.map(({ stage }) => deps.staging.getBlockBlobClient(stage!.blob).deleteIfExists()));
    throw error;
  }
  return { accepted: prepared.length, ids: prepared.map((p) => p.event.id), ...answer, sampled, ...dropInfo };
}
