import { z } from 'zod';
import { hubEventSchema, type HubEvent } from '../hub-event';

/**
 * The edge of `append`: a message as the trigger hands it over (parsed JSON, a string or bytes, depending on
 * the host) becomes a valid `HubEvent`, or a reason why it can never be written.
 */

export type Decoded = { ok: true; event: HubEvent } | { ok: false; reason: string };

// Zod's generated parser for the schema: same results and issues (it falls back to the interpreted parser on
// anything it rejects or cannot model), several times cheaper per event than walking the schema.
const compiledHubEventSchema = z.compile(hubEventSchema);

const containerName = /^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/;

function parseBody(body: unknown): { ok: true; value: unknown } | { ok: false; reason: string } {
  let text: string | undefined;
  if (typeof body === 'string') text = body;
  else if (Buffer.isBuffer(body) || body instanceof Uint8Array) text = Buffer.from(body).toString('utf8');
  if (text === undefined) return { ok: true, value: body };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
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
  return { ok: true, event };
}
