import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { EventHubProducerClient, type EventHubClientOptions } from '@azure/event-hubs';
import { BlobServiceClient } from '@azure/storage-blob';
import type { EventHubsConnection, Settings, StorageConnection } from './settings';

/** The credential an identity-based connection asks for: a user-assigned identity when a client id is set. */
export function credentialFor(connection: { credential?: 'managedidentity'; clientId?: string }): TokenCredential {
  if (connection.credential === 'managedidentity') {
    return connection.clientId ? new ManagedIdentityCredential({ clientId: connection.clientId }) : new ManagedIdentityCredential();
  }
  return new DefaultAzureCredential(connection.clientId ? { managedIdentityClientId: connection.clientId } : {});
}

export function createBlobServiceClient(connection: StorageConnection): BlobServiceClient {
  return connection.kind === 'connectionString'
    ? BlobServiceClient.fromConnectionString(connection.connectionString)
    : new BlobServiceClient(connection.blobServiceUri, credentialFor(connection));
}

export function createProducerClient(
  connection: EventHubsConnection,
  eventHubName: string,
  options: EventHubClientOptions = {},
): EventHubProducerClient {
  return connection.kind === 'connectionString'
    ? new EventHubProducerClient(connection.connectionString, eventHubName, options)
    : new EventHubProducerClient(connection.fullyQualifiedNamespace, eventHubName, credentialFor(connection), options);
}

/** One data-account client per process: the SDK client pools its connections. */
let blobService: BlobServiceClient | undefined;
export function dataBlobService(settings: Settings): BlobServiceClient {
  blobService ??= createBlobServiceClient(settings.storage);
  return blobService;
}

/** One producer per process: it keeps one AMQP connection open and reconnects by itself. */
let producer: EventHubProducerClient | undefined;
export function eventHubProducer(settings: Settings): EventHubProducerClient {
  producer ??= createProducerClient(settings.eventHubs, settings.eventHubName);
  return producer;
}

/** Closes the process-wide clients, so that a host can stop cleanly. */
export async function closeSharedClients(): Promise<void> {
  const closing = producer;
  producer = undefined;
  blobService = undefined;
  await closing?.close();
}
