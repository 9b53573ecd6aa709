// @podnet/cni: the podnet CNI plugin. The executable is dist/podnet-cni.js (bin `podnet-cni`);
// this module exposes its parts for the agent, the lab and tests.
export { type CacheEntry, ResultCache } from './cache.js';
export { diffAttachment } from './check.js';
export {
  DEFAULT_CACHE_DIR,
  type NetConf,
  type PluginConfig,
  parseConfig,
  validateNetConf,
} from './config.js';
export { IpamConfigSchema, NetConfSchema } from './config-schema.js';
export type { Dataplane, ObservedAttachment, ObservedLink } from './dataplane.js';
export {
  type AllocateRequest,
  type Allocation,
  ANNOTATION_POD_IP,
  ANNOTATION_POD_IPS,
  type Datastore,
  type DatastoreStatus,
} from './datastore.js';
export { type CniCommand, type CniRequest, type PodRef, parseCniArgs, parseEnv } from './env.js';
export { CniError, CniErrorCode, CniErrorName, type CniErrorObject } from './errors.js';
export { IprouteDataplane } from './iproute.js';
export { type KubeTarget, loadKubeTarget, MiniKube } from './kube.js';
export { KubeDatastore } from './kube-datastore.js';
export { type RunHooks, type RunOutcome, runPlugin } from './main.js';
export { type HandedNamespace, NetlinkDataplane } from './netlink.js';
export {
  type AttachmentPlan,
  GATEWAY_V4,
  GATEWAY_V6,
  HOST_MAC,
  handleId,
  hostIfName,
  planAttachment,
  planResult,
} from './plan.js';
export { cmdAdd, cmdCheck, cmdDel, cmdGc, cmdStatus, type Deps, type Log } from './plugin.js';
export { type CniResult, convertResult, mergeResults, parseResult } from './result.js';
export {
  DEFAULT_AGENT_SOCKET,
  decodeShimRequest,
  encodeShimAnswer,
  encodeShimDecline,
  encodeShimRequest,
  SHIM_ACCEPTED,
  SHIM_MAGIC,
  type ShimDecode,
  type ShimRequest,
} from './shim-protocol.js';
export {
  DEFAULT_TIMING_DIR,
  MAX_TIMINGS_BYTES,
  parseTimingLine,
  TIMINGS_FILE,
  type TimingRecord,
  writeTiming,
} from './timing.js';
export { CURRENT_VERSION, compareVersions, SUPPORTED_VERSIONS, versionInfo } from './version.js';
