import { app, type HttpFunctionOptions, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { dataBlobService, eventHubProducer } from '../shared/clients';
import { getSettings } from '../shared/settings';

/** A dead dependency must turn into a quick 503, not a request that hangs on the SDK's retries. */
const checkTimeoutMs = 3_000;

type State = { up: true } | { up: false; error: string };

async function check(probe: (signal: AbortSignal) => Promise<unknown>): Promise<State> {
  const signal = AbortSignal.timeout(checkTimeoutMs);
  try {
    await probe(signal);
    return { up: true };
  } catch (error) {
    const text = signal.aborted ? `no answer within ${checkTimeoutMs} ms` : error instanceof Error ? error.message : String(error);
    return { up: false, error: text };
  }
}

export async function health(_request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  let settings;
  try {
    settings = getSettings();
  } catch (error) {
    return { status: 503, jsonBody: { status: 'down', settings: 'invalid', error: error instanceof Error ? error.message : String(error) } };
  }
  const [storage, eventHubs] = await Promise.all([
    // Reading one container's existence needs only the data role the app holds (no account-level rights).
    check((abortSignal) => dataBlobService(settings).getContainerClient(settings.systemContainer).exists({ abortSignal })),
    check((abortSignal) => eventHubProducer(settings).getEventHubProperties({ abortSignal })),
  ]);
  const body: Record<string, string> = {
    status: storage.up && eventHubs.up ? 'ok' : 'down',
    storage: storage.up ? 'up' : 'down',
    eventHubs: eventHubs.up ? 'up' : 'down',
  };
  if (!storage.up) body.storageError = storage.error;
  if (!eventHubs.up) body.eventHubsError = eventHubs.error;
  if (body.status !== 'ok') context.warn('health:', JSON.stringify(body));
  return { status: body.status === 'ok' ? 200 : 503, jsonBody: body, headers: { 'cache-control': 'no-store' } };
}

export const healthOptions: HttpFunctionOptions = {
  methods: ['GET'],
  authLevel: 'anonymous',
  route: 'health',
  handler: health,
};

app.http('health', healthOptions);
