// @podnet/lab: runs compose.yaml on Linux network namespaces (../README.md).

export {
  type ClusterPod,
  cachedKubeBinDir,
  KUBE_BINARIES,
  RealCluster,
  type RealClusterConfig,
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
export { LabError, LabErrorCode } from './errors.js';
export { Kube } from './kube.js';
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
export { validateComposeSpec } from './spec.js';
export type { LabState, PodRecord, ProcessRecord } from './state.js';
