// The agent's imperative shell: informer events, RIB changes and timers trigger one coalesced
// recompute; reconcilers then make the speaker, the ARP responder and the kernel match `desired`.
import type { Logger } from 'pino';
import { detectNodeAddress, type NodeInterface, parseAutodetectionMethod } from './autodetect.js';
import { compute } from './compute.js';
import type { AgentConfig } from './config.js';
import { addressOf, type Cidr, cidrContains, parseCidr } from './ip.js';
import type { Metrics } from './metrics.js';
import { createMetrics, PEER_STATES } from './metrics.js';
import type { Advertisement, ArpInterface, Desired, DesiredPeer } from './model.js';
import { buildNetfilter } from './netfilter.js';
import type { NetfilterPort } from './netfilter-sync.js';
import { type PolicyPort, withPolicy } from './policy-sync.js';
import type { ArpPort, BgpPort, DatastorePort, PeerStatus, RoutesPort } from './ports.js';
import { diffAdvertisements, diffArp, diffPeers } from './reconcile.js';
import type { ServicePort } from './service-sync.js';
import type { AgentStatus, PeerStatusView, RouteStatusView } from './status.js';

export const NODE_IPV4_ANNOTATION = 'podnet.io/ipv4-address';

export interface AgentDeps {
  config: AgentConfig;
  log: Logger;
  datastore: DatastorePort;
  bgp: BgpPort;
  routes: RoutesPort;
  arp: ArpPort;
  /** Route protocol number shown in /status (from @podnet/routes). */
  routeProtocol?: { number: number; name: string };
  /** The node's interfaces and addresses, for autodetection. */
  interfaces?: () => Promise<NodeInterface[]>;
  /** Source address the kernel picks towards a destination, for `can-reach=`. */
  canReach?: (destination: string) => Promise<string | undefined>;
  metrics?: Metrics;
  now?: () => number;
  /**
   * IPAM garbage collection (ipam.gc): leaked addresses and empty blocks. Cluster-wide, so it runs
   * only while this agent holds the agents' Lease (setIpamGcLeader).
   */
  ipamGc?: (
    graceMs: number,
  ) => Promise<{ releasedHandles: string[]; releasedBlocks: string[]; pending?: number }>;
  /** Forgets the candidates ipamGc has seen once, so a new term waits a whole grace period again. */
  ipamGcForget?: () => void;
  /** Every pool's size and addresses in use (ipam.usage), exported by the lease holder after each GC pass. */
  ipamUsage?: () => Promise<{ pools: { name: string; capacity: string; used: number }[] }>;
  /** Timers of the IPAM garbage collection (a fake clock in tests). */
  clock?: { setTimeout(fn: () => void, ms: number): unknown; clearTimeout(h: unknown): void };
  /** Longest wait after start for sessions to come up before the first route reconcile. */
  routeHoldoffMs?: number;
  /** The start-up creation of the default IPPools and BGPConfiguration (defaults.ts). */
  defaultObjects?: Promise<{ created: string[] } | undefined>;
  /** Keeps the `inet podnet` nf_tables table (netfilter-sync.ts); absent with --netfilter off. */
  netfilter?: NetfilterPort;
  /** NetworkPolicy enforcement (policy-sync.ts), merged into `inet podnet`; absent with --network-policy off. */
  policy?: PolicyPort;
  /** Services and EndpointSlices for per-Service announcements (service-sync.ts). */
  services?: ServicePort;
  /**
   * Least time between the starts of two passes set off by Service or EndpointSlice changes
   * (default SERVICE_PASS_GAP_MS): a burst of them is one pass per gap, not one per change. Other
   * changes (pods, blocks, peers, routes) still start a pass at once.
   */
  servicePassGapMs?: number;
  /**
   * How long a pass set off by a Service or EndpointSlice change waits at least (default
   * SERVICE_PASS_DELAY_MS), so the changes that come together are one pass: a new LoadBalancer
   * Service and the address the allocator writes to its status a few milliseconds later.
   */
  servicePassDelayMs?: number;
}

/** Default AgentDeps.servicePassGapMs. */
export const SERVICE_PASS_GAP_MS = 50;
/** Default AgentDeps.servicePassDelayMs. */
export const SERVICE_PASS_DELAY_MS = 20;

type Phase = 'starting' | 'waiting-for-datastore' | 'resolving-address' | 'running' | 'stopping' | 'stopped';

