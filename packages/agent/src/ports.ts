// The seams between the agent's shell and the parts it drives. Each real package (@podnet/k8s,
// @podnet/bgp, @podnet/routes, @podnet/arp) sits behind one of these through a thin adapter, so the
// shell is unit-tested with fakes and the adapters are tested against the real parts.
import type {
  Advertisement,
  AffinityView,
  ArpInterface,
  BgpConfigView,
  BlockView,
  DesiredPeer,
  DesiredRoute,
  NodeIdentity,
  NodeView,
  PeerType,
  PeerView,
  PodView,
  PoolView,
  RibEntry,
} from './model.js';

export interface DatastoreSnapshot {
  nodes: NodeView[];
  pools: PoolView[];
  bgpConfigs: BgpConfigView[];
  peers: PeerView[];
  secrets: Record<string, string>;
  blocks: BlockView[];
  affinities: AffinityView[];
  pods: PodView[];
}

export interface DatastorePort {
  /** Starts the informers; `onChange` runs after any event. Resolves once started (not synced). */
  start(onChange: () => void): Promise<void>;
  /** True once every informer has listed at least once. */
  synced(): boolean;
  /** False while the API server cannot be reached (the last snapshot stays in use). */
  reachable(): boolean;
  snapshot(): DatastoreSnapshot;
  /** Reads one Node (direct GET, not the cache). */
  getNode(name: string): Promise<NodeView | undefined>;
  /** Merges annotations into a Node. */
  annotateNode(name: string, annotations: Record<string, string>): Promise<void>;
  stop(): Promise<void>;
}

export type PeerState = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';

export interface PeerStatus {
  key: string;
  state: PeerState;
  /** When the session entered its current state (ms since epoch). */
  since: number;
  prefixesReceived: number;
  prefixesAdvertised: number;
  lastError?: string;
  /** Sessions reset because the peer went over its receive limit (a counter). */
  maxPrefixesExceeded?: number;
  /** The peer has sent End-of-RIB since the session came up. */
  endOfRib?: boolean;
}

export interface BgpPort {
  start(
    node: NodeIdentity & { address: string; routerId: string },
    gracefulRestartTime: number,
  ): Promise<void>;
  addPeer(p: DesiredPeer): Promise<void>;
  updatePeer(p: DesiredPeer): Promise<void>;
  removePeer(p: DesiredPeer): Promise<void>;
  originate(a: Advertisement): Promise<void>;
  withdraw(a: Advertisement): Promise<void>;
  /** The best paths learned from peers (with ECMP next hops); the node's own are left out. Read only. */
  rib(): RibEntry[];
  /** Received paths left out of best-path selection because their next hop has no route. */
  unreachableNextHops?(): Condition[];
  /**
   * `cb` after the best paths or a session changed (deferred, once for a burst). With `relevant`,
   * a best-path change of a prefix it rejects does not call `cb` (a session change always does).
   */
  onRibChange(cb: () => void, relevant?: (prefix: string) => boolean): void;
  peers(): PeerStatus[];
  stop(opts: { graceful: boolean }): Promise<void>;
}

export type KernelRouteState =
  | 'installed'
  | 'applied'
  | 'missing'
  | 'pending'
  | 'conflict'
  | 'failed'
  | 'unresolved';

export interface RoutesStatus {
  /** The last reconcile applied every desired route (nothing failed, nothing pending for a bad reason). */
  applied: boolean;
  /**
   * Why the node's data path is broken though the routes are in (e.g. `net.ipv4.ip_forward` is 0
   * and /proc/sys is read-only): each one fails /readyz.
   */
  notReady?: string[];
  /** Conditions worth showing that do not fail readiness (e.g. routes whose next hop has no route). */
  conditions?: Condition[];
  lastError?: string;
  /**
   * Every desired destination with its state from the kernel's answers: installed (acknowledged
   * and held by a later dump), applied (acknowledged, not yet dumped), missing, pending (waiting
   * for its interface), conflict, failed (refused or rejected), unresolved (no next hop).
   */
  routes: { dst: string; state: KernelRouteState; detail?: string }[];
}

/** A named state of the node (status `conditions`), e.g. a read-only sysctl or an unreachable next hop. */
export interface Condition {
  type: 'SysctlUnwritable' | 'NextHopUnreachable' | 'NetfilterNotApplied';
  /** What it is about: a sysctl name, a next-hop address. */
  subject: string;
  message: string;
  /** True when it fails /readyz. */
  blocksReadiness: boolean;
}

export interface RoutesPort {
  /** Dumps the kernel and applies the desired set given so far: owned routes not in it are deleted. */
  start(): Promise<void>;
  /**
   * Replaces the desired set; before start() it only records it (nothing touches the kernel).
   * `families` (from the IPPools) are the address families whose forwarding sysctls are kept.
   */
  setDesired(routes: DesiredRoute[], families?: (4 | 6)[]): Promise<void>;
  /** Forces a resync from a kernel dump (timer / after errors). */
  resync(): Promise<void>;
  status(): RoutesStatus;
  stop(opts: { keepRoutes: boolean }): Promise<void>;
}

export interface ArpPort {
  mode: 'userspace' | 'kernel';
  start(): Promise<void>;
  addInterface(i: ArpInterface): Promise<void>;
  removeInterface(i: ArpInterface): Promise<void>;
  replies(): number;
  stop(): Promise<void>;
}

export type { PeerType };
