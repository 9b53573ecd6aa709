// DatastorePort over @podnet/k8s: one informer per kind the agent needs, each narrowed to what
// concerns this node, so the API server's load and the agent's work do not grow with the cluster:
// - its own pods only (fieldSelector spec.nodeName), projected to what podView reads;
// - its own IPAMBlocks and BlockAffinities (labelSelector podnet.io/node=<node>): the routes and
//   announcements come from those alone; a borrowed address is announced from the pod itself;
// - every Node (the mesh needs them), projected to the podnet annotations, labels and InternalIPs,
//   so a kubelet heartbeat (status.conditions) changes nothing and triggers no recompute;
// - each Secret a BGPPeer references, watched by name (fieldSelector metadata.name), not polled.
// Reachability comes from the informers themselves: a list, an event or a bookmark says the API
// server answers, a failed list or watch says it may not, and only then (or after a long silence
// of every watch) does the datastore ask for its own Node. At steady state that is at most one
// request per silence period (5 min), not one every 5 s. While the server does not answer, the
// informers keep their last store, so the agent keeps its last state.

import { NODE_LABEL } from '@podnet/ipam';
import {
  BGPCONFIGURATION,
  BGPPEER,
  BLOCKAFFINITY,
  coreSource,
  Informer,
  IPAMBLOCK,
  IPPOOL,
  type KubeClient,
  resourceSource,
} from '@podnet/k8s';
import type { Logger } from 'pino';
import { usablePools } from '../conditions.js';
import type { NodeView } from '../model.js';
import type { DatastorePort, DatastoreSnapshot } from '../ports.js';
import {
  affinityView,
  bgpConfigView,
  blockView,
  type CoreNode,
  type CorePod,
  nodeView,
  POD_IP_ANNOTATION,
  POD_IPS_ANNOTATION,
  peerView,
  podView,
  poolView,
} from './views.js';

export class KubeDatastore implements DatastorePort {
  private readonly log: Logger;
  private readonly nodes;
  private readonly pods;
  private readonly pools;
  private readonly configs;
  private readonly peers;
  private readonly blocks;
  private readonly affinities;
  private readonly all: Informer<{ metadata?: { name?: string } }>[];
  /** One informer per Secret name a BGPPeer references. */
  private readonly secretInformers = new Map<string, Informer<CoreSecret>>();
  private secrets: Record<string, string> = {};
  private started = false;
  private probe: NodeJS.Timeout | undefined;
  private readonly gate: Reachability;
  /** Events the informers delivered (each says the API server answered). */
  private events = 0;
  private onChange: () => void = () => {};
  private problems: string[] = [];

  constructor(
    private readonly client: KubeClient,
    private readonly opts: {
      nodeName: string;
      namespace: string;
      logger: Logger;
      /** How often the informers' counters are looked at (no request unless they say so). */
      probeIntervalMs?: number;
      /** After this long without a word from any watch, one GET of the own Node. */
      silentProbeMs?: number;
    },
  ) {
    this.log = opts.logger.child({ component: 'datastore' });
    this.gate = new Reachability(
      () => this.heard(),
      async () => {
        await this.client.getNode(this.opts.nodeName);
      },
      { silentProbeMs: opts.silentProbeMs ?? 300_000, log: this.log },
    );
    const o = { logger: opts.logger, initialBackoffMs: 200, maxBackoffMs: 5000 };
    this.nodes = new Informer<CoreNode>(client, coreSource(client, 'Node'), {
      ...o,
      project: projectNode,
      same: sameProjection,
    });
    this.pods = new Informer<CorePod>(client, coreSource(client, 'Pod'), {
      ...o,
      fieldSelector: `spec.nodeName=${opts.nodeName}`,
      project: projectPod,
      same: sameProjection,
    });
    this.pools = new Informer(client, resourceSource(client, IPPOOL), o);
    this.configs = new Informer(client, resourceSource(client, BGPCONFIGURATION), o);
    this.peers = new Informer(client, resourceSource(client, BGPPEER), o);
    // IPAM labels the blocks and affinities it creates with their node (@podnet/ipam NODE_LABEL);
    // a node name that cannot be a label value gets no label, and then everything is watched.
    const mine = LABEL_VALUE.test(opts.nodeName) ? { labelSelector: `${NODE_LABEL}=${opts.nodeName}` } : {};
    this.blocks = new Informer(client, resourceSource(client, IPAMBLOCK), { ...o, ...mine });
    this.affinities = new Informer(client, resourceSource(client, BLOCKAFFINITY), { ...o, ...mine });
    this.all = [
      this.nodes,
      this.pods,
      this.pools,
      this.configs,
      this.peers,
      this.blocks,
      this.affinities,
    ] as never;
  }

