/**
 * Collected lines (SPEC §5) into rows, the way Azure ML's preprocessor splits them: one row per record of
 * `data`, named `<correlationid>_<rowIndex>`. Payload-log lines (`request`/`response`) are not tabular, so
 * each line is one row that keeps `data` as JSON.
 */

export type Row = Record<string, unknown>;

export interface CollectedLine {
  time?: string;
  correlationid?: string;
  data?: unknown;
  dataref?: string;
  datainblob?: string;
  [field: string]: unknown;
}

/** Fields of a payload-log line that its row carries besides `data`. */
export const payloadRowFields = ['path', 'method', 'statuscode', 'durationms', 'headers', 'datacontenttype', 'datainblob'] as const;

/** The leading columns of every row. */
export const rowIdColumns = ['correlationid', 'rowid', 'time'] as const;

export function parseLine(text: string): CollectedLine | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as CollectedLine) : undefined;
  } catch {
    return undefined;
  }
}

/** Reads the JSON a `dataref` line points at (a blob URL of the same account). */
export type RefResolver = (url: string) => Promise<unknown>;

/** True when the line's data is elsewhere and must be read before its rows exist. */
export function needsRef(line: CollectedLine): line is CollectedLine & { dataref: string } {
  return typeof line.dataref === 'string' && line.data === undefined;
}

function head(correlationid: string, index: number, time: unknown): Row {
  return { correlationid, rowid: `${correlationid}_${index}`, time };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Appends the rows of one line to `into`. `data` is the line's data, or what its `dataref` points at. A
 * record's own `correlationid`/`rowid`/`time` never override the line's.
 */
export function pushRows(into: Row[], line: CollectedLine, payload: boolean, data: unknown = line.data): void {
  const correlationid = String(line.correlationid ?? '');
  if (payload) {
    const row = head(correlationid, 0, line.time);
    row.data = data ?? null;
    for (const field of payloadRowFields) if (line[field] !== undefined) row[field] = line[field];
    into.push(row);
    return;
  }
  if (!Array.isArray(data)) {
    const row = head(correlationid, 0, line.time);
    if (isRecord(data)) {
      Object.assign(row, data);
      Object.assign(row, head(correlationid, 0, line.time));
    } else {
      row.data = data ?? null;
    }
    into.push(row);
    return;
  }
  for (let i = 0; i < data.length; i++) {
    const record = data[i];
    const row = head(correlationid, i, line.time);
    if (isRecord(record)) {
      Object.assign(row, record);
      if ('correlationid' in record || 'rowid' in record || 'time' in record) Object.assign(row, head(correlationid, i, line.time));
    } else {
      row.data = record ?? null;
    }
    into.push(row);
  }
}

export interface RowsOfLineOptions {
  payload: boolean;
  resolveRef: RefResolver;
}

/** The rows of one line, reading its `dataref` when it has one. */
export async function rowsOfLine(line: CollectedLine, options: RowsOfLineOptions): Promise<Row[]> {
  const rows: Row[] = [];
  pushRows(rows, line, options.payload, needsRef(line) ? await options.resolveRef(line.dataref) : line.data);
  return rows;
}

/** The columns of a line's rows (not the leading id columns), in first-seen order. */
export function columnsOfLine(line: CollectedLine, payload: boolean): string[] {
  if (payload) return ['data', ...payloadRowFields.filter((f) => line[f] !== undefined)];
  const data = line.data;
  const records = Array.isArray(data) ? data : data === undefined ? [] : [data];
  const seen = new Set<string>();
  for (const record of records) {
    if (isRecord(record)) {
      for (const key of Object.keys(record)) if (!(rowIdColumns as readonly string[]).includes(key)) seen.add(key);
    } else {
      seen.add('data');
    }
  }
  return [...seen];
}
