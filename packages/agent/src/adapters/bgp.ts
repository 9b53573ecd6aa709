// BgpPort over bgp-ts's Speaker. One speaker per agent; peers are added, updated and removed one
// at a time, so a change to one BGPPeer never resets another session.

import type { BfdInstance } from '@podnet/bfd';
import { type PeerConfig, type RibChange, Speaker, type PeerStatus as SpeakerPeerStatus } from '@podnet/bgp';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Advertisement, DesiredPeer, NodeIdentity, PrefixRule, RibEntry } from '../model.js';
import type { BgpPort, Condition, PeerState, PeerStatus } from '../ports.js';
import { BfdLink } from './bfd.js';

function policy(rules: PrefixRule[], originatedOnly = false) {
  if (rules.length === 0) return originatedOnly ? { originatedOnly } : undefined;
  return {
    ...(originatedOnly ? { originatedOnly } : {}),
    prefixList: rules.map((r) => ({
      prefix: r.cidr,
      action: r.action,
      ...(r.ge !== undefined ? { ge: r.ge } : {}),
      ...(r.le !== undefined ? { le: r.le } : {}),
    })),
    // A list that names what to accept rejects the rest (as router prefix lists do); a list of
    // rejections only accepts the rest.
    defaultAction: rules.some((r) => r.action === 'accept') ? ('reject' as const) : ('accept' as const),
  };
}

export function toPeerConfig(p: DesiredPeer): PeerConfig {
  const imp = policy(p.importFilter);
  const exp = policy(p.exportFilter, p.exportOriginatedOnly === true);
  const llgr = p.longLivedGracefulRestart;
  return {
    address: p.address,
    port: p.port,
    asn: p.remoteAs,
    passive: p.passive,
    holdTime: p.holdTime,
    keepalive: p.keepaliveTime > 0 ? p.keepaliveTime : undefined,
    ...(p.password !== undefined ? { md5Password: p.password } : {}),
    ...(p.localAddress ? { sourceAddress: p.localAddress } : {}),
    routeReflectorClient: p.routeReflectorClient,
    maxPrefixes: p.maxPrefixes,
    ...(p.maxRestartTime !== undefined ? { maxRestartTime: p.maxRestartTime } : {}),
    ...(p.gracefulRestart.enabled
      ? {
          gracefulRestart: {
            restartTime: Math.max(llgr ? 0 : 1, Math.min(4095, p.gracefulRestart.restartTime)),
            // RFC 8538: the N bit, so a NOTIFICATION keeps routes stale as in a restart.
            ...(p.gracefulRestartNotification ? { notification: true } : {}),
          },
        }
      : {}),
    // RFC 9494 rides on graceful restart: without it the capability is not sent.
    ...(p.gracefulRestart.enabled && llgr
      ? {
          longLivedGracefulRestart: { staleTime: llgr.staleTime },
          ...(llgr.maxStaleTime !== undefined ? { maxLongLivedStaleTime: llgr.maxStaleTime } : {}),
        }
      : {}),
    ...(imp ? { import: imp } : {}),
    ...(exp ? { export: exp } : {}),
    connectRetry: 2,
    description: `${p.type} ${p.source}${p.nodeName ? ` (${p.nodeName})` : ''}`,
  };
}

/** bgp-ts FSM state names → RFC 4271 names as podnetctl prints them. */
const STATE_NAMES: Record<string, PeerState> = {
  idle: 'Idle',
  connect: 'Connect',
  active: 'Active',
  'open-sent': 'OpenSent',
  'open-confirm': 'OpenConfirm',
  established: 'Established',
};

export class BgpAdapter implements BgpPort {
  private speaker: Speaker | undefined;
  private readonly callbacks: { cb: () => void; relevant: ((prefix: string) => boolean) | undefined }[] = [];
  /**
   * The learned best paths (not our own), kept from the speaker's best-path events one prefix at a
   * time, so a pass does not walk and re-encode the whole Loc-RIB; `ribList` is their array until
   * the next change.
   */
  private readonly learned = new Map<string, RibEntry>();
  private ribList: RibEntry[] | undefined;
  /** Callbacks to call on the next turn (fire). */
  private readonly due = new Set<() => void>();
  private readonly eor = new Set<string>();
  private firePending = false;
  private readonly log: Logger;
  /** Unreachable next hops, recomputed after a RIB, session or reachability change. */
  private unreachable: Condition[] | undefined;
  private readonly reportedUnreachable = new Set<string>();
  /** BFD towards the peers that enable it (adapters/bfd.ts). */
  readonly bfdLink: BfdLink;
  /** The speaker config last applied per peer key: a change of BFD alone leaves the session alone. */
  private readonly applied = new Map<string, string>();

