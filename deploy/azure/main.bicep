// procforest's Azure Monitor destination: a custom Log Analytics table, a data collection
// endpoint, a data collection rule whose stream declaration matches the records procforest
// sends, and the role assignment that lets procforest's identity publish to it.
//
// az deployment group create -g rg-security -f deploy/azure/main.bicep \
//   -p workspaceName=law-security principalId=<procforest identity's principal id>

@description('Existing Log Analytics workspace.')
param workspaceName string

@description('Principal (object) id of the identity procforest runs as (workload identity).')
param principalId string

@description('Region of the endpoint and rule; the workspace region.')
param location string = resourceGroup().location

@description('Custom table name (ends with _CL).')
param tableName string = 'ProcforestAnomalies_CL'

@description('Retention of the table, days.')
param retentionInDays int = 90

var streamName = 'Custom-${tableName}'
var columns = [
  { name: 'TimeGenerated', type: 'datetime' }
  { name: 'TimeStamp', type: 'datetime' }
  { name: 'User', type: 'string' }
  { name: 'Resource', type: 'string' }
  { name: 'AnomalyScore', type: 'real' }
  { name: 'Interval', type: 'datetime' }
  { name: 'Computer', type: 'string' }
  { name: 'Account', type: 'string' }
  { name: 'AccountType', type: 'string' }
  { name: 'Process', type: 'string' }
  { name: 'CommandLines', type: 'string' }
  { name: 'EventCount', type: 'long' }
  { name: 'Score', type: 'real' }
  { name: 'RunId', type: 'string' }
  { name: 'RecordId', type: 'string' }
  { name: 'ModelHash', type: 'string' }
  { name: 'Explanation', type: 'string' }
  { name: 'Evidence', type: 'string' }
]

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource table 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = {
  parent: workspace
  name: tableName
  properties: {
    retentionInDays: retentionInDays
    schema: {
      name: tableName
      columns: columns
    }
  }
}

resource endpoint 'Microsoft.Insights/dataCollectionEndpoints@2023-03-11' = {
  name: 'dce-procforest'
  location: location
  properties: {
    networkAcls: { publicNetworkAccess: 'Enabled' }
  }
}

resource rule 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {
  name: 'dcr-procforest'
  location: location
  properties: {
    dataCollectionEndpointId: endpoint.id
    streamDeclarations: {
      '${streamName}': { columns: columns }
    }
    destinations: {
      logAnalytics: [
        { name: 'workspace', workspaceResourceId: workspace.id }
      ]
    }
    dataFlows: [
      {
        streams: [ streamName ]
        destinations: [ 'workspace' ]
        // Keep every column; the table already has procforest's schema.
        transformKql: 'source'
        outputStream: streamName
      }
    ]
  }
  dependsOn: [ table ]
}

// Monitoring Metrics Publisher on the rule: what the Logs Ingestion API requires.
resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(rule.id, principalId, 'Monitoring Metrics Publisher')
  scope: rule
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '3913510d-42f4-4e42-8a64-420c390055eb')
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

@description('--monitor-endpoint')
output endpoint string = endpoint.properties.logsIngestion.endpoint
@description('--monitor-dcr')
output dcrImmutableId string = rule.properties.immutableId
@description('--monitor-stream')
output stream string = streamName
