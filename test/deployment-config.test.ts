import { describe, expect, it } from 'vitest';
import { blobTargetOf, parseDeploymentConfig, samplingRateOf } from '../shared/deployment-config';
import { CollectorError } from '../shared/http-errors';

const options = { endpoint: 'credit-ep', deployment: 'blue', datastores: { workspaceblobstore: 'azureml-blobstore', other: 'other-data' } };

const wholeYaml = `
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: credit-ep
model: azureml:credit-model:1
instance_type: Standard_DS3_v2
instance_count: 1
data_collector:
  rolling_rate: minute
  sampling_rate: 0.8
  request_logging:
    capture_headers: [X-User-Id]
  collections:
    model_inputs:
      enabled: 'True'
      sampling_rate: 0.5
      data:
        name: my_inputs
        path: azureml://datastores/other/paths/custom/inputs/
        version: 2
    model_outputs:
      enabled: 'false'
    request:
      enabled: TRUE
`;

function refusal(body: string): CollectorError {
  try {
    parseDeploymentConfig(body, options);
  } catch (error) {
    if (error instanceof CollectorError) return error;
    throw error;
  }
  throw new Error('the configuration was accepted');
}

describe('deployment configuration (SPEC §3)', () => {
  it('reads a whole Azure ML deployment YAML, ignoring everything outside data_collector', () => {
    const config = parseDeploymentConfig(wholeYaml, options);
    expect(config).toEqual({
      rolling_rate: 'Minute',
      sampling_rate: 0.8,
      request_logging: { capture_headers: ['x-user-id'] },
      collections: {
        model_inputs: {
          enabled: true,
          sampling_rate: 0.5,
          data: { name: 'my_inputs', path: 'azureml://datastores/other/paths/custom/inputs/', version: '2' },
        },
        model_outputs: {
          enabled: false,
          data: {
            name: 'credit-ep-blue-model_outputs',
            path: 'azureml://datastores/workspaceblobstore/paths/modelDataCollector/credit-ep/blue/model_outputs',
            version: '1',
          },
        },
        request: {
          enabled: true,
          data: {
            name: 'credit-ep-blue-request',
            path: 'azureml://datastores/workspaceblobstore/paths/modelDataCollector/credit-ep/blue/request',
            version: '1',
          },
        },
      },
    });
    expect(samplingRateOf(config, 'model_inputs')).toBe(0.5);
    expect(samplingRateOf(config, 'model_outputs')).toBe(0.8);
    expect(blobTargetOf(config, 'model_inputs', options.datastores)).toEqual({ container: 'other-data', path: 'custom/inputs', rollingRate: 'Minute' });
    expect(blobTargetOf(config, 'request', options.datastores)).toEqual({
      container: 'azureml-blobstore',
      path: 'modelDataCollector/credit-ep/blue/request',
      rollingRate: 'Minute',
    });
  });

  it('reads only the block, as JSON, with the defaults of Azure ML', () => {
    const config = parseDeploymentConfig(JSON.stringify({ collections: { model_inputs: { enabled: true } } }), options);
    expect(config.rolling_rate).toBe('Hour');
    expect(config.sampling_rate).toBe(1);
    expect(config.request_logging.capture_headers).toEqual([]);
    expect(config.collections.model_inputs!.data.name).toBe('credit-ep-blue-model_inputs');
  });

  it('reads the data_collector block wrapped in JSON, and the long azureml:// path form', () => {
    const path = 'azureml://subscriptions/s1/resourcegroups/rg1/workspaces/ws1/datastores/workspaceblobstore/paths/a/b';
    const config = parseDeploymentConfig(
      JSON.stringify({ data_collector: { rolling_rate: 'DAY', collections: { model_inputs: { enabled: 'TRUE', data: { path } } } } }),
      options,
    );
    expect(config.rolling_rate).toBe('Day');
    expect(blobTargetOf(config, 'model_inputs', options.datastores)).toEqual({ container: 'azureml-blobstore', path: 'a/b', rollingRate: 'Day' });
  });

  it.each([
    ['an unknown rolling_rate', 'data_collector:\n  rolling_rate: Week\n  collections:\n    model_inputs:\n      enabled: True\n', 'data_collector.rolling_rate', 'Minute, Hour, Day, Month, Year'],
    ['a sampling_rate over 1', 'data_collector:\n  sampling_rate: 1.5\n  collections:\n    a:\n      enabled: True\n', 'data_collector.sampling_rate', '0.0 to 1.0'],
    ['enabled that is not a boolean', 'collections:\n  model_inputs:\n    enabled: maybe\n', 'data_collector.collections.model_inputs.enabled', 'True'],
    ['a per-collection rate that is text', 'collections:\n  model_inputs:\n    sampling_rate: half\n', 'data_collector.collections.model_inputs.sampling_rate', '0.0'],
    ['a path that is not azureml://', 'collections:\n  model_inputs:\n    data:\n      path: https://x/y\n', 'data_collector.collections.model_inputs.data.path', 'azureml://'],
    ['a path with ..', 'collections:\n  model_inputs:\n    data:\n      path: azureml://datastores/workspaceblobstore/paths/a/../b\n', 'data_collector.collections.model_inputs.data.path', 'azureml://'],
    ['a datastore not mapped', 'collections:\n  model_inputs:\n    data:\n      path: azureml://datastores/nosuch/paths/a\n', 'data_collector.collections.model_inputs.data.path', 'nosuch'],
    ['a bad collection name', 'collections:\n  model-inputs:\n    enabled: true\n', 'data_collector.collections.model-inputs', 'collection names'],
    ['six custom collections', `collections:\n${['a', 'b', 'c', 'd', 'e', 'f'].map((c) => `  ${c}:\n    enabled: true\n`).join('')}`, 'data_collector.collections', 'at most 5'],
    ['no collections', 'data_collector:\n  rolling_rate: Hour\n', 'data_collector.collections', 'collections'],
    ['no data_collector at all', 'name: blue\nmodel: azureml:m:1\n', 'data_collector', 'no data_collector'],
    ['capture_headers that is not a list', 'request_logging:\n  capture_headers: x-user\ncollections:\n  request:\n    enabled: true\n', 'data_collector.request_logging.capture_headers', 'header'],
  ])('refuses %s with a 400 naming the field', (_case, body, path, words) => {
    const error = refusal(body);
    expect(error.status).toBe(400);
    expect(error.path).toBe(path);
    expect(error.message).toContain(words);
  });

  it('refuses text that is not YAML, and an empty body', () => {
    expect(refusal('data_collector: [unclosed')).toMatchObject({ status: 400, code: 'InvalidYaml' });
    expect(refusal('  \n')).toMatchObject({ status: 400, code: 'EmptyBody' });
    expect(refusal('"just a string"')).toMatchObject({ status: 400, code: 'InvalidConfig' });
  });
});
