// The Event Hubs namespace between `collect` and `append`. Local (SAS) auth is disabled, so only
// Microsoft Entra identities holding a data role can send or receive.

param namespaceName string
param location string
param tags object

@description('Throughput units of the Standard namespace (1 MB/s in, 2 MB/s out each).')
@minValue(1)
@maxValue(40)
param throughputUnits int

param eventHubName string

@description('Partitions of the hub: the most `append` instances that can write at once. Fixed after creation on Standard.')
@minValue(1)
@maxValue(32)
param partitionCount int

@description('Days events stay in the hub, so that `append` can catch up after an outage.')
@minValue(1)
@maxValue(7)
param retentionDays int

@description('Consumer group the `append` trigger reads with; $Default always exists and is not created.')
param consumerGroupName string

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: throughputUnits
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: eventHubName
  properties: {
    partitionCount: partitionCount
    retentionDescription: {
      cleanupPolicy: 'Delete'
      retentionTimeInHours: retentionDays * 24
    }
  }
}

resource consumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = if (consumerGroupName != '$Default') {
  parent: hub
  name: consumerGroupName
  properties: {}
}

output namespaceName string = namespace.name
output eventHubName string = hub.name
// serviceBusEndpoint is https://<namespace>.<cloud suffix>:443/; the SDK and the host want the bare host name.
output fullyQualifiedNamespace string = replace(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