  constructor(
    private readonly opts: {
      logger: Logger;
      /** Coming back from a graceful stop (podnet routes were still in the kernel). */
      restarting: boolean;
      /** AFIs whose routes the kernel kept over the restart (F bit); default: every family. */
      forwardingPreserved?: number[];
      attrCacheBytes?: number;
      refusalsPerMinute?: number;
      /** RFC 4271 §9.1.2.1: paths whose next hop has no route are left out of best-path selection. */
      nextHopReachable?: (addr: string) => boolean;
      /** Where podnet_bfd_* metrics go. */
      registry?: Registry;
      /** A BFD instance to use (tests); default one in the agent's namespace. */
      bfd?: BfdInstance;
    },
  ) {
    this.log = opts.logger.child({ component: 'bgp' });
    this.bfdLink = new BfdLink(() => this.speaker, {
      logger: opts.logger,
      registry: opts.registry,
      bfd: opts.bfd,
      restarting: opts.restarting,
    });
  }

  async start(node: NodeIdentity & { address: string; routerId: string }): Promise<void> {
    const s = new Speaker({
      asn: node.asNumber,
      routerId: node.routerId,
      listen: { port: node.listenPort },
      logger: this.opts.logger.child({ component: 'bgp' }),
      ...(node.clusterId ? { clusterId: node.clusterId } : {}),
      restarting: this.opts.restarting,
      ...(this.opts.nextHopReachable ? { nextHopReachable: this.opts.nextHopReachable } : {}),
      ...(this.opts.forwardingPreserved ? { forwardingPreserved: this.opts.forwardingPreserved } : {}),
      ...(this.opts.attrCacheBytes !== undefined ? { attrCacheBytes: this.opts.attrCacheBytes } : {}),
      ...(this.opts.refusalsPerMinute !== undefined
        ? { refusalsPerMinute: this.opts.refusalsPerMinute }
        : {}),
      // Every peer the agent adds carries its own limit (see compute); none falls back to this.
      defaultMaxPrefixes: 0,
    });
    this.learned.clear();
    this.ribList = undefined;
    s.on('bestpath', (c: RibChange) => {
      if (this.speaker !== s) return;
      this.noteBestPath(c);
      this.fire(c.prefix);
    });
    s.on('peer', (e: { key: string; to: string; reason?: string }) => {
      if (e.to !== 'established') this.eor.delete(e.key);
      this.log.info({ peer: e.key, state: e.to, reason: e.reason }, 'session state');
      this.fire();
    });
    s.on('end-of-rib', (e: { key: string }) => {
      this.eor.add(e.key);
      this.fire();
    });
    this.speaker = s;
    await s.start();
    this.log.info(
      { as: node.asNumber, routerId: node.routerId, port: node.listenPort, restarting: this.opts.restarting },
      'BGP speaker started',
    );
  }

  private noteBestPath(c: RibChange): void {
    if (c.type === 'removed' || !c.from || c.from === 'local') {
      if (this.learned.delete(c.prefix)) this.ribList = undefined;
      return;
    }
    const nextHops = c.nextHops.length ? c.nextHops : c.attrs?.nextHop ? [c.attrs.nextHop] : [];
    this.learned.set(c.prefix, { prefix: c.prefix, nextHops, from: c.from });
    this.ribList = undefined;
  }

  /**
   * Deferred: the speaker emits events synchronously from inside addPeer/updatePeer. A best-path
   * change (`prefix`) reaches only the callbacks it is relevant to; a session event reaches all.
   */
  private fire(prefix?: string) {
    this.unreachable = undefined;
    for (const c of this.callbacks)
      if (prefix === undefined || !c.relevant || c.relevant(prefix)) this.due.add(c.cb);
    if (this.firePending || this.due.size === 0) return;
    this.firePending = true;
    setImmediate(() => {
      this.firePending = false;
      const due = [...this.due];
      this.due.clear();
      for (const cb of due) cb();
    });
  }

  private get s(): Speaker {
    if (!this.speaker) throw new Error('BGP speaker not started');
    return this.speaker;
  }

