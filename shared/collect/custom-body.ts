import { badRequest, CollectorError } from '../http-errors';

/**
 * Custom logging bodies (SPEC §4): records, columns (a pandas `to_dict('list')`), or an envelope around
 * either, as JSON; or several of those as NDJSON, one call per line. Every form becomes records.
 */
export type Row = Record<string, unknown>;

export interface CustomCall {
  rows: Row[];
  /** The rows' JSON text as sent, when the call was a bare records array: it can be forwarded without re-serialising. */
  rowsJson?: string;
  correlationid?: string;
  xrequestid?: string;
  modelversion?: string;
  collectdatatype?: string;
  agent?: string;
  /** Normalised to UTC seconds, `Z`. */
  time?: string;
}

export type BodyFormat = 'json' | 'ndjson';

const ndjsonTypes = new Set(['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines', 'application/jsonlines']);

export function mediaTypeOf(contentType: string | null | undefined): string | undefined {
  const media = contentType?.split(';')[0]?.trim().toLowerCase();
  return media ? media : undefined;
}

export function isJsonMediaType(media: string | undefined): boolean {
  return media === 'application/json' || media === 'text/json' || (media !== undefined && /^application\/[a-z0-9.+-]+\+json$/.test(media));
}

/** JSON or NDJSON by Content-Type (JSON when none is sent); anything else is a 415. */
export function customBodyFormat(contentType: string | null | undefined): BodyFormat {
  const media = mediaTypeOf(contentType);
  if (media === undefined || isJsonMediaType(media)) return 'json';
  if (ndjsonTypes.has(media)) return 'ndjson';
  throw new CollectorError(
    415,
    'UnsupportedMediaType',
    `custom logging takes application/json or application/x-ndjson, not ${media}; log raw HTTP bodies to the request and response collections`,
    { path: 'content-type' },
  );
}

const envelopeKeys = new Set(['data', 'correlationid', 'xrequestid', 'modelversion', 'collectdatatype', 'agent', 'time']);
const isoTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function at(prefix: string, key: string | number): string {
  const part = typeof key === 'number' ? `[${key}]` : key;
  if (!prefix) return part;
  return typeof key === 'number' ? `${prefix}${part}` : `${prefix}.${part}`;
}

/** Records or columns → records. `path` names where the data sits, for messages. */
export function toRows(data: unknown, path: string): Row[] {
  const where = path || 'the body';
  if (Array.isArray(data)) {
    if (data.length === 0) throw badRequest('EmptyData', `${where} has no rows`, path || undefined);
    data.forEach((row, i) => {
      if (!isPlainObject(row)) throw badRequest('InvalidData', `${at(path, i)} must be an object of column values (a record)`, at(path, i));
    });
    return data as Row[];
  }
  if (isPlainObject(data)) {
    const columns = Object.keys(data);
    if (columns.length === 0) throw badRequest('EmptyData', `${where} has no columns`, path || undefined);
    let length: number | undefined;
    for (const column of columns) {
      const values = data[column];
      if (!Array.isArray(values)) {
        throw badRequest(
          'InvalidData',
          `${at(path, column)} must be a list: a columns body maps each column to its values (send a single row as [{...}])`,
          at(path, column),
        );
      }
      length ??= values.length;
      if (values.length !== length) {
        throw badRequest('InvalidData', `${at(path, column)} has ${values.length} values but ${at(path, columns[0]!)} has ${length}: columns must be the same length`, at(path, column));
      }
    }
    if (!length) throw badRequest('EmptyData', `${where} has no rows`, path || undefined);
    const rows: Row[] = [];
    for (let i = 0; i < length; i++) {
      const row: Row = {};
      for (const column of columns) row[column] = (data[column] as unknown[])[i];
      rows.push(row);
    }
    return rows;
  }
  throw badRequest('InvalidData', `${where} must be records [{...}], columns {"col": [...]} or an envelope {"data": ...}`, path || undefined);
}

function looksLikeEnvelope(value: Record<string, unknown>): boolean {
  if (!('data' in value)) return false;
  const keys = Object.keys(value);
  // A columns body may have a column called "data"; an envelope has only envelope fields.
  return keys.every((k) => envelopeKeys.has(k)) || !keys.every((k) => Array.isArray(value[k]));
}

function optionalText(envelope: Record<string, unknown>, key: string, prefix: string, max = 1024): string | undefined {
  const value = envelope[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value.trim() === '' || value.length > max || /[\u0000-\u001f]/.test(value)) {
    throw badRequest('InvalidEnvelope', `${at(prefix, key)} must be a non-empty string of at most ${max} characters`, at(prefix, key));
  }
  return value;
}

/** Parses an envelope `time`, which must say its zone, into UTC seconds with `Z`. */
export function normaliseTime(value: string, path: string): string {
  const ms = isoTime.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(ms)) throw badRequest('InvalidEnvelope', `${path} must be an ISO 8601 time with a zone, e.g. 2024-03-05T18:16:25Z`, path);
  return new Date(ms).toISOString().slice(0, 19) + 'Z';
}

/** One call (records, columns or envelope), already parsed from JSON. */
export function parseCall(value: unknown, prefix = ''): CustomCall {
  if (!isPlainObject(value) || !looksLikeEnvelope(value)) return { rows: toRows(value, prefix) };
  for (const key of Object.keys(value)) {
    if (!envelopeKeys.has(key)) throw badRequest('InvalidEnvelope', `${at(prefix, key)} is not an envelope field (${[...envelopeKeys].join(', ')})`, at(prefix, key));
  }
  const call: CustomCall = { rows: toRows(value['data'], at(prefix, 'data')) };
  const correlationid = optionalText(value, 'correlationid', prefix, 256);
  const xrequestid = optionalText(value, 'xrequestid', prefix, 256);
  const modelversion = optionalText(value, 'modelversion', prefix, 256);
  const collectdatatype = optionalText(value, 'collectdatatype', prefix, 256);
  const agent = optionalText(value, 'agent', prefix);
  const time = optionalText(value, 'time', prefix, 64);
  if (correlationid) call.correlationid = correlationid;
  if (xrequestid) call.xrequestid = xrequestid;
  if (modelversion) call.modelversion = modelversion;
  if (collectdatatype) call.collectdatatype = collectdatatype;
  if (agent) call.agent = agent;
  if (time) call.time = normaliseTime(time, at(prefix, 'time'));
  return call;
}

function withText(call: CustomCall, text: string): CustomCall {
  if (Object.keys(call).length === 1 && text.trimStart().startsWith('[')) call.rowsJson = text.trim();
  return call;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decode(body: Uint8Array): string {
  try {
    return utf8.decode(body);
  } catch {
    throw badRequest('InvalidEncoding', 'the body is not valid UTF-8');
  }
}

function parseJson(text: string, where: string, path?: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw badRequest('InvalidJson', `${where} is not valid JSON: ${detail}`, path);
  }
}

/**
 * The calls in a custom logging body. Any error rejects the whole body, so an NDJSON request with one bad line
 * sends nothing.
 */
export function parseCustomBody(body: Uint8Array, format: BodyFormat): CustomCall[] {
  const text = decode(body);
  if (text.trim() === '') throw badRequest('EmptyBody', 'the body is empty: send records, columns or an envelope');
  if (format === 'json') return [withText(parseCall(parseJson(text, 'the body')), text)];
  const calls: CustomCall[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const prefix = `line ${i + 1}`;
    calls.push(withText(parseCall(parseJson(line, prefix, prefix), prefix), line));
  });
  return calls;
}
