import { randomUUID } from 'node:crypto';
import type { HubEvent } from '../../shared/hub-event';

/** A valid hub event, as `collect` would put it on the hub, with whatever a test changes. */
export function hubEvent(overrides: Partial<HubEvent> = {}): HubEvent {
  return {
    v: 1,
    id: randomUUID(),
    endpoint: 'ep',
    deployment: 'blue',
    collection: 'model_inputs',
    time: '2024-03-05T18:16:25Z',
    source: '/subscriptions//resourceGroups//providers/Microsoft.MachineLearningServices/workspaces//onlineEndpoints/ep/deployments/blue',
    type: 'azureml.inference.model_inputs',
    datacontenttype: 'application/json',
    correlationid: 'c1',
    xrequestid: 'c1',
    modelversion: 'default',
    collectdatatype: 'pandas.core.frame.DataFrame',
    agent: 'test',
    target: { container: 'azureml-blobstore', path: 'modelDataCollector/ep/blue/model_inputs', rollingRate: 'Hour' },
    payload: { kind: 'inline', data: [{ LIMIT_BAL: 502970, AGE: 54 }] },
    ...overrides,
  };
}
