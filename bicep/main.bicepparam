using './main.bicep'

param namePrefix = 'mdc'

// The admin key is read from the deploying shell, never written here: export MDC_ADMIN_KEY first.
param adminKey = readEnvironmentVariable('MDC_ADMIN_KEY')

// Datastore name -> container on the data account; register an Azure ML datastore for each (see README).
param datastores = {
  workspaceblobstore: 'azureml-blobstore'
}

param retentionDays = 90
param partitionCount = 4
param eventRetentionDays = 1
param consumerGroupName = 'append'
param maximumInstanceCount = 40
param instanceMemoryMB = 2048
param nodeVersion = '20'

// Set to /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>
// to register data assets in that workspace.
param amlWorkspaceId = ''