export class Agent {
  readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly now: () => number;
  private phase: Phase = 'starting';
  private desired: Desired | undefined;
  private nodeAddress: string | undefined;
  private bgpStarted = false;
  private routesStarted = false;
  private routesHoldoffUntil = 0;
  private readonly peers = new Map<string, DesiredPeer>();
  private readonly adverts = new Map<string, Advertisement>();
  private readonly arpIfaces = new Map<string, ArpInterface>();
  private readonly timers: NodeJS.Timeout[] = [];
  private running: Promise<void> | undefined;
  private dirty = false;
  private loopActive = false;
  private lastTick = Date.now();
  private lastRouteError: string | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** A pass due once the Service gap has passed (schedule('services')). */
  private serviceTimer: NodeJS.Timeout | undefined;
  /** When the last pass started (this.now()). */
  private lastPassAt = Number.NEGATIVE_INFINITY;
  private readonly startedAt = new Date();
  private readonly peerLog = new Map<string, Logger>();
  /** Last maxPrefixesExceeded seen per peer (for the counter). */
  private readonly maxPrefixSeen = new Map<string, number>();
  private lastProblems = '';
  private startedIdentity: string | undefined;
  private warnedIdentity: string | undefined;
  private gcLeading = false;
  private gcTimer: unknown;
  private netfilterProblems: string[] = [];
  /** The last timer-driven resync (kernel dump and recompute): when it ended and how long it took. */
  private lastResync: { at: number; durationMs: number } | undefined;
  /** The peer each best path came from, by prefix (from the last recompute). */
  private bestPathFrom = new Map<string, string>();
  /** The pools of the last pass, parsed (undefined before it: every prefix counts). */
  private poolCidrs: Cidr[] | undefined;

  constructor(private readonly deps: AgentDeps) {
    this.log = deps.log.child({ component: 'agent', node: deps.config.nodeName });
    this.metrics = deps.metrics ?? createMetrics();
    this.now = deps.now ?? Date.now;
  }

  /** Starts the parts and the boot sequence; resolves once the loops run (not once ready). */
  async start(): Promise<void> {
    this.log.info({ config: { ...this.deps.config } }, 'starting');
    await this.deps.arp.start();
    await this.deps.datastore.start(() => this.schedule('datastore'));
    this.deps.services?.start(() => this.schedule('services'));
    // Only best paths inside a pool become routes (compute.ts); a change of any other prefix (e.g.
    // another node's Service address) needs no pass.
    this.deps.bgp.onRibChange(
      () => this.schedule('rib'),
      (prefix) => this.inAPool(prefix),
    );
    this.timers.push(
      setInterval(() => {
        this.lastTick = Date.now();
        this.tick();
      }, 1000),
      setInterval(() => void this.resync(), this.deps.config.resyncInterval),
    );
    if (this.deps.netfilter)
      this.timers.push(
        setInterval(() => void this.reconcileNetfilter(true), this.deps.config.netfilterResyncInterval),
      );
    else this.metrics.netfilterApplied.set(-1);
    void this.boot();
  }

  private async boot(): Promise<void> {
    const cfg = this.deps.config;
    this.phase = 'waiting-for-datastore';
    let waited = 0;
    while (!this.deps.datastore.synced()) {
      if (this.isStopping()) return;
      await sleep(200);
      waited += 200;
      if (waited % cfg.apiRetryInterval < 200)
        this.log.warn({ waitedMs: waited }, 'datastore not synced yet; waiting for the API server');
    }
    if (this.deps.defaultObjects) await this.awaitDefaultObjects(this.deps.defaultObjects);
    this.phase = 'resolving-address';
    for (;;) {
      if (this.isStopping()) return;
      try {
        this.nodeAddress = await this.resolveAddress();
        break;
      } catch (err) {
        this.log.error(
          { err, code: (err as { code?: string }).code },
          'cannot determine the node address; retrying',
        );
        await sleep(cfg.apiRetryInterval);
      }
    }
    const d = this.computeNow();
    const address = addressOf(this.nodeAddress);
    await this.deps.bgp.start(
      { ...d.node, address, routerId: d.node.routerId ?? address },
      Math.round(cfg.gracefulRestartTime / 1000),
    );
    this.bgpStarted = true;
    this.startedIdentity = JSON.stringify({
      address: d.node.address ?? address,
      as: d.node.asNumber,
      port: d.node.listenPort,
      clusterId: d.node.clusterId,
    });
    this.routesHoldoffUntil =
      this.now() + (this.deps.routeHoldoffMs ?? Math.min(cfg.gracefulRestartTime, 15_000));
    this.phase = 'running';
    this.log.info(
      { address: this.nodeAddress, as: d.node.asNumber, routerId: d.node.routerId },
      'node identity',
    );
    this.schedule('boot');
  }

