// Lets the collector register data assets in an Azure ML workspace. Deployed at the workspace's own
// resource group, which may be in another subscription than the collector.

param workspaceName string

@description('Principal (object) id of the collector\'s managed identity.')
param principalId string

// Built-in role ids: https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
var roleIds = {
  'AzureML Data Scientist': 'f6c7c914-8db3-469d-8ca1-694a8f32e121'
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = {
  name: workspaceName
}

resource dataScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, roleIds['AzureML Data Scientist'])
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds['AzureML Data Scientist'])
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
