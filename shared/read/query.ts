import { z } from 'zod';
import { badRequest, quote } from '../http-errors';
import { readFormats, type ReadFormat } from './encode';
import type { TimeWindow } from './window-reader';

/** The query of a read: `start` and `end` (ISO 8601 with a zone, or a date), `format`, `limit`. */
export interface ReadQuery extends TimeWindow {
  format: ReadFormat;
  limit?: number;
}

// A time without a zone would be read in the server's zone; monitors ask in UTC, so make them say it.
const isoTime = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/i;

function time(name: 'start' | 'end', raw: string | null): Date {
  if (raw === null || raw.trim() === '') throw badRequest('MissingParameter', `${name} is required: an ISO 8601 UTC time such as 2024-03-05T18:00:00Z`, name);
  const value = raw.trim();
  const parsed = isoTime.test(value) ? new Date(value) : undefined;
  if (!parsed || Number.isNaN(parsed.getTime())) {
    throw badRequest('InvalidParameter', `${name} ${quote(value)} is not an ISO 8601 time with a zone, such as 2024-03-05T18:00:00Z`, name);
  }
  return parsed;
}

const formatSchema = z.enum(readFormats);
const limitSchema = z.coerce.number().int().positive();

export function parseReadQuery(query: URLSearchParams, options: { formats?: readonly ReadFormat[] } = {}): ReadQuery {
  const start = time('start', query.get('start'));
  const end = time('end', query.get('end'));
  if (end.getTime() <= start.getTime()) throw badRequest('InvalidWindow', `end (${end.toISOString()}) must be after start (${start.toISOString()})`, 'end');
  const rawFormat = query.get('format');
  const allowed = options.formats ?? readFormats;
  const format = rawFormat === null || rawFormat === '' ? 'jsonl' : formatSchema.safeParse(rawFormat.toLowerCase()).data;
  if (!format || !allowed.includes(format)) {
    throw badRequest('InvalidParameter', `format ${quote(rawFormat ?? '')} is not supported: use ${allowed.join(' or ')}`, 'format');
  }
  const rawLimit = query.get('limit');
  let limit: number | undefined;
  if (rawLimit !== null && rawLimit !== '') {
    const parsed = limitSchema.safeParse(rawLimit);
    if (!parsed.success) throw badRequest('InvalidParameter', `limit ${quote(rawLimit)} must be a positive whole number`, 'limit');
    limit = parsed.data;
  }
  return { start, end, format, ...(limit !== undefined ? { limit } : {}) };
}