  /**
   * The node's BGP identity is fixed once the speaker starts: give the default objects (e.g. a
   * BGPConfiguration with --default-as-number) up to --api-retry-interval to be created and seen
   * by the informers, so the identity is computed from them.
   */
  private async awaitDefaultObjects(pending: Promise<{ created: string[] } | undefined>): Promise<void> {
    const limit = this.deps.config.apiRetryInterval;
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      pending,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), limit);
      }),
    ]);
    clearTimeout(timer);
    const seen = (key: string) => {
      const [kind, name] = key.split('/');
      const snap = this.deps.datastore.snapshot();
      return (kind === 'IPPool' ? snap.pools : snap.bgpConfigs).some((o) => o.name === name);
    };
    const created = r?.created ?? [];
    for (let waited = 0; waited < limit && !this.isStopping() && !created.every(seen); waited += 100)
      await sleep(100);
  }

  /** Node annotation > --ipv4-address > autodetection (written back as the annotation). */
  private async resolveAddress(): Promise<string> {
    const cfg = this.deps.config;
    const node = await this.deps.datastore.getNode(cfg.nodeName);
    if (!node)
      throw new Error(`Node ${cfg.nodeName} does not exist in the API; create it or fix --node-name`);
    if (node.ipv4) return node.ipv4;
    let address = cfg.ipv4Address;
    if (address && !address.includes('/')) address = `${address}/32`;
    if (!address) {
      const method = parseAutodetectionMethod(cfg.ipAutodetectionMethod);
      const ifaces = (await this.deps.interfaces?.()) ?? [];
      address = await detectNodeAddress(method, ifaces, this.deps.canReach ?? (async () => undefined));
      this.log.info({ address, method: cfg.ipAutodetectionMethod }, 'autodetected node address');
    }
    await this.deps.datastore.annotateNode(cfg.nodeName, { [NODE_IPV4_ANNOTATION]: address });
    return address;
  }

  private inAPool(prefix: string): boolean {
    if (!this.poolCidrs) return true;
    const c = parseCidr(prefix);
    return c === undefined || this.poolCidrs.some((p) => cidrContains(p, c));
  }

  private isStopping() {
    return this.phase === 'stopping' || this.phase === 'stopped';
  }

  /** Coalesces triggers: at most one recompute runs, and one more follows if anything changed meanwhile. */
  schedule(reason: string): void {
    if (this.isStopping()) return;
    if (reason === 'services') {
      const wait = Math.max(
        this.deps.servicePassDelayMs ?? SERVICE_PASS_DELAY_MS,
        this.lastPassAt + (this.deps.servicePassGapMs ?? SERVICE_PASS_GAP_MS) - this.now(),
      );
      if (wait > 0) {
        this.serviceTimer ??= setTimeout(() => {
          this.serviceTimer = undefined;
          this.schedule('services-gap');
        }, wait);
        return;
      }
    }
    this.dirty = true;
    // Set before the loop starts: a reconcile step may trigger schedule() synchronously.
    if (this.loopActive) return;
    this.loopActive = true;
    this.running = this.loop(reason);
  }

  private async loop(reason: string): Promise<void> {
    try {
      while (this.dirty && !this.isStopping()) {
        this.dirty = false;
        this.lastPassAt = this.now();
        const end = this.metrics.reconcileDuration.startTimer();
        try {
          await this.reconcile();
          end({ result: 'ok' });
        } catch (err) {
          end({ result: 'error' });
          this.log.error({ err, reason }, 'reconcile failed; retrying in 1s');
          this.retryLater();
        }
      }
    } finally {
      this.loopActive = false;
    }
  }

  private retryLater() {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.schedule('retry');
    }, 1000);
  }

  private computeNow(): Desired {
    const snap = this.deps.datastore.snapshot();
    // A pool change is a datastore change, whose own pass reads every best path again.
    this.poolCidrs = snap.pools.flatMap((p) => parseCidr(p.cidr) ?? []);
    const cfg = this.deps.config;
    const rib = this.bgpStarted ? this.deps.bgp.rib() : [];
    this.bestPathFrom = new Map(rib.flatMap((e) => (e.from ? [[e.prefix, e.from] as const] : [])));
    const d = compute({
      nodeName: cfg.nodeName,
      ...(this.nodeAddress ? { nodeAddress: this.nodeAddress } : {}),
      ...snap,
      rib,
      ...(cfg.bgpListenPort !== undefined ? { listenPortOverride: cfg.bgpListenPort } : {}),
      gracefulRestartTime: Math.round(cfg.gracefulRestartTime / 1000),
      externalMaxPrefixes: cfg.bgpMaxPrefixes,
      ...(this.deps.services ? { services: this.deps.services.snapshot() } : {}),
    });
    this.deps.services?.report(d.serviceProblems ?? []);
    this.metrics.recomputes.inc();
    const problems = d.problems.join('\n');
    if (problems !== this.lastProblems) {
      for (const p of d.problems) this.log.warn({ problem: p }, 'input skipped');
      this.lastProblems = problems;
    }
    const me = snap.affinities.filter((a) => a.node === cfg.nodeName);
    for (const s of ['pending', 'confirmed', 'pendingDeletion'])
      this.metrics.ipamBlocks.set({ state: s }, me.filter((a) => a.state === s).length);
    const own = snap.blocks.filter((b) => b.affinity === cfg.nodeName);
    this.metrics.ipamAllocations.set(own.reduce((n, b) => n + (b.allocations?.length ?? 0), 0));
    this.metrics.computeProblems.set(d.problems.length);
    return d;
  }

  private async reconcile(): Promise<void> {
    // Until the Services are listed, announcing would withdraw the service routes peers kept over
    // a graceful restart (End-of-RIB follows the first announcements).
    if (!this.deps.datastore.synced() || this.deps.services?.synced() === false) return;
    // Read before computing: a pass that began while the speaker was still starting has neither
    // reconciled the peers nor seen the RIB, so it must not start the route programmer even if
    // the boot finishes while it runs.
    const bgpReady = this.bgpStarted && this.phase === 'running';
    const d = this.computeNow();
    this.desired = d;
    if (this.bgpStarted) {
      // The speaker's identity is fixed at start; a change needs a (graceful) restart of the agent.
      const now = {
        address: d.node.address,
        as: d.node.asNumber,
        port: d.node.listenPort,
        clusterId: d.node.clusterId,
      };
      const key = JSON.stringify(now);
      if (this.startedIdentity && key !== this.startedIdentity && key !== this.warnedIdentity) {
        this.warnedIdentity = key;
        this.log.error(
          { was: JSON.parse(this.startedIdentity), now },
          'node BGP identity changed (address, AS, listen port or cluster ID); restart the agent to apply it',
        );
      }
      // A failing peer or announcement never holds up the ARP responder or the routes.
      // Announcements first: a session configured in this pass can come up while the pass still
      // awaits (a peer connecting at once), and its first UPDATEs and End-of-RIB must already carry
      // every route (after a graceful restart, End-of-RIB ends the routes the peer kept for us).
      try {
        await this.reconcileAdvertisements(d);
        await this.reconcilePeers(d);
      } catch (err) {
        this.log.error({ err }, 'BGP reconcile failed; retrying in 1s');
        this.retryLater();
      }
    }
    // Not awaited: a slow or hung `nft` never holds up the routes (the reconciler keeps one pending model).
    void this.reconcileNetfilter(false).catch((err) => this.log.error({ err }, 'netfilter reconcile failed'));
    await this.reconcileArp(d);
    await this.reconcileRoutes(d, bgpReady);
  }

  /**
   * Makes `inet podnet` match the pools, nodes and BGPConfigurations (only when that changed, or on
   * `resync`: read the kernel back and repair drift). Never throws: a failure is in /status.
   */
  async reconcileNetfilter(resync: boolean): Promise<void> {
    const nf = this.deps.netfilter;
    if (!nf || this.isStopping() || !this.deps.datastore.synced()) return;
    const policy = this.deps.policy;
    // Until every policy watch has listed once, keep what the kernel has: an empty fragment would
    // open every isolated pod for that moment (e.g. at an agent restart).
    if (policy && !policy.synced()) return;
    const snap = this.deps.datastore.snapshot();
    const plan = buildNetfilter({
      nodeName: this.deps.config.nodeName,
      pools: snap.pools,
      nodes: snap.nodes,
      bgpConfigs: snap.bgpConfigs,
    });
    const problems = plan.problems.map((p) => `${p.kind} ${p.name}: ${p.message}`);
    if (problems.join('\n') !== this.netfilterProblems.join('\n'))
      for (const p of plan.problems)
        this.log.warn(
          { kind: p.kind, name: p.name, problem: p.message },
          'netfilter: input not applied as written',
        );
    this.netfilterProblems = problems;
    const me = snap.nodes.find((n) => n.name === this.deps.config.nodeName);
    const nodeAddresses = me
      ? [me.ipv4, me.ipv6, ...(me.internalIPs ?? [])].flatMap((a) => (a ? [addressOf(a)] : []))
      : [];
    if (this.nodeAddress && !nodeAddresses.includes(addressOf(this.nodeAddress)))
      nodeAddresses.push(addressOf(this.nodeAddress));
    await nf.sync(withPolicy(plan.table, policy?.fragment(nodeAddresses)), { resync });
  }

  private peerLogger(key: string) {
    let l = this.peerLog.get(key);
    if (!l) {
      l = this.log.child({ component: 'bgp', peer: key });
      this.peerLog.set(key, l);
    }
    return l;
  }

  private async reconcilePeers(d: Desired) {
    const diff = diffPeers(this.peers, d.peers);
    for (const p of diff.remove) {
      this.peerLogger(p.key).info({ type: p.type, source: p.source }, 'removing peer');
      try {
        await this.deps.bgp.removePeer(p);
      } catch (err) {
        // Forget it all the same: the speaker no longer has it, or will not run it.
        this.peerLogger(p.key).error({ err }, 'cannot remove peer');
      }
      this.peers.delete(p.key);
      this.maxPrefixSeen.delete(p.key);
      this.metrics.peerEstablished.remove({ peer: p.key, type: p.type });
      for (const s of PEER_STATES) this.metrics.peerState.remove({ peer: p.key, type: p.type, state: s });
    }
    for (const p of diff.update) {
      this.peerLogger(p.key).info({ type: p.type, source: p.source }, 'updating peer');
      try {
        await this.deps.bgp.updatePeer(p);
        this.peers.set(p.key, p);
      } catch (err) {
        this.peerLogger(p.key).error({ err }, 'cannot update peer; retrying');
        this.retryLater();
      }
    }
    for (const p of diff.add) {
      this.peerLogger(p.key).info(
        { type: p.type, source: p.source, remoteAs: p.remoteAs, passive: p.passive },
        'adding peer',
      );
      try {
        await this.deps.bgp.addPeer(p);
        this.peers.set(p.key, p);
      } catch (err) {
        this.peerLogger(p.key).error({ err }, 'cannot add peer; retrying');
        this.retryLater();
      }
    }
  }

  private async reconcileAdvertisements(d: Desired) {
    const diff = diffAdvertisements(this.adverts, d.advertisements);
    for (const a of diff.remove) {
      await this.deps.bgp.withdraw(a);
      this.adverts.delete(a.prefix);
    }
    for (const a of [...diff.add, ...diff.update]) {
      await this.deps.bgp.originate(a);
      this.adverts.set(a.prefix, a);
    }
    if (diff.add.length + diff.update.length + diff.remove.length)
      this.log.info(
        {
          originate: [...diff.add, ...diff.update].map((a) => a.prefix),
          withdraw: diff.remove.map((a) => a.prefix),
        },
        'advertisements changed',
      );
    for (const s of [
      'block',
      'borrowed',
      'service-cluster-ip',
      'service-external-ip',
      'service-loadbalancer-ip',
    ])
      this.metrics.advertisements.set({ source: s }, d.advertisements.filter((a) => a.source === s).length);
  }

  private async reconcileArp(d: Desired) {
    const diff = diffArp(this.arpIfaces, d.arpInterfaces);
    for (const i of [...diff.remove, ...diff.update]) {
      await this.deps.arp.removeInterface(this.arpIfaces.get(i.iface) ?? i);
      this.arpIfaces.delete(i.iface);
    }
    for (const i of [...diff.add, ...diff.update]) {
      try {
        await this.deps.arp.addInterface(i);
        this.arpIfaces.set(i.iface, i);
      } catch (err) {
        // Usually the veth is not there yet; the next pass picks it up.
        this.log.debug({ err, iface: i.iface }, 'ARP interface not served yet; retrying');
        this.retryLater();
      }
    }
  }

  /**
   * True once the first route reconcile may run: every peer `d` wants is up with End-of-RIB (so the
   * RIB, and with it `d`, is complete), or the holdoff passed.
   */
  private routesMayStart(d: Desired | undefined): boolean {
    if (!this.bgpStarted || this.phase !== 'running' || !d) return false;
    if (this.now() >= this.routesHoldoffUntil) return true;
    const status = new Map(this.deps.bgp.peers().map((p) => [p.key, p]));
    for (const p of d.peers) {
      const s = status.get(p.key);
      if (!this.peers.has(p.key) || s?.state !== 'Established' || s.endOfRib === false) return false;
    }
    return true;
  }

  private async reconcileRoutes(d: Desired, bgpReady: boolean) {
    if (!this.routesStarted) {
      if (!bgpReady || !this.routesMayStart(d)) return;
      this.log.info({ routes: d.routes.length }, 'starting the route programmer (reconcile, no flush)');
      // The complete desired set goes in before the first kernel dump and diff: started with an
      // empty one, the programmer would delete every route of ours (the ones a graceful restart
      // kept) and add them back moments later, dropping the packets in between.
      await this.deps.routes.setDesired(d.routes, d.families);
      await this.deps.routes.start();
      this.routesStarted = true;
    }
    const end = this.metrics.routeReconcileDuration.startTimer();
    try {
      await this.deps.routes.setDesired(d.routes, d.families);
      this.lastRouteError = undefined;
    } catch (err) {
      this.metrics.routeReconcileErrors.inc();
      this.lastRouteError = (err as Error).message;
      this.log.error({ err }, 'route reconcile failed');
      this.retryLater();
    } finally {
      end();
    }
  }

  private tick() {
    if (this.phase !== 'running') return;
    if (!this.routesStarted && this.routesMayStart(this.desired)) this.schedule('routes-holdoff');
    this.refreshPeerMetrics();
    this.metrics.datastoreSynced.set(this.deps.datastore.synced() ? 1 : 0);
    this.metrics.datastoreReachable.set(this.deps.datastore.reachable() ? 1 : 0);
    const s = this.status();
    this.metrics.ready.set(s.ready ? 1 : 0);
    this.metrics.nextHopsUnreachable.set(
      new Set(s.conditions.filter((c) => c.type === 'NextHopUnreachable').map((c) => c.subject)).size,
    );
  }

  private refreshPeerMetrics() {
    const byKey = new Map(this.deps.bgp.peers().map((p) => [p.key, p]));
    for (const p of this.peers.values()) {
      const s = byKey.get(p.key);
      const state = s?.state ?? 'Idle';
      this.metrics.peerEstablished.set({ peer: p.key, type: p.type }, state === 'Established' ? 1 : 0);
      for (const st of PEER_STATES)
        this.metrics.peerState.set({ peer: p.key, type: p.type, state: st }, st === state ? 1 : 0);
      this.metrics.prefixesReceived.set({ peer: p.key }, s?.prefixesReceived ?? 0);
      this.metrics.prefixesAdvertised.set({ peer: p.key }, s?.prefixesAdvertised ?? 0);
      // The speaker counts resets per peer; the metric is a counter: add what is new.
      const exceeded = s?.maxPrefixesExceeded ?? 0;
      const seen = this.maxPrefixSeen.get(p.key) ?? 0;
      if (exceeded > seen) this.metrics.maxPrefixesExceeded.inc({ peer: p.key }, exceeded - seen);
      this.maxPrefixSeen.set(p.key, exceeded);
    }
  }

  /** Timer-driven repair: a kernel resync plus a full recompute. */
  async resync(): Promise<void> {
    if (this.phase !== 'running') return;
    const started = this.now();
    if (this.routesStarted) {
      try {
        await this.deps.routes.resync();
      } catch (err) {
        this.metrics.routeReconcileErrors.inc();
        this.log.error({ err }, 'route resync failed');
      }
    }
    this.schedule('resync');
    await this.running?.catch(() => undefined);
    const end = this.now();
    this.lastResync = { at: end, durationMs: end - started };
    this.metrics.resyncDuration.observe((end - started) / 1000);
  }

  /**
   * Starts or stops the periodic IPAM garbage collection as this agent gains or loses the agents'
   * Lease. A pass already running when leadership is lost finishes; no new one starts. A new term
   * forgets what earlier terms saw, so nothing is released before it was seen twice a grace apart.
   */
  setIpamGcLeader(leading: boolean): void {
    const interval = this.deps.config.ipamGcInterval;
    if (!this.deps.ipamGc || interval <= 0 || leading === this.gcLeading) return;
    if (leading && this.isStopping()) return;
    this.gcLeading = leading;
    this.metrics.ipamGcLeader.set(leading ? 1 : 0);
    const clock = this.deps.clock ?? {
      setTimeout,
      clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout),
    };
    if (!leading) {
      clock.clearTimeout(this.gcTimer);
      this.gcTimer = undefined;
      // Only the holder exports pool usage, so a sum over agents never counts a pool twice.
      this.metrics.ipamPoolSize.reset();
      this.metrics.ipamPoolUsed.reset();
      this.log.info('lease lost: IPAM garbage collection stopped');
      return;
    }
    this.deps.ipamGcForget?.();
    const tick = () => {
      this.gcTimer = clock.setTimeout(tick, interval);
      void this.runIpamGc();
    };
    this.gcTimer = clock.setTimeout(tick, interval);
    this.log.info(
      { intervalMs: interval, graceMs: this.deps.config.ipamGcGrace },
      'lease held: IPAM garbage collection started',
    );
  }

  /** One pass of IPAM garbage collection, on the lease holder only; errors are logged, never fatal. */
  async runIpamGc(): Promise<void> {
    if (this.phase !== 'running' || !this.gcLeading || !this.deps.ipamGc || !this.deps.datastore.reachable())
      return;
    try {
      const r = await this.deps.ipamGc(this.deps.config.ipamGcGrace);
      this.log.debug(
        { released: r.releasedHandles.length + r.releasedBlocks.length, pending: r.pending },
        'IPAM garbage collection pass',
      );
      this.metrics.ipamGcReleased.inc({ kind: 'handle' }, r.releasedHandles.length);
      this.metrics.ipamGcReleased.inc({ kind: 'block' }, r.releasedBlocks.length);
      if (r.releasedHandles.length || r.releasedBlocks.length)
        this.log.info({ handles: r.releasedHandles, blocks: r.releasedBlocks }, 'IPAM garbage collected');
    } catch (err) {
      this.log.warn({ err }, 'IPAM garbage collection failed; next pass retries');
    }
    await this.exportPoolUsage();
  }

  /** The pools' size and use as gauges (podnet_ipam_pool_*), on the lease holder only. */
  private async exportPoolUsage(): Promise<void> {
    if (!this.deps.ipamUsage) return;
    try {
      const { pools } = await this.deps.ipamUsage();
      if (!this.gcLeading) return;
      this.metrics.ipamPoolSize.reset();
      this.metrics.ipamPoolUsed.reset();
      for (const p of pools) {
        this.metrics.ipamPoolSize.set({ pool: p.name }, Number(p.capacity));
        this.metrics.ipamPoolUsed.set({ pool: p.name }, p.used);
      }
    } catch (err) {
      this.log.warn({ err }, 'IPAM pool usage not read; next pass retries');
    }
  }

  live(): boolean {
    return Date.now() - this.lastTick < 10_000;
  }

  status(): AgentStatus {
    const d = this.desired;
    const peerStatus = new Map<string, PeerStatus>(
      this.bgpStarted ? this.deps.bgp.peers().map((p) => [p.key, p]) : [],
    );
    const peers: PeerStatusView[] = [...this.peers.values()].map((p) => {
      const s = peerStatus.get(p.key);
      return {
        address: p.address,
        port: p.port,
        type: p.type,
        source: p.source,
        ...(p.nodeName ? { nodeName: p.nodeName } : {}),
        localAs: p.localAs,
        remoteAs: p.remoteAs,
        passive: p.passive,
        state: s?.state ?? 'Idle',
        since: new Date(s?.since ?? this.startedAt.getTime()).toISOString(),
        prefixesReceived: s?.prefixesReceived ?? 0,
        prefixesAdvertised: s?.prefixesAdvertised ?? 0,
        ...(s?.lastError ? { lastError: s.lastError } : {}),
      };
    });
    const rs = this.routesStarted ? this.deps.routes.status() : undefined;
    const routeState = new Map(rs?.routes.map((r) => [r.dst, r]));
    const routes: RouteStatusView[] = (d?.routes ?? []).map((r) => {
      // The route programmer reports every desired route; one it does not know is not in the kernel.
      const k = routeState.get(r.dst);
      const state = rs ? (k?.state ?? 'missing') : 'not-started';
      const detail = k?.detail;
      switch (r.type) {
        case 'local':
          return {
            dst: r.dst,
            type: r.type,
            source: `pod ${r.pod}`,
            iface: r.iface,
            state,
            ...(detail ? { detail } : {}),
          };
        case 'blackhole':
          return { dst: r.dst, type: r.type, source: 'owned block', state, ...(detail ? { detail } : {}) };
        default: {
          const peer = this.bestPathFrom.get(r.dst);
          return {
            dst: r.dst,
            type: r.type,
            source: 'bgp',
            via: r.via,
            ...(peer ? { peer } : {}),
            state,
            ...(detail ? { detail } : {}),
          };
        }
      }
    });
    const synced = this.deps.datastore.synced();
    const routesApplied = this.routesStarted && !!rs?.applied && !this.lastRouteError;
    const down = peers.filter((p) => p.state !== 'Established');
    const sessionsUp = this.bgpStarted && down.length === 0;
    const reasons: string[] = [];
    if (!synced) reasons.push('datastore not synced');
    if (this.phase !== 'running') reasons.push(`agent ${this.phase}`);
    else if (!this.routesStarted) reasons.push('waiting for BGP sessions before the first route reconcile');
    else if (!routesApplied)
      reasons.push(
        `routes not applied${(this.lastRouteError ?? rs?.lastError) ? `: ${this.lastRouteError ?? rs?.lastError}` : ''}`,
      );
    // Down sessions hold readiness only until the first route reconcile. Later, a peer that drops
    // (another node's agent restarting: peers keep its routes, graceful restart) is reported in
    // /status, not by this node going unready: the DaemonSet controller replaces unready pods at
    // once, outside maxUnavailable, so one agent's rolling restart would restart them all.
    if (down.length && !this.routesStarted)
      reasons.push(`sessions not established: ${down.map((p) => `${p.address} ${p.state}`).join(', ')}`);
    // The data path itself: e.g. ip_forward is 0 and /proc/sys is read-only.
    const dataPathBroken = [...(rs?.notReady ?? [])];
    const nf = this.deps.netfilter?.status();
    if (nf && !nf.applied && synced)
      dataPathBroken.push(
        `netfilter table ${nf.table} not applied${nf.lastError ? `: ${nf.lastError}` : ''}`,
      );
    reasons.push(...dataPathBroken);
    const conditions = [
      ...(rs?.conditions ?? []),
      ...(nf && !nf.applied && nf.lastError
        ? [
            {
              type: 'NetfilterNotApplied' as const,
              subject: nf.table,
              message: nf.lastError,
              blocksReadiness: true,
            },
          ]
        : []),
      ...((this.bgpStarted ? this.deps.bgp.unreachableNextHops?.() : undefined) ?? []),
    ];
    const own = this.deps.datastore.synced()
      ? this.deps.datastore.snapshot().blocks.filter((b) => b.affinity === this.deps.config.nodeName)
      : [];
    const blocks = own.map((b) => {
      const [addr, len] = b.cidr.split('/');
      const size = 2 ** ((addr!.includes(':') ? 128 : 32) - Number(len));
      const inUse = b.allocations?.length ?? 0;
      return { cidr: b.cidr, inUse, free: Math.max(0, size - inUse) };
    });
    return {
      version: 1,
      node: d?.node ?? { name: this.deps.config.nodeName, asNumber: 0, listenPort: 0 },
      ready:
        synced &&
        routesApplied &&
        (sessionsUp || this.routesStarted) &&
        this.phase === 'running' &&
        dataPathBroken.length === 0,
      readiness: { synced, routesApplied, sessionsUp, reasons },
      datastore: { synced, reachable: this.deps.datastore.reachable() },
      routeProtocol: this.deps.routeProtocol ?? { number: this.deps.config.routeProtocol, name: 'podnet' },
      peers,
      routes,
      advertisements: d?.advertisements ?? [],
      arp: {
        mode: this.deps.arp.mode,
        interfaces: [...this.arpIfaces.keys()],
        replies: this.deps.arp.replies(),
      },
      problems: [...(d?.problems ?? []), ...this.netfilterProblems, ...(this.deps.policy?.problems() ?? [])],
      conditions,
      ...(nf ? { netfilter: nf } : {}),
      ipam: { blocks, addressesInUse: blocks.reduce((n, b) => n + b.inUse, 0) },
      ...(this.lastResync
        ? {
            lastResync: {
              time: new Date(this.lastResync.at).toISOString(),
              durationSeconds: this.lastResync.durationMs / 1000,
            },
          }
        : {}),
      startedAt: this.startedAt.toISOString(),
    };
  }

  /** Graceful stop (SIGTERM): kernel routes stay, peers keep our routes (graceful restart). */
  async stop(opts: { graceful: boolean } = { graceful: true }): Promise<void> {
    if (this.isStopping()) return;
    this.phase = 'stopping';
    this.log.info({ graceful: opts.graceful }, 'stopping');
    for (const t of this.timers) clearInterval(t);
    this.setIpamGcLeader(false);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.serviceTimer) clearTimeout(this.serviceTimer);
    await this.running?.catch(() => undefined);
    const steps: [string, () => Promise<void>][] = [
      ['bgp', () => (this.bgpStarted ? this.deps.bgp.stop({ graceful: opts.graceful }) : Promise.resolve())],
      [
        'routes',
        () => (this.routesStarted ? this.deps.routes.stop({ keepRoutes: opts.graceful }) : Promise.resolve()),
      ],
      ['arp', () => this.deps.arp.stop()],
      ['datastore', () => this.deps.datastore.stop()],
      ['services', () => this.deps.services?.stop() ?? Promise.resolve()],
    ];
    for (const [part, step] of steps) {
      try {
        await step();
      } catch (err) {
        this.log.error({ err, part }, 'error while stopping');
      }
    }
    this.phase = 'stopped';
    this.log.info('stopped');
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
