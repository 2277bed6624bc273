// A storage account reachable only with Microsoft Entra ID: shared keys and anonymous access are off, so a
// leaked connection string is worth nothing. Used twice: for the collected data and for the Functions host.

@description('Storage account name: 3-24 lowercase letters and digits, unique in Azure.')
param name string

param location string
param tags object

@description('Replication, e.g. Standard_LRS or Standard_ZRS.')
param skuName string

@description('Blob containers to create.')
param containers array

@description('Delete blobs under these prefixes ("<container>/") this many days after their last write; 0 keeps them.')
@minValue(0)
param retentionDays int = 0

@description('Prefixes the retention rule applies to. The collector\'s own state is deliberately not among them.')
param retentionPrefixes array = []

resource account 'Microsoft.Storage/storageAccounts@2024-01-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Blob soft delete stays off: Spark cannot read append blobs on accounts that have it on.
resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2024-01-01' = {
  parent: account
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' = [
  for containerName in containers: {
    parent: blobService
    name: containerName
    properties: {
      publicAccess: 'None'
    }
  }
]

resource retention 'Microsoft.Storage/storageAccounts/managementPolicies@2024-01-01' = if (retentionDays > 0 && !empty(retentionPrefixes)) {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          enabled: true
          name: 'delete-old-collected-data'
          type: 'Lifecycle'
          definition: {
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: retentionDays
                }
              }
            }
            filters: {
              blobTypes: [
                'blockBlob'
                'appendBlob'
              ]
              prefixMatch: retentionPrefixes
            }
          }
        }
      ]
    }
  }
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
