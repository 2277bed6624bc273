/** One row per object, as a pandas `to_dict('records')`. */
export type Records = ReadonlyArray<Record<string, unknown>>;
/** One array per column, as a pandas `to_dict('list')`. */
export type Columns = Readonly<Record<string, ReadonlyArray<unknown>>>;

export type DataShape = 'records' | 'columns';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Says which of the two shapes the collect API takes `data` has, or why it has neither. */
export function shapeOf(data: unknown): { shape: DataShape } | { problem: string } {
  if (Array.isArray(data)) {
    // The collector refuses a whole NDJSON batch for one bad call, so bad calls never leave the client.
    if (data.length === 0) return { problem: 'data has no rows' };
    const bad = data.findIndex((row) => !isPlainObject(row));
    return bad === -1 ? { shape: 'records' } : { problem: `row ${bad} is not an object: records are [{"column": value, ...}, ...]` };
  }
  if (isPlainObject(data)) {
    let length: number | undefined;
    for (const [column, values] of Object.entries(data)) {
      if (!Array.isArray(values)) return { problem: `column "${column}" is not an array: columns are {"column": [values...], ...}` };
      if (length !== undefined && values.length !== length) return { problem: `column "${column}" has ${values.length} values, the others ${length}` };
      length = values.length;
    }
    if (!length) return { problem: 'data has no rows' };
    return { shape: 'columns' };
  }
  return { problem: `data is ${data === null ? 'null' : typeof data}: pass records [{...}] or columns {"column": [...]}` };
}
