import { app, type HttpFunctionOptions, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { readRequestBody } from '../shared/collect/body-limit';
import { parseDeploymentConfig } from '../shared/deployment-config';
import { deploymentStore, viewOf } from '../shared/deployment-store';
import { answerFor, CollectorError } from '../shared/http-errors';
import { adminKeyHeader, isAdminKey } from '../shared/keys';
import { checkDeploymentName } from '../shared/names';
import { getSettings } from '../shared/settings';

/** A deployment YAML is a few kilobytes; this leaves room without inviting abuse. */
const maxConfigBytes = 256 * 1024;

/**
 * `PUT | GET | DELETE /api/deployments/{endpoint}/{deployment}` (SPEC §9), behind the admin key in the
 * `x-mdc-admin-key` header. PUT answers 201 with the new keys on creation, 200 on update (new keys only with
 * `?rotateKeys=true`); DELETE stops collection (ingest then answers 404) and keeps the collected data.
 */
export async function deployments(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const settings = getSettings();
    if (!isAdminKey(settings.adminKey, request.headers.get(adminKeyHeader))) {
      throw new CollectorError(401, 'InvalidAdminKey', `send the admin key (MDC_ADMIN_KEY) in the ${adminKeyHeader} header`, { path: adminKeyHeader });
    }
    const endpoint = checkDeploymentName('endpoint', request.params.endpoint);
    const deployment = checkDeploymentName('deployment', request.params.deployment);
    const store = deploymentStore(settings);

    if (request.method === 'GET') {
      const record = await store.get(endpoint, deployment);
      if (!record) throw new CollectorError(404, 'DeploymentNotFound', `deployment ${endpoint}/${deployment} is not registered`);
      return { status: 200, jsonBody: viewOf(record) };
    }
    if (request.method === 'DELETE') {
      if (!(await store.delete(endpoint, deployment))) {
        throw new CollectorError(404, 'DeploymentNotFound', `deployment ${endpoint}/${deployment} is not registered`);
      }
      return { status: 204 };
    }

    const body = await readRequestBody(request, maxConfigBytes);
    const config = parseDeploymentConfig(body.toString('utf8'), { endpoint, deployment, datastores: settings.datastores });
    const rotate = request.query.get('rotateKeys');
    if (rotate !== null && !/^(true|false)$/i.test(rotate)) {
      throw new CollectorError(400, 'InvalidQuery', 'rotateKeys must be true or false', { path: 'rotateKeys' });
    }
    const result = await store.put(endpoint, deployment, config, { rotateKeys: rotate?.toLowerCase() === 'true' });
    return {
      status: result.created ? 201 : 200,
      jsonBody: { ...viewOf(result.record), created: result.created, ...(result.keys ?? {}) },
    };
  } catch (error) {
    const { answer, unexpected } = answerFor(error);
    if (unexpected) context.error('deployments failed', error);
    return answer;
  }
}

export const deploymentsOptions: HttpFunctionOptions = {
  methods: ['PUT', 'GET', 'DELETE'],
  authLevel: 'anonymous',
  route: 'deployments/{endpoint}/{deployment}',
  handler: deployments,
};

app.http('deployments', deploymentsOptions);