  async start(onChange: () => void): Promise<void> {
    this.onChange = onChange;
    this.started = true;
    for (const inf of this.all) {
      inf.on((ev) => {
        this.events++;
        if (ev.type === 'invalid') return;
        if (inf === (this.peers as never)) this.watchSecrets();
        this.onChange();
      });
      inf.start();
    }
    this.probe = setInterval(() => void this.gate.tick(Date.now()), this.opts.probeIntervalMs ?? 5000);
    this.probe.unref();
  }

  synced(): boolean {
    return this.all.every((i) => i.hasSynced);
  }

  /** Informer counters (lists, watches, …) by kind, for tests and diagnostics. */
  counts(): Record<string, Informer<never>['counts']> {
    const out: Record<string, Informer<never>['counts']> = {};
    for (const i of this.all) out[i.source.kind] = i.counts;
    for (const [name, i] of this.secretInformers) out[`Secret/${name}`] = i.counts;
    return out;
  }

  reachable(): boolean {
    return this.gate.reachable;
  }

  /** Requests the probe made (for tests and diagnostics). */
  probes(): { ticks: number; requests: number } {
    return { ticks: this.gate.ticks, requests: this.gate.probes };
  }

  /** What the informers heard and how often they failed, summed over all of them. */
  private heard(): { heard: number; errors: number } {
    let heard = this.events;
    let errors = 0;
    for (const i of [...this.all, ...this.secretInformers.values()]) {
      heard += i.counts.lists + i.counts.bookmarks + i.counts.unchanged;
      errors += i.counts.errors;
    }
    return { heard, errors };
  }

  /**
   * Keeps one informer per Secret a BGPPeer references (fieldSelector metadata.name: RBAC grants
   * list and watch of those names only) and drops the ones no peer references any more.
   */
  private watchSecrets() {
    if (!this.started) return;
    const names = new Set(
      this.peers.list().flatMap((p) => (p.spec.password ? [p.spec.password.secretKeyRef.name] : [])),
    );
    for (const [name, inf] of this.secretInformers)
      if (!names.has(name)) {
        this.secretInformers.delete(name);
        void inf.stop();
        this.updateSecrets();
      }
    for (const name of names) {
      if (this.secretInformers.has(name)) continue;
      const inf = new Informer<CoreSecret>(
        this.client,
        coreSource(this.client, 'Secret', this.opts.namespace),
        {
          logger: this.opts.logger,
          initialBackoffMs: 200,
          maxBackoffMs: 5000,
          fieldSelector: `metadata.name=${name}`,
        },
      );
      this.secretInformers.set(name, inf);
      inf.on((ev) => {
        if (ev.type !== 'invalid') this.updateSecrets();
      });
      inf.start();
    }
  }

  /** The passwords (`<secret>/<key>`) from the watched Secrets; onChange when they changed. */
  private updateSecrets() {
    const next: Record<string, string> = {};
    for (const [name, inf] of this.secretInformers) {
      const s = inf.list()[0];
      if (!s) {
        // Not there (yet), or not readable: keep what we had, so sessions keep their password.
        for (const [k, v] of Object.entries(this.secrets)) if (k.startsWith(`${name}/`)) next[k] = v;
        continue;
      }
      for (const [k, v] of Object.entries(s.data ?? {}))
        next[`${name}/${k}`] = Buffer.from(v, 'base64').toString('utf8');
      for (const [k, v] of Object.entries(s.stringData ?? {})) next[`${name}/${k}`] = v;
    }
    if (JSON.stringify(next) !== JSON.stringify(this.secrets)) {
      this.secrets = next;
      this.onChange();
    }
  }

  snapshot(): DatastoreSnapshot {
    const problems: string[] = [];
    const snap: DatastoreSnapshot = {
      nodes: this.nodes.list().flatMap((n) => nodeView(n, problems) ?? []),
      pods: this.pods.list().flatMap((p) => podView(p) ?? []),
      // A pool overlapping an older one is set aside, here as in IPAM (conditions.ts).
      pools: usablePools(this.pools.list()).map(poolView),
      bgpConfigs: this.configs.list().map(bgpConfigView),
      peers: this.peers.list().map(peerView),
      secrets: this.secrets,
      blocks: this.blocks.list().map(blockView),
      affinities: this.affinities.list().flatMap((a) => affinityView(a) ?? []),
    };
    if (problems.join() !== this.problems.join())
      for (const p of problems) this.log.warn({ problem: p }, 'object skipped');
    this.problems = problems;
    return snap;
  }

  async getNode(name: string): Promise<NodeView | undefined> {
    const n = await this.client.getNode(name).catch((err: { code?: string }) => {
      if (err.code === 'K8S_ERR_NOT_FOUND') return undefined;
      throw err;
    });
    return n ? nodeView(n as CoreNode, []) : undefined;
  }

