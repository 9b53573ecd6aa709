// @podnet/policy: Kubernetes NetworkPolicy as a pure translation (see README.md).
export {
  type Allow,
  type FamilyAddrs,
  NAMESPACE_NAME_LABEL,
  type PeerSet,
  type PodPolicy,
  type PortMatch,
  peerEntries,
  type Translation,
  translate,
} from './compute.js';
export { Incremental, type IncrementalStats } from './incremental.js';
export {
  EGRESS_MAP,
  egressChain,
  INGRESS_MAP,
  ingressChain,
  LowerMemo,
  NODE_SET,
  POLICY_CHAIN,
  policyTable,
  setName,
} from './lower.js';
export { type ParsedPolicy, parsePolicy, policyTypes } from './parse.js';
export { matchesSelector } from './selector.js';
export * from './types.js';
