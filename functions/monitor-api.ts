import { app, type HttpFunctionOptions, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { CatalogStore } from '../shared/assets/catalog';
import { dataBlobService } from '../shared/clients';
import { deploymentStore } from '../shared/deployment-store';
import { answerFor } from '../shared/http-errors';
import { adminKeyHeader, keyHeader } from '../shared/keys';
import { MonitorService, type Presented, type RowStream } from '../shared/read/monitor-service';
import { getSettings, type Settings } from '../shared/settings';

/**
 * The read API for monitors (SPEC §8): `GET /api/assets`, `/api/assets/{name}`, `/api/assets/{name}/data` and
 * `/api/deployments/{endpoint}/{deployment}/joined`. Rows are streamed: the body is a Node stream that reads
 * the blobs as the client reads the answer.
 */

let shared: { settings: Settings; service: MonitorService } | undefined;
function service(): MonitorService {
  const settings = getSettings();
  if (shared?.settings !== settings) {
    const blobService = dataBlobService(settings);
    shared = {
      settings,
      service: new MonitorService({
        blobService,
        catalog: new CatalogStore(blobService.getContainerClient(settings.systemContainer)),
        deployments: deploymentStore(settings),
        datastores: settings.datastores,
        adminKey: settings.adminKey,
      }),
    };
  }
  return shared.service;
}

function presented(request: HttpRequest): Presented {
  return { key: request.headers.get(keyHeader), adminKey: request.headers.get(adminKeyHeader) };
}

async function answer(context: InvocationContext, work: () => Promise<HttpResponseInit>): Promise<HttpResponseInit> {
  try {
    return await work();
  } catch (error) {
    const { answer: failed, unexpected } = answerFor(error);
    if (unexpected) context.error(`${context.functionName} failed`, error);
    return failed;
  }
}

const streamed = (rows: RowStream): HttpResponseInit => ({ status: 200, headers: { 'content-type': rows.contentType }, body: rows.body });

export async function listAssets(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return answer(context, async () => ({ status: 200, jsonBody: { assets: await service().listAssets(presented(request)) } }));
}

export async function getAsset(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return answer(context, async () => ({ status: 200, jsonBody: await service().getAsset(request.params.name ?? '', presented(request)) }));
}

export async function readAssetData(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return answer(context, async () => streamed(await service().readAsset(request.params.name ?? '', request.query, presented(request))));
}

export async function readJoined(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return answer(context, async () =>
    streamed(await service().readJoined(request.params.endpoint ?? '', request.params.deployment ?? '', request.query, presented(request))),
  );
}

export const listAssetsOptions: HttpFunctionOptions = { methods: ['GET'], authLevel: 'anonymous', route: 'assets', handler: listAssets };
export const getAssetOptions: HttpFunctionOptions = { methods: ['GET'], authLevel: 'anonymous', route: 'assets/{name}', handler: getAsset };
export const readAssetDataOptions: HttpFunctionOptions = { methods: ['GET'], authLevel: 'anonymous', route: 'assets/{name}/data', handler: readAssetData };
export const readJoinedOptions: HttpFunctionOptions = {
  methods: ['GET'],
  authLevel: 'anonymous',
  route: 'deployments/{endpoint}/{deployment}/joined',
  handler: readJoined,
};

app.setup({ enableHttpStream: true });
app.http('list-assets', listAssetsOptions);
app.http('get-asset', getAssetOptions);
app.http('read-asset-data', readAssetDataOptions);
app.http('read-joined', readJoinedOptions);