  async annotateNode(name: string, annotations: Record<string, string>): Promise<void> {
    await this.client.annotateNode(name, annotations);
  }

  async stop(): Promise<void> {
    clearInterval(this.probe);
    this.started = false;
    await Promise.all([...this.all, ...this.secretInformers.values()].map((i) => i.stop()));
    this.secretInformers.clear();
  }
}

/**
 * Whether the API server answers, from the informers' own counters: a change in what they heard
 * (lists, events, bookmarks) says yes; a new failure, or a silence of `silentProbeMs`, makes one
 * probe request, whose outcome decides. Nothing is requested while the watches keep talking.
 */
export class Reachability {
  reachable = true;
  probes = 0;
  ticks = 0;
  private last: { heard: number; errors: number } | undefined;
  private lastHeardAt: number | undefined;
  private probing = false;

  constructor(
    private readonly read: () => { heard: number; errors: number },
    private readonly probe: () => Promise<void>,
    private readonly opts: { silentProbeMs: number; log: Logger },
  ) {}

  async tick(now: number): Promise<void> {
    this.ticks++;
    if (this.probing) return;
    const cur = this.read();
    const prev = this.last ?? cur;
    this.last = cur;
    this.lastHeardAt ??= now;
    const failed = cur.errors > prev.errors;
    if (!failed && cur.heard !== prev.heard) {
      this.lastHeardAt = now;
      this.set(true);
      return;
    }
    if (!failed && this.reachable && now - this.lastHeardAt < this.opts.silentProbeMs) return;
    this.probing = true;
    this.probes++;
    try {
      await this.probe();
      this.lastHeardAt = now;
      this.set(true);
    } catch (err) {
      this.set(false, (err as Error).message);
    } finally {
      this.probing = false;
    }
  }

  private set(ok: boolean, err?: string) {
    if (ok && !this.reachable) this.opts.log.info('API server reachable again');
    if (!ok && this.reachable)
      this.opts.log.warn({ err }, 'API server unreachable; keeping the last known state');
    this.reachable = ok;
  }
}

/** A label value (as @podnet/ipam labels blocks and affinities with their node). */
const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

interface CoreSecret {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** What nodeView reads of a Node: labels, the podnet.io annotations and the InternalIPs. */
export function projectNode(n: CoreNode): CoreNode {
  const m = n.metadata ?? {};
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.annotations ?? {}))
    if (k.startsWith('podnet.io/')) annotations[k] = v;
  return {
    metadata: {
      ...(m.name !== undefined ? { name: m.name } : {}),
      ...((m as { resourceVersion?: string }).resourceVersion !== undefined
        ? { resourceVersion: (m as { resourceVersion?: string }).resourceVersion }
        : {}),
      labels: m.labels ?? {},
      annotations,
    },
    status: {
      addresses: (n.status?.addresses ?? [])
        .filter((a) => a.type === 'InternalIP')
        .map((a) => ({ type: a.type, address: a.address })),
    },
  } as CoreNode;
}

/** What podView reads of a Pod. */
export function projectPod(p: CorePod): CorePod {
  const m = p.metadata ?? {};
  const annotations: Record<string, string> = {};
  for (const k of [POD_IPS_ANNOTATION, POD_IP_ANNOTATION]) {
    const v = m.annotations?.[k];
    if (v !== undefined) annotations[k] = v;
  }
  return {
    metadata: {
      ...(m.name !== undefined ? { name: m.name } : {}),
      ...(m.namespace !== undefined ? { namespace: m.namespace } : {}),
      ...((m as { resourceVersion?: string }).resourceVersion !== undefined
        ? { resourceVersion: (m as { resourceVersion?: string }).resourceVersion }
        : {}),
      annotations,
    },
    spec: {
      ...(p.spec?.nodeName !== undefined ? { nodeName: p.spec.nodeName } : {}),
      ...(p.spec?.hostNetwork !== undefined ? { hostNetwork: p.spec.hostNetwork } : {}),
    },
    status: {
      ...(p.status?.phase !== undefined ? { phase: p.status.phase } : {}),
      ...(p.status?.podIPs ? { podIPs: p.status.podIPs.map((x) => ({ ip: x.ip })) } : {}),
      ...(p.status?.podIP !== undefined ? { podIP: p.status.podIP } : {}),
    },
  } as CorePod;
}

/** Two projections are the same when they differ at most in resourceVersion. */
function sameProjection<T extends { metadata?: object }>(a: T, b: T): boolean {
  const strip = (o: T) => ({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
  return JSON.stringify(strip(a)) === JSON.stringify(strip(b));
}
