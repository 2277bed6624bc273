import { app, type HttpFunctionOptions, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { eventHubProducer } from '../shared/clients';
import { readRequestBody } from '../shared/collect/body-limit';
import { collect as collectCalls } from '../shared/collect/ingest';
import { deploymentStore } from '../shared/deployment-store';
import { answerFor } from '../shared/http-errors';
import { getSettings } from '../shared/settings';

/** `POST /api/collect/{endpoint}/{deployment}/{collection}`: a model endpoint logs its inputs and outputs (SPEC §4). */
export async function collect(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const settings = getSettings();
    const body = await readRequestBody(request, settings.maxBodyBytes);
    const store = deploymentStore(settings);
    const answer = await collectCalls(
      { endpoint: request.params.endpoint, deployment: request.params.deployment, collection: request.params.collection, headers: request.headers, body },
      {
        settings,
        store,
        producer: eventHubProducer(settings),
        staging: store.container,
      },
    );
    return { status: 202, headers: { 'x-mdc-correlation-id': answer.correlationid }, jsonBody: answer };
  } catch (error) {
    const { answer, unexpected } = answerFor(error);
    if (unexpected) context.error('collect failed', error);
    return answer;
  }
}

export const collectOptions: HttpFunctionOptions = {
  methods: ['POST'],
  authLevel: 'anonymous',
  // The catch-all takes any extra segments, so a name holding a slash is a 400 that says so, not a bare 404.
  route: 'collect/{endpoint}/{deployment}/{*collection}',
  handler: collect,
};

app.http('collect', collectOptions);
