import { describe, expect, it } from 'vitest';
import { readSettings, SettingsError } from '../shared/settings';
import localSettings from '../local.settings.json';

const base = {
  MDC_STORAGE: 'UseDevelopmentStorage=true',
  MDC_EVENTHUB: 'Endpoint=sb://127.0.0.1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true',
  MDC_EVENTHUB_NAME: 'mdc-events',
  MDC_ADMIN_KEY: 'an-admin-key-of-some-length',
};

function failure(env: Record<string, string>): SettingsError {
  try {
    readSettings(env);
  } catch (error) {
    if (error instanceof SettingsError) return error;
    throw error;
  }
  throw new Error('readSettings accepted the settings');
}

describe('settings', () => {
  it('reads local.settings.json as they are', () => {
    const settings = readSettings(localSettings.Values);
    expect(settings.eventHubName).toBe('mdc-events');
    expect(settings.datastores).toEqual({ workspaceblobstore: 'azureml-blobstore' });
    expect(settings.storage).toEqual({ kind: 'connectionString', connectionString: 'UseDevelopmentStorage=true' });
  });

  it('takes identity-based connections as the Functions host names them', () => {
    const settings = readSettings({
      MDC_STORAGE__blobServiceUri: 'https://data.blob.core.windows.net',
      MDC_STORAGE__credential: 'managedidentity',
      MDC_STORAGE__clientId: '00000000-0000-0000-0000-000000000001',
      MDC_EVENTHUB__fullyQualifiedNamespace: 'ns.servicebus.windows.net',
      MDC_EVENTHUB__credential: 'managedidentity',
      MDC_EVENTHUB_NAME: 'mdc-events',
      MDC_ADMIN_KEY: 'an-admin-key-of-some-length',
      MDC_AML_WORKSPACE_ID: '/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.MachineLearningServices/workspaces/ws1',
    });
    expect(settings.storage).toEqual({
      kind: 'identity',
      blobServiceUri: 'https://data.blob.core.windows.net',
      credential: 'managedidentity',
      clientId: '00000000-0000-0000-0000-000000000001',
    });
    expect(settings.eventHubs).toEqual({ kind: 'identity', fullyQualifiedNamespace: 'ns.servicebus.windows.net', credential: 'managedidentity' });
    expect(settings.workspace).toMatchObject({ subscriptionId: 's1', resourceGroup: 'rg1', workspaceName: 'ws1' });
  });

  it.each([
    ['MDC_STORAGE', { ...base, MDC_STORAGE: '' }],
    ['MDC_EVENTHUB', { ...base, MDC_EVENTHUB: 'not a connection string' }],
    ['MDC_EVENTHUB_NAME', { ...base, MDC_EVENTHUB_NAME: ' ' }],
    ['MDC_ADMIN_KEY', { ...base, MDC_ADMIN_KEY: 'short' }],
    ['MDC_DATASTORES', { ...base, MDC_DATASTORES: '{bad json' }],
    ['MDC_DATASTORES', { ...base, MDC_DATASTORES: '{"workspaceblobstore":"Upper_Case"}' }],
    ['MDC_AML_WORKSPACE_ID', { ...base, MDC_AML_WORKSPACE_ID: '/subscriptions/s1' }],
    ['MDC_MAX_BODY_BYTES', { ...base, MDC_MAX_BODY_BYTES: 'lots' }],
    ['MDC_STORAGE__credential', { ...base, MDC_STORAGE: '', MDC_STORAGE__blobServiceUri: 'https://a.blob.core.windows.net', MDC_STORAGE__credential: 'password' }],
  ])('a bad or missing %s stops start-up with a message naming it', (name, env) => {
    const error = failure(env);
    expect(error.setting).toBe(name);
    expect(error.message).toContain(name);
  });
});