  async addPeer(p: DesiredPeer): Promise<void> {
    const c = toPeerConfig(p);
    this.s.addPeer(c);
    this.applied.set(p.key, JSON.stringify(c));
    this.bfdLink.sync(p);
  }

  async updatePeer(p: DesiredPeer): Promise<void> {
    const c = toPeerConfig(p);
    if (this.applied.get(p.key) !== JSON.stringify(c)) this.s.updatePeer(c);
    this.applied.set(p.key, JSON.stringify(c));
    this.bfdLink.sync(p);
  }

  async removePeer(p: DesiredPeer): Promise<void> {
    this.bfdLink.remove(p);
    this.s.removePeer(p.address, p.port);
    this.applied.delete(p.key);
    this.eor.delete(p.key);
  }

  async originate(a: Advertisement): Promise<void> {
    this.s.originate(a.prefix, {
      nextHop: a.nextHop,
      ...(a.communities.length ? { communities: a.communities } : {}),
      ...(a.largeCommunities.length ? { largeCommunities: a.largeCommunities } : {}),
      ...(a.localPref !== undefined ? { localPref: a.localPref } : {}),
    });
  }

  async withdraw(a: Advertisement): Promise<void> {
    this.s.withdraw(a.prefix);
  }

  rib(): RibEntry[] {
    if (!this.speaker) return [];
    this.ribList ??= [...this.learned.values()];
    return this.ribList;
  }

  /** The kernel's routes changed: select best paths again (their next hops may resolve differently). */
  nextHopsChanged(): void {
    this.unreachable = undefined;
    this.speaker?.nextHopsChanged();
  }

  /**
   * One condition per next hop of a received path that has no route (the path is not selected).
   * Logged once when it appears and once when it clears.
   */
  unreachableNextHops(): Condition[] {
    const reachable = this.opts.nextHopReachable;
    if (!this.speaker || !reachable) return [];
    if (this.unreachable) return this.unreachable;
    const byHop = new Map<string, { peers: Set<string>; prefixes: string[] }>();
    for (const p of this.speaker.peers()) {
      for (const r of this.speaker.adjRibIn(p.address)) {
        const nh = r.attrs.nextHop;
        if (!nh || reachable(nh)) continue;
        const e = byHop.get(nh) ?? { peers: new Set(), prefixes: [] };
        e.peers.add(p.address);
        e.prefixes.push(r.prefix);
        byHop.set(nh, e);
      }
    }
    const out: Condition[] = [];
    for (const [nh, e] of [...byHop].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const shown =
        e.prefixes.slice(0, 5).join(', ') + (e.prefixes.length > 5 ? `, … (${e.prefixes.length})` : '');
      out.push({
        type: 'NextHopUnreachable',
        subject: nh,
        message: `next hop ${nh} (from ${[...e.peers].join(', ')}) has no route in the kernel; its paths are not used: ${shown}`,
        blocksReadiness: false,
      });
      if (!this.reportedUnreachable.has(nh)) {
        this.reportedUnreachable.add(nh);
        this.log.warn(
          { nextHop: nh, peers: [...e.peers], prefixes: e.prefixes.length },
          'next hop has no route in the kernel; its paths are left out of best-path selection',
        );
      }
    }
    for (const nh of this.reportedUnreachable)
      if (!byHop.has(nh)) {
        this.reportedUnreachable.delete(nh);
        this.log.info({ nextHop: nh }, 'next hop has a route again');
      }
    this.unreachable = out;
    return out;
  }

  onRibChange(cb: () => void, relevant?: (prefix: string) => boolean): void {
    this.callbacks.push({ cb, relevant });
  }

  peers(): PeerStatus[] {
    if (!this.speaker) return [];
    return this.speaker.peers().map((p: SpeakerPeerStatus) => ({
      key: p.key,
      state: STATE_NAMES[p.state] ?? (p.state as PeerState),
      since: p.since,
      prefixesReceived: p.prefixesReceived,
      prefixesAdvertised: p.prefixesAdvertised,
      ...(p.lastError ? { lastError: p.lastError } : {}),
      maxPrefixesExceeded: p.maxPrefixesExceeded,
      endOfRib: this.eor.has(p.key),
    }));
  }

  async stop(opts: { graceful: boolean }): Promise<void> {
    // BFD first: its peers must hear of the restart before BGP closes (adapters/bfd.ts).
    if (opts.graceful) await this.bfdLink.holdOver();
    this.bfdLink.stop();
    await this.speaker?.stop({ graceful: opts.graceful });
  }
}
