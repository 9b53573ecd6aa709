// @podnet/agent: the node agent. The pure core is exported for podnetctl, the lab and tests.

export { podView } from './adapters/views.js';
export { Agent, type AgentDeps, NODE_IPV4_ANNOTATION } from './agent.js';
export type { NodeInterface } from './autodetect.js';
export {
  type AutodetectionMethod,
  detectNodeAddress,
  parseAutodetectionMethod,
  routerIdFor,
} from './autodetect.js';
export { compute, DEFAULT_AS_NUMBER, resolveAsNumber, splitPeerIP } from './compute.js';
export { type AgentConfig, helpText, loadConfig, parseDuration } from './config.js';
export { AgentError, ConfigError } from './errors.js';
/** The address helpers (thin wrappers over @podnet/net), for the cross-package agreement test. */
export * as ip from './ip.js';
export { createMetrics, type Metrics } from './metrics.js';
export type * from './model.js';
export type {
  ArpPort,
  BgpPort,
  DatastorePort,
  DatastoreSnapshot,
  KernelRouteState,
  PeerState,
  PeerStatus,
  RoutesPort,
  RoutesStatus,
} from './ports.js';
export { diffAdvertisements, diffArp, diffPeers } from './reconcile.js';
export { compileSelector } from './selector.js';
export { type AgentStatus, type PeerStatusView, type RouteStatusView, startStatusServer } from './status.js';
