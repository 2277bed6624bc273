// The model data collector in one resource group: a Flex Consumption function app that reaches storage,
// Event Hubs and Application Insights as one user-assigned identity. No account key, SAS key or connection
// string carrying a secret is created, read or stored; the only secret is the admin key, a secure parameter.
targetScope = 'resourceGroup'

@description('Short prefix for resource names: lowercase letters and digits, starting with a letter.')
@minLength(2)
@maxLength(8)
param namePrefix string = 'mdc'

@description('Region for every resource; Flex Consumption must be offered there.')
param location string = resourceGroup().location

@description('Tags for every resource.')
param tags object = {}

@description('Key for the admin API (MDC_ADMIN_KEY), at least 16 characters.')
@secure()
@minLength(16)
param adminKey string

@description('Azure ML datastore name -> container on the data account (MDC_DATASTORES). Each container is created.')
param datastores object = {
  workspaceblobstore: 'azureml-blobstore'
}

@description('Container for the collector\'s own state: deployments, staged payloads, dead letters, the catalog.')
param systemContainer string = 'mdc-system'

@description('Days collected data is kept; older blobs in the datastore containers are deleted. 0 keeps them forever.')
@minValue(0)
param retentionDays int = 90

@description('Replication of the data account, e.g. Standard_LRS, Standard_ZRS, Standard_GRS.')
param dataStorageSku string = 'Standard_LRS'

param eventHubName string = 'mdc-events'

@description('Partitions of the hub: the most `append` writers at once.')
@minValue(1)
@maxValue(32)
param partitionCount int = 4

@description('Days events stay in the hub.')
@minValue(1)
@maxValue(7)
param eventRetentionDays int = 1

@description('Consumer group of the `append` trigger.')
param consumerGroupName string = 'append'

@minValue(1)
@maxValue(40)
param throughputUnits int = 1

@description('Most instances the function app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@allowed([
  '20'
  '22'
])
param nodeVersion string = '20'

@description('Optional Azure ML workspace resource id: data assets are registered there and the identity gets AzureML Data Scientist on it.')
param amlWorkspaceId string = ''

@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

var token = uniqueString(resourceGroup().id, namePrefix)
var dataContainers = map(items(datastores), datastore => string(datastore.value))
var deploymentContainer = 'app-package'
// A placeholder id keeps the split below valid when no workspace is given; the module is skipped then.
var amlIdParts = split(empty(amlWorkspaceId) ? '/subscriptions/none/resourceGroups/none/providers/Microsoft.MachineLearningServices/workspaces/none' : amlWorkspaceId, '/')

module identity './modules/identity.bicep' = {
  name: 'mdc-identity'
  params: {
    name: '${namePrefix}-id-${token}'
    location: location
    tags: tags
  }
}

module dataStorage './modules/storage.bicep' = {
  name: 'mdc-data-storage'
  params: {
    name: take('${namePrefix}data${token}', 24)
    location: location
    tags: tags
    skuName: dataStorageSku
    containers: union(dataContainers, [systemContainer])
    retentionDays: retentionDays
    retentionPrefixes: map(dataContainers, container => '${container}/')
  }
}

module hostStorage './modules/storage.bicep' = {
  name: 'mdc-host-storage'
  params: {
    name: take('${namePrefix}host${token}', 24)
    location: location
    tags: tags
    skuName: 'Standard_LRS'
    containers: [
      deploymentContainer
    ]
  }
}

module eventHubs './modules/eventhubs.bicep' = {
  name: 'mdc-event-hubs'
  params: {
    namespaceName: '${namePrefix}-ehns-${token}'
    location: location
    tags: tags
    throughputUnits: throughputUnits
    eventHubName: eventHubName
    partitionCount: partitionCount
    retentionDays: eventRetentionDays
    consumerGroupName: consumerGroupName
  }
}

module monitoring './modules/monitoring.bicep' = {
  name: 'mdc-monitoring'
  params: {
    logAnalyticsName: '${namePrefix}-log-${token}'
    appInsightsName: '${namePrefix}-appi-${token}'
    location: location
    tags: tags
    logRetentionDays: logRetentionDays
  }
}

module roles './modules/roles.bicep' = {
  name: 'mdc-roles'
  params: {
    identityName: identity.outputs.name
    dataAccountName: dataStorage.outputs.name
    hostAccountName: hostStorage.outputs.name
    eventHubsNamespaceName: eventHubs.outputs.namespaceName
    eventHubName: eventHubs.outputs.eventHubName
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module amlRole './modules/aml-role.bicep' = if (!empty(amlWorkspaceId)) {
  name: 'mdc-aml-role'
  scope: resourceGroup(amlIdParts[2], amlIdParts[4])
  params: {
    workspaceName: amlIdParts[8]
    principalId: identity.outputs.principalId
  }
}

// Exactly the settings shared/settings.ts reads, in their identity-based forms, plus the ones the Functions
// host reads itself (hostSettingNames). test/bicep.test.ts holds this list against the code.
var baseSettings = {
  MDC_STORAGE__blobServiceUri: dataStorage.outputs.blobEndpoint
  MDC_STORAGE__credential: 'managedidentity'
  MDC_STORAGE__clientId: identity.outputs.clientId
  MDC_EVENTHUB__fullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
  MDC_EVENTHUB__credential: 'managedidentity'
  MDC_EVENTHUB__clientId: identity.outputs.clientId
  MDC_EVENTHUB_NAME: eventHubs.outputs.eventHubName
  MDC_EVENTHUB_CONSUMER_GROUP: consumerGroupName
  MDC_ADMIN_KEY: adminKey
  MDC_DATASTORES: string(datastores)
  MDC_SYSTEM_CONTAINER: systemContainer
  AzureWebJobsStorage__blobServiceUri: hostStorage.outputs.blobEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
}
var workspaceSettings = empty(amlWorkspaceId) ? {} : {
  MDC_AML_WORKSPACE_ID: amlWorkspaceId
}

module functionApp './modules/function-app.bicep' = {
  name: 'mdc-function-app'
  params: {
    name: '${namePrefix}-func-${token}'
    planName: '${namePrefix}-plan-${token}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    deploymentContainerUrl: '${hostStorage.outputs.blobEndpoint}${deploymentContainer}'
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    nodeVersion: nodeVersion
    appSettings: union(baseSettings, workspaceSettings)
  }
  // The host starts as soon as the app exists; its identity must already hold its roles by then.
  dependsOn: [
    roles
  ]
}

output functionAppName string = functionApp.outputs.name
output functionAppUrl string = functionApp.outputs.url
output identityClientId string = identity.outputs.clientId
output identityPrincipalId string = identity.outputs.principalId
output dataStorageAccountName string = dataStorage.outputs.name
output dataBlobEndpoint string = dataStorage.outputs.blobEndpoint
output hostStorageAccountName string = hostStorage.outputs.name
output eventHubsNamespaceName string = eventHubs.outputs.namespaceName
output eventHubName string = eventHubs.outputs.eventHubName
output appInsightsName string = monitoring.outputs.appInsightsName
output dataContainers array = dataContainers
