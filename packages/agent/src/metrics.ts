// Prometheus metrics, all named podnet_*. One registry per agent (tests run several in a process).
// The ARP responder registers its own podnet_arp_* metrics in the same registry.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export const PEER_STATES = ['Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established'] as const;

export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'podnet_agent_' });
  const m = {
    registry,
    peerState: new Gauge({
      name: 'podnet_bgp_peer_state',
      help: 'BGP session state per peer: 1 for the current state, 0 for the others',
      labelNames: ['peer', 'type', 'state'],
      registers: [registry],
    }),
    peerEstablished: new Gauge({
      name: 'podnet_bgp_peer_established',
      help: '1 when the BGP session with the peer is Established',
      labelNames: ['peer', 'type'],
      registers: [registry],
    }),
    prefixesReceived: new Gauge({
      name: 'podnet_bgp_prefixes_received',
      help: 'Prefixes received from the peer (Adj-RIB-In)',
      labelNames: ['peer'],
      registers: [registry],
    }),
    prefixesAdvertised: new Gauge({
      name: 'podnet_bgp_prefixes_advertised',
      help: 'Prefixes advertised to the peer (Adj-RIB-Out)',
      labelNames: ['peer'],
      registers: [registry],
    }),
    maxPrefixesExceeded: new Counter({
      name: 'podnet_bgp_max_prefixes_exceeded_total',
      help: 'Sessions reset with Cease/Maximum Number of Prefixes Reached because the peer sent more than its limit',
      labelNames: ['peer'],
      registers: [registry],
    }),
    advertisements: new Gauge({
      name: 'podnet_bgp_originated_prefixes',
      help: 'Prefixes this node originates, by source',
      labelNames: ['source'],
      registers: [registry],
    }),
    routeReconcileDuration: new Histogram({
      name: 'podnet_route_reconcile_duration_seconds',
      help: 'Time to hand a desired route set to the route programmer and apply it',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    reconcileDuration: new Histogram({
      name: 'podnet_agent_reconcile_duration_seconds',
      help: 'Time of one pass of the agent loop: compute the desired state, then reconcile BGP peers, announcements, ARP and routes',
      labelNames: ['result'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    resyncDuration: new Histogram({
      name: 'podnet_agent_resync_duration_seconds',
      help: 'Time of a timer-driven resync (--resync-interval): kernel dump, recompute and apply',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    routeReconcileErrors: new Counter({
      name: 'podnet_route_reconcile_errors_total',
      help: 'Route reconciles that failed',
      registers: [registry],
    }),
    netfilterGeneration: new Gauge({
      name: 'podnet_netfilter_generation',
      help: 'Transactions applied to the inet podnet table by this agent (its rules generation)',
      registers: [registry],
    }),
    netfilterTransactions: new Counter({
      name: 'podnet_netfilter_transactions_total',
      help: 'Transactions applied to the inet podnet table, by mode (full: flushed and recreated; patch: only the chains, sets and elements that differ; elements: set elements only)',
      labelNames: ['mode'],
      registers: [registry],
    }),
    netfilterDriftRepairs: new Counter({
      name: 'podnet_netfilter_drift_repairs_total',
      help: 'Resyncs that found inet podnet changed by someone else and restored it',
      registers: [registry],
    }),
    netfilterSyncDuration: new Gauge({
      name: 'podnet_netfilter_last_sync_duration_seconds',
      help: 'Duration of the last sync of inet podnet (read back, compare, apply)',
      registers: [registry],
    }),
    netfilterErrors: new Counter({
      name: 'podnet_netfilter_errors_total',
      help: 'Syncs of inet podnet that failed, by code (NFT_ERR_EXEC: no nft program; NFT_ERR_APPLY: refused)',
      labelNames: ['code'],
      registers: [registry],
    }),
    netfilterApplied: new Gauge({
      name: 'podnet_netfilter_applied',
      help: '1 when the last sync of inet podnet succeeded, 0 when it failed (-1: netfilter off)',
      registers: [registry],
    }),
    ipamAllocations: new Gauge({
      name: 'podnet_ipam_allocations',
      help: 'Addresses allocated in the blocks affine to this node',
      registers: [registry],
    }),
    ipamBlocks: new Gauge({
      name: 'podnet_ipam_blocks',
      help: 'Blocks affine to this node, by affinity state',
      labelNames: ['state'],
      registers: [registry],
    }),
    ipamGcReleased: new Counter({
      name: 'podnet_ipam_gc_released_total',
      help: 'Leaked handles and empty blocks released by IPAM garbage collection',
      labelNames: ['kind'],
      registers: [registry],
    }),
    ipamGcLeader: new Gauge({
      name: 'podnet_ipam_gc_leader',
      help: "1 while this agent holds the agents' Lease and runs the cluster-wide IPAM garbage collection",
      registers: [registry],
    }),
    ipamPoolSize: new Gauge({
      name: 'podnet_ipam_pool_size_addresses',
      help: "Addresses in the IPPool's CIDR (exported by the lease holder, every --ipam-gc-interval)",
      labelNames: ['pool'],
      registers: [registry],
    }),
    ipamPoolUsed: new Gauge({
      name: 'podnet_ipam_pool_used_addresses',
      help: "Addresses allocated in the IPPool's blocks, on every node (exported by the lease holder)",
      labelNames: ['pool'],
      registers: [registry],
    }),
    datastoreSynced: new Gauge({
      name: 'podnet_datastore_synced',
      help: '1 once every informer has listed',
      registers: [registry],
    }),
    datastoreReachable: new Gauge({
      name: 'podnet_datastore_reachable',
      help: '1 while the API server answers',
      registers: [registry],
    }),
    computeProblems: new Gauge({
      name: 'podnet_compute_problems',
      help: 'Inputs skipped by the last compute (invalid objects, missing secrets)',
      registers: [registry],
    }),
    recomputes: new Counter({
      name: 'podnet_agent_recomputes_total',
      help: 'Times the desired state was recomputed',
      registers: [registry],
    }),
    nextHopsUnreachable: new Gauge({
      name: 'podnet_bgp_nexthops_unreachable',
      help: 'Next hops of received paths with no route in the kernel (left out of best-path selection)',
      registers: [registry],
    }),
    ready: new Gauge({
      name: 'podnet_agent_ready',
      help: '1 when /readyz answers 200',
      registers: [registry],
    }),
    cniDuration: new Histogram({
      name: 'podnet_cni_duration_seconds',
      help: 'CNI command latency: via="agent", a command the shim handed the agent over the CNI socket (from acceptance to answer); via="plugin", the standalone plugin process (from its start to its answer, from its timing record)',
      labelNames: ['command', 'result', 'via'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    cniTimingRecordsDropped: new Counter({
      name: 'podnet_cni_timing_records_dropped_total',
      help: 'Timing records of the standalone CNI plugin the agent could not use, by reason (invalid, too-many)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    cniSpares: new Gauge({
      name: 'podnet_cni_spare_addresses',
      help: 'Spare addresses the agent holds for ADDs on its CNI socket, by the address families they serve (4, 6, 46)',
      labelNames: ['families'],
      registers: [registry],
    }),
    cniSpareAllocations: new Counter({
      name: 'podnet_cni_spare_allocations_total',
      help: 'ADDs on the CNI socket that could take a spare address: given one, or missed (none left; allocated through the API)',
      labelNames: ['result'],
      registers: [registry],
    }),
    cniSparePending: new Gauge({
      name: 'podnet_cni_spare_records_pending',
      help: 'Spare addresses given to pods whose IPAM handle and annotation are not stored yet (retried while the API server does not answer)',
      registers: [registry],
    }),
    cniDeclined: new Counter({
      name: 'podnet_cni_declined_total',
      help: 'CNI requests the agent left to the standalone plugin, by reason (command, no-cap-sys-admin, sysctl-readonly, pid-namespace, netns, bad-request)',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
