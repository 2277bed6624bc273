import type { HubEvent } from '../hub-event';

/**
 * One collected line (SPEC §5): a CloudEvents-style JSON object on one line. Fields are written in the order
 * of Azure ML's own lines, so files look the same to anyone who compares them byte by byte.
 */

/** What the line says about the payload. */
export type LineData =
  /** JSON inlined as `data`; `json` is its serialized form, computed once. */
  | { kind: 'data'; json: string }
  /** Large JSON written as its own blob: the line carries `dataref`. */
  | { kind: 'dataref'; url: string; bytes: number }
  /** Raw bytes written as their own blob: `data` is its URL and `datainblob` is "true". */
  | { kind: 'inblob'; url: string; bytes: number };

/** `bytes 0-<n-1>/<n>`, n being the byte length of the payload. */
export function contentRange(byteLength: number): string {
  return byteLength === 0 ? 'bytes 0-0/0' : `bytes 0-${byteLength - 1}/${byteLength}`;
}

/** The serialized form of inline data; `undefined` (no data at all) is written as `null`. */
export function serializeData(data: unknown): string {
  return JSON.stringify(data) ?? 'null';
}

const json = JSON.stringify;

/** `,"name":value`, or nothing when the value is undefined, as JSON.stringify leaves such a member out. */
function optional(name: string, value: unknown): string {
  return value === undefined ? '' : `,"${name}":${json(value)}`;
}

/**
 * The line, `\n`-terminated. JSON.stringify never emits a raw newline, so it is one line whatever the data.
 * The members are written one by one: stringifying two objects per line (and splicing them) cost about a third
 * more, at a cost paid for every event.
 */
export function buildLine(event: HubEvent, payload: LineData): string {
  let body: string;
  let bytes: number;
  if (payload.kind === 'data') {
    body = `"data":${payload.json}`;
    bytes = Buffer.byteLength(payload.json, 'utf8');
  } else if (payload.kind === 'dataref') {
    body = `"dataref":${json(payload.url)}`;
    bytes = payload.bytes;
  } else {
    body = `"data":${json(payload.url)},"datainblob":"true"`;
    bytes = payload.bytes;
  }
  return (
    `{"specversion":"1.0","id":${json(event.id)},"source":${json(event.source)},"type":${json(event.type)}` +
    `,"datacontenttype":${json(event.datacontenttype)},"time":${json(event.time)},${body}` +
    `,"correlationid":${json(event.correlationid)},"xrequestid":${json(event.xrequestid)}` +
    `,"modelversion":${json(event.modelversion)},"collectdatatype":${json(event.collectdatatype)},"agent":${json(event.agent)}` +
    optional('path', event.path) +
    optional('method', event.method) +
    optional('statuscode', event.statuscode) +
    optional('durationms', event.durationms) +
    optional('headers', event.headers) +
    `,"contentrange":"${contentRange(bytes)}"}\n`
  );
}

/** Events that may share a line: inline array data of custom logging (payload-log lines keep their own fields). */
function mergeable(event: HubEvent): event is HubEvent & { payload: { kind: 'inline'; data: unknown[] } } {
  return event.payload.kind === 'inline' && Array.isArray(event.payload.data) && event.path === undefined;
}

/** One line to write: the event whose fields it carries, and the inline data when there is some. */
export interface PlannedLine<E> {
  /** The events in it, in arrival order; the first gives the line its id, time and other fields. */
  members: E[];
  /** The serialized inline data (merged rows for a merged line); undefined for a staged payload. */
  json?: string;
}

/**
 * Groups the events of one blob into lines (SPEC §5, batching): events with the same correlation id and array
 * data become one line with their rows concatenated in arrival order; a merged line never grows past
 * `maxDataBytes` of data, so it is never one that should have been a `dataref`. Lines keep the order of their
 * first event. An item's `dataJson`, when set, is the JSON text of its inline data, used as it is.
 */
export function planLines<E extends { event: HubEvent; dataJson?: string }>(items: readonly E[], maxDataBytes: number): PlannedLine<E>[] {
  interface Open {
    line: PlannedLine<E>;
    rows: string[];
    bytes: number;
  }
  const lines: (PlannedLine<E> | Open)[] = [];
  const open = new Map<string, Open>();
  for (const item of items) {
    const { event } = item;
    if (event.payload.kind !== 'inline') {
      lines.push({ members: [item] });
      continue;
    }
    // The data's text as it arrived when decoding could prove it is exactly the data (see decode.ts).
    const json = item.dataJson ?? serializeData(event.payload.data);
    if (!mergeable(event)) {
      lines.push({ members: [item], json });
      continue;
    }
    // Trimmed: text as it arrived may hold spaces inside its brackets, and `[ ]` has no rows.
    const rows = json.slice(1, -1).trim();
    const rowBytes = Buffer.byteLength(rows, 'utf8');
    const current = open.get(event.correlationid);
    // +1 for the comma that joins two row lists.
    if (current && current.bytes + rowBytes + 1 <= maxDataBytes) {
      current.line.members.push(item);
      if (rows.length > 0) current.rows.push(rows);
      current.bytes += rowBytes + 1;
      continue;
    }
    const started: Open = { line: { members: [item] }, rows: rows.length > 0 ? [rows] : [], bytes: rowBytes + 2 };
    open.set(event.correlationid, started);
    lines.push(started);
  }
  return lines.map((entry) => ('rows' in entry ? { members: entry.line.members, json: `[${entry.rows.join(',')}]` } : entry));
}
