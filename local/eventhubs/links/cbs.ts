import type { Message } from 'rhea';

/**
 * Answers a CBS put-token. The emulator grants every token (like the Event Hubs emulator with its well-known
 * key): the point is to speak the handshake the SDK performs before each link.
 */
export function answerPutToken(request: Message): Message {
  const properties = request.application_properties ?? {};
  const ok = properties.operation === 'put-token';
  return {
    correlation_id: request.message_id,
    body: null,
    application_properties: ok
      ? { 'status-code': 202, 'status-description': 'Accepted' }
      : { 'status-code': 400, 'status-description': `Unsupported CBS operation '${String(properties.operation)}'` },
  };
}
