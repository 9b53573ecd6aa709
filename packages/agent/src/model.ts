// The agent's own view of its inputs and of the state it wants. Adapters turn @podnet/k8s objects and
// bgp-ts RIB events into these plain shapes, so `compute` stays pure and is tested without a kernel,
// an API server or a BGP peer.

import type { EndpointSliceView, ServiceProblem, ServiceView } from './service-routes.js';

export type Labels = Record<string, string>;

export interface NodeView {
  name: string;
  labels: Labels;
  /** `podnet.io/ipv4-address` (CIDR), when set. */
  ipv4?: string;
  /** `podnet.io/ipv6-address` (CIDR), when set: the next hop of this node's IPv6 announcements. */
  ipv6?: string;
  /** `podnet.io/as-number`, when set. */
  asNumber?: number;
  /** `podnet.io/route-reflector-cluster-id`, when set: this node is a route reflector. */
  rrClusterId?: string;
  /** The Node's InternalIP addresses (status.addresses), part of the cluster an isolated pool reaches. */
  internalIPs?: string[];
}

export interface PoolView {
  name: string;
  cidr: string;
  blockSize: number;
  disabled: boolean;
  disableBGPExport: boolean;
  nodeSelector?: string;
  /** Masquerade pod traffic to outside every pool (netfilter.ts). */
  natOutgoing?: boolean;
  /** Pods exchange traffic only with the cluster (netfilter.ts). */
  isolated?: boolean;
}

export interface BgpConfigView {
  /** `default` or `node.<name>`. */
  name: string;
  asNumber?: number;
  nodeToNodeMesh?: boolean;
  listenPort?: number;
  keepaliveTime?: number;
  holdTime?: number;
  gracefulRestart?: boolean;
  restartTime?: number;
  /** Communities attached to advertisements inside each CIDR. */
  communities?: { cidr: string; values: string[] }[];
  serviceClusterIPs?: string[];
  serviceExternalIPs?: string[];
  serviceLoadBalancerIPs?: string[];
  /** How Services with externalTrafficPolicy Cluster are announced (service-routes.ts). */
  serviceAdvertisement?: 'Aggregate' | 'PerService';
  /** Destinations never masqueraded. */
  natOutgoingExclusions?: string[];
  /** BFD for node-to-node sessions and the default for BGPPeers. */
  bfd?: BfdView;
}

/** BFD settings as configured (BGPConfiguration / BGPPeer `bfd`); unset fields fall through. */
export interface BfdView {
  enabled?: boolean | undefined;
  minTx?: number | undefined;
  minRx?: number | undefined;
  multiplier?: number | undefined;
  controlPlaneCheck?: boolean | undefined;
}

/** The BFD a session runs (ms, multiplier; RFC 5882 §4.3 handling on or off). */
export interface DesiredBfd {
  minTx: number;
  minRx: number;
  multiplier: number;
  controlPlaneCheck: boolean;
}

/** One entry of a prefix list: first match wins; no match → the list's default (accept). */
export interface PrefixRule {
  action: 'accept' | 'reject';
  cidr: string;
  /** Match prefix lengths >= ge (default: the rule's own length). */
  ge?: number;
  /** Match prefix lengths <= le (default: ge, i.e. exact length). */
  le?: number;
}

export interface PeerView {
  name: string;
  /** `a.b.c.d`, `a.b.c.d:port` or `[v6]:port`. Empty when the peer is chosen by peerSelector. */
  peerIP?: string;
  asNumber?: number;
  node?: string;
  nodeSelector?: string;
  peerSelector?: string;
  password?: { secretName: string; key: string };
  keepaliveTime?: number;
  holdTime?: number;
  maxRestartTime?: number;
  /** BGPPeer gracefulRestartNotification: the RFC 8538 N bit in our graceful restart capability. */
  gracefulRestartNotification?: boolean;
  /** BGPPeer longLivedGracefulRestart (RFC 9494): stale time we advertise, cap on the peer's. */
  longLivedGracefulRestart?: { staleTime: number; maxStaleTime?: number };
  /** `UseNodeIP` (default) binds the session to the node address; `None` lets the kernel choose; or an IP. */
  sourceAddress?: string;
  routeReflectorClient?: boolean;
  importFilter?: PrefixRule[];
  exportFilter?: PrefixRule[];
  maxPrefixes?: number;
  bfd?: BfdView;
}

export interface BlockView {
  cidr: string;
  /** The node the block is affine to (a bare node name), if any. */
  affinity?: string;
  /** Allocated addresses in the block (for podnetctl and borrowed-address detection). */
  allocations?: { ip: string; handle?: string }[];
}

export interface AffinityView {
  node: string;
  cidr: string;
  state: 'pending' | 'confirmed' | 'pendingDeletion';
}

