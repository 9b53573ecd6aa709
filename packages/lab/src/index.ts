// @podnet/lab: runs compose.yaml on Linux network namespaces (../README.md).

export {
  AGENT_NAMESPACE,
  API_ENDPOINT_CONFIGMAP,
  type ClusterPod,
  cachedKubeBinDir,
  KUBE_BINARIES,
  kubeBuildStatus,
  RealCluster,
  type RealClusterConfig,
  SERVICE_IP,
} from './cluster/real.js';
export {
  activeServices,
  type ComposeNetwork,
  type ComposeProject,
  type ComposeService,
  inSubnet,
  ipToBigInt,
  type LabSettings,
  parseCidr,
  parseCompose,
  type ServiceRole,
} from './compose.js';
export { apiServerUrl, birdConfig, frrConfig, kubeconfig, torPeers } from './configs.js';
export { DockerLab, type DockerLabConfig } from './docker.js';
export { dockerMain, printDockerReport } from './docker-cli.js';
export {
  DEFAULT_ECHO_PORT,
  type EchoResult,
  type EchoTarget,
  echoReply,
  parseReply,
  parseTarget,
  peerText,
} from './echo.js';
export { LabError, LabErrorCode } from './errors.js';
export { Kube } from './kube.js';
export {
  DEFAULT_MODEL,
  type Expected,
  expectedFor,
  modelPoolFields,
  type NetworkModel,
  parseModels,
  selectModel,
  TRAFFIC,
  type Traffic,
  torExportFilters,
} from './models.js';
export {
  type Allowed as NetpolAllowed,
  type Matrix as NetpolMatrix,
  matrixKey,
  mismatches,
  NETPOL_NAMESPACES,
  NETPOL_PODS,
  type NetpolPod,
  NetpolWorld,
  type Probe as NetpolProbe,
  probes as netpolProbes,
  renderMatrix,
} from './netpol.js';
export { type LabObject, type LabObjects, labObjects } from './objects.js';
export { birdRows, frrRows } from './peers.js';
export { type LabPlan, type PlannedLink, type PlannedService, planLab, serviceAddress } from './plan.js';
export { matrix, peerTable, podTable, summary, table } from './report.js';
export {
  cleanupStaleLabs,
  DEFAULT_PREFIX,
  DEFAULT_STATE_DIR,
  Lab,
  type LabConfig,
  type LabTimeouts,
  type PeerRow,
  type Probe,
} from './runner.js';
export { shebangNodeFlags } from './sh.js';
export { validateComposeSpec } from './spec.js';
export type { LabState, PodRecord, ProcessRecord } from './state.js';
export {
  type Endpoint,
  type MeasuredRow,
  planTable,
  renderTable,
  rowProblems,
  type Seen,
  type TableRow,
} from './table.js';
