import { z } from 'zod';
import { hubEventSchema, type HubEvent } from '../hub-event';
import { stringEnd } from '../json-string';

/**
 * The edge of `append`: a message as the trigger hands it over (parsed JSON, a string or bytes, depending on
 * the host) becomes a valid `HubEvent`, or a reason why it can never be written.
 */

export type Decoded =
  /**
   * `dataJson`: the inline data's own JSON text, cut out of a body that arrived as text or bytes, when it can be
   * proven to be exactly that value on one line: the line then carries it as it came, without serializing the
   * parsed data again (for 4 KB rows that was a fifth of append's own work per event).
   */
  | { ok: true; event: HubEvent; dataJson?: string }
  | { ok: false; reason: string };

// Zod's generated parser for the schema: same results and issues (it falls back to the interpreted parser on
// anything it rejects or cannot model), several times cheaper per event than walking the schema.
const compiledHubEventSchema = z.compile(hubEventSchema);

const containerName = /^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/;

function parseBody(body: unknown): { ok: true; value: unknown; text?: string } | { ok: false; reason: string } {
  let text: string | undefined;
  if (typeof body === 'string') text = body;
  else if (Buffer.isBuffer(body) || body instanceof Uint8Array) text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  if (text === undefined) return { ok: true, value: body };
  try {
    return { ok: true, value: JSON.parse(text) as unknown, text };
  } catch (error) {
    return { ok: false, reason: `body is not JSON: ${(error as Error).message}` };
  }
}

export function decodeHubEvent(body: unknown): Decoded {
  const parsed = parseBody(body);
  if (!parsed.ok) return parsed;
  const result = compiledHubEventSchema.safeParse(parsed.value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const at = issue.path.length > 0 ? issue.path.join('.') : '(message)';
    return { ok: false, reason: `invalid hub event at ${at}: ${issue.message}` };
  }
  const event = result.data;
  if (Number.isNaN(Date.parse(event.time))) return { ok: false, reason: `invalid hub event at time: not a date: ${event.time}` };
  if (!containerName.test(event.target.container)) {
    return { ok: false, reason: `invalid hub event at target.container: not a container name: ${event.target.container}` };
  }
  if (event.target.path.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) {
    return { ok: false, reason: `invalid hub event at target.path: empty, '.' or '..' segment in ${event.target.path}` };
  }
  if (parsed.text === undefined || event.payload.kind !== 'inline') return { ok: true, event };
  const dataJson = inlineDataText(parsed.text);
  return dataJson === undefined ? { ok: true, event } : { ok: true, event, dataJson };
}

/** How `collect` ends every inline event: the payload last, its data last in it (see ingest's splicedBody). */
const inlineTail = ',"payload":{"kind":"inline","data":';

/**
 * The text of `payload.data` in a body that parsed as JSON, or undefined when it cannot be cut out safely (the
 * caller then serializes the parsed data). The last `,"payload":{"kind":"inline","data":` is structure, never
 * string content (its quotes are unescaped), and the rest of the body up to the final `}}` is accepted only when
 * it is one JSON value: no comma and no closing bracket outside a string at its own top level. That rules out a
 * marker nested inside the data (its remainder closes more than it opens) and duplicate keys after it, so the
 * text is exactly the value JSON.parse gave `payload.data` (the last duplicate wins, and this is the last).
 * Whitespace between tokens is kept, but a text with a line break is not taken: a line is one line.
 */
export function inlineDataText(body: string): string | undefined {
  if (!body.endsWith('}}')) return undefined;
  // The last occurrence, found searching forward: V8's lastIndexOf compares naively and cost more than the parse.
  let at = body.indexOf(inlineTail);
  if (at < 0) return undefined;
  for (let next = body.indexOf(inlineTail, at + 1); next >= 0; next = body.indexOf(inlineTail, next + 1)) at = next;
  const text = body.slice(at + inlineTail.length, -2).trim();
  if (text === '' || text.includes('\n') || text.includes('\r')) return undefined;
  return isOneValue(text) ? text : undefined;
}

function isOneValue(text: string): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const end = stringEnd(text, i);
      if (end < 0) return false;
      i = end - 1;
    } else if (c === 0x5b || c === 0x7b) {
      depth++;
    } else if (c === 0x5d || c === 0x7d || c === 0x2c) {
      if (depth === 0) return false;
      if (c !== 0x2c) depth--;
    }
  }
  return depth === 0;
}