export interface PodView {
  namespace: string;
  name: string;
  ips: string[];
  /** Host-side interface, `pn` + 11 hex of sha1(namespace.name). */
  iface: string;
}

/** A best path from the Loc-RIB, with every ECMP next hop. */
export interface RibEntry {
  prefix: string;
  nextHops: string[];
  /** The peer (address:port key) the best path came from. */
  from?: string;
}

export type PeerType = 'mesh' | 'global' | 'node' | 'rr-client' | 'route-reflector';

export interface DesiredPeer {
  /** `address:port`: one session per key. */
  key: string;
  /** The BGPPeer behind this session, or `node-to-node-mesh` / `route-reflector`. */
  source: string;
  /** The other node's name for node-to-node sessions. */
  nodeName?: string;
  type: PeerType;
  address: string;
  port: number;
  remoteAs: number;
  localAs: number;
  passive: boolean;
  localAddress?: string;
  holdTime: number;
  keepaliveTime: number;
  password?: string;
  /** Our graceful restart capability: on or off, and the restart time we announce. */
  gracefulRestart: { enabled: boolean; restartTime: number };
  /** Cap on the restart time the peer announces (BGPPeer maxRestartTime), seconds. */
  maxRestartTime?: number;
  /** RFC 8538: the N bit in our graceful restart capability (a NOTIFICATION keeps routes stale). */
  gracefulRestartNotification?: boolean;
  /** Long-lived graceful restart (RFC 9494): the stale time we announce, the cap on the peer's. */
  longLivedGracefulRestart?: { staleTime: number; maxStaleTime?: number };
  /** We act as route reflector for this peer. */
  routeReflectorClient: boolean;
  importFilter: PrefixRule[];
  exportFilter: PrefixRule[];
  /** Export only what this node originates (an external peer): bgp-ts `export.originatedOnly`. */
  exportOriginatedOnly?: boolean;
  /** Receive limit (BGPPeer maxPrefixes, or the default for the peer's type). */
  maxPrefixes: number;
  /** BFD towards the peer, when enabled. */
  bfd?: DesiredBfd;
}

export type RouteSource = 'pod' | 'block' | 'bgp';

export type DesiredRoute =
  | { type: 'local'; dst: string; iface: string; source: 'pod'; pod: string }
  | { type: 'blackhole'; dst: string; source: 'block' }
  | { type: 'remote'; dst: string; via: string[]; source: 'bgp' };

export type AdvertisementSource =
  | 'block'
  | 'borrowed'
  | 'service-cluster-ip'
  | 'service-external-ip'
  | 'service-loadbalancer-ip';

export interface Advertisement {
  prefix: string;
  nextHop: string;
  communities: string[];
  largeCommunities: string[];
  source: AdvertisementSource;
  /** LOCAL_PREF (iBGP peers only), from a Service annotation. */
  localPref?: number;
  /** The Services behind a per-Service address (`namespace/name`). */
  services?: string[];
}

export interface ArpInterface {
  iface: string;
  /** The pod's own addresses: requests for them are not answered (duplicate address detection). */
  podIps: string[];
}

export interface NodeIdentity {
  name: string;
  /** Node IPv4 address (no prefix), when known. */
  address?: string;
  asNumber: number;
  routerId?: string;
  listenPort: number;
  clusterId?: string;
}

export interface Desired {
  node: NodeIdentity;
  routes: DesiredRoute[];
  /**
   * Address families of the IPPools (sorted): the route programmer keeps forwarding on for these
   * only, so an IPv4-only cluster never turns on IPv6 forwarding.
   */
  families: (4 | 6)[];
  arpInterfaces: ArpInterface[];
  peers: DesiredPeer[];
  advertisements: Advertisement[];
  /** Inputs that were skipped, with why (logged by the shell, shown in /status). */
  problems: string[];
  /** What a Service asks for that is not announced as written (Events on the Service). */
  serviceProblems?: ServiceProblem[];
}

export interface ComputeInputs {
  nodeName: string;
  /** Node address in effect (annotation or autodetected), CIDR or bare. */
  nodeAddress?: string;
  nodes: NodeView[];
  pools: PoolView[];
  bgpConfigs: BgpConfigView[];
  peers: PeerView[];
  /** Secret data for peer passwords, keyed `secretName/key`. */
  secrets: Record<string, string>;
  blocks: BlockView[];
  affinities: AffinityView[];
  pods: PodView[];
  rib: RibEntry[];
  /** --bgp-listen-port, overriding BGPConfiguration. */
  listenPortOverride?: number;
  /** Restart time announced for graceful restart, seconds. */
  gracefulRestartTime?: number;
  /** Receive limit of an external BGPPeer without maxPrefixes (--bgp-max-prefixes). */
  externalMaxPrefixes?: number;
  /** Services and EndpointSlices (service-sync.ts); absent when the agent does not watch them. */
  services?: { services: ServiceView[]; slices: EndpointSliceView[] };
}
