// DatastorePort over @podnet/k8s: one informer per kind the agent needs (its own pods only, by
// field selector), Secrets for BGP passwords read by name, and a reachability probe. While the API
// server is unreachable the informers keep their last store, so the agent keeps its last state.
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
  private secrets: Record<string, string> = {};
  private isReachable = true;
  private probe: NodeJS.Timeout | undefined;
  private onChange: () => void = () => {};
  private problems: string[] = [];

  constructor(
    private readonly client: KubeClient,
    private readonly opts: { nodeName: string; namespace: string; logger: Logger; probeIntervalMs?: number },
  ) {
    this.log = opts.logger.child({ component: 'datastore' });
    const o = { logger: opts.logger, initialBackoffMs: 200, maxBackoffMs: 5000 };
    this.nodes = new Informer<CoreNode>(client, coreSource(client, 'Node'), o);
    this.pods = new Informer<CorePod>(client, coreSource(client, 'Pod'), {
      ...o,
      fieldSelector: `spec.nodeName=${opts.nodeName}`,
    });
    this.pools = new Informer(client, resourceSource(client, IPPOOL), o);
    this.configs = new Informer(client, resourceSource(client, BGPCONFIGURATION), o);
    this.peers = new Informer(client, resourceSource(client, BGPPEER), o);
    this.blocks = new Informer(client, resourceSource(client, IPAMBLOCK), o);
    this.affinities = new Informer(client, resourceSource(client, BLOCKAFFINITY), o);
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
    for (const inf of this.all) {
      inf.on((ev) => {
        if (ev.type !== 'synced' && inf === (this.peers as never)) void this.refreshSecrets();
        this.onChange();
      });
      inf.start();
    }
    this.probe = setInterval(() => void this.checkReachable(), this.opts.probeIntervalMs ?? 5000);
    this.probe.unref();
  }

  synced(): boolean {
    return this.all.every((i) => i.hasSynced);
  }

  reachable(): boolean {
    return this.isReachable;
  }

  private async checkReachable() {
    try {
      await this.client.getNode(this.opts.nodeName);
      if (!this.isReachable) this.log.info('API server reachable again');
      this.isReachable = true;
      await this.refreshSecrets();
    } catch (err) {
      if (this.isReachable)
        this.log.warn(
          { err: (err as Error).message },
          'API server unreachable; keeping the last known state',
        );
      this.isReachable = false;
    }
  }

  /** GETs each Secret a BGPPeer references (RBAC allows get by name only). */
  private async refreshSecrets() {
    const names = new Set(
      this.peers.list().flatMap((p) => (p.spec.password ? [p.spec.password.secretKeyRef.name] : [])),
    );
    const next: Record<string, string> = {};
    for (const name of names) {
      try {
        const s = await this.client.core.readNamespacedSecret({ name, namespace: this.opts.namespace });
        for (const [k, v] of Object.entries(s.data ?? {}))
          next[`${name}/${k}`] = Buffer.from(v, 'base64').toString('utf8');
        for (const [k, v] of Object.entries((s as { stringData?: Record<string, string> }).stringData ?? {}))
          next[`${name}/${k}`] = v;
      } catch (err) {
        this.log.warn(
          { secret: `${this.opts.namespace}/${name}`, err: (err as Error).message },
          'cannot read BGP password secret',
        );
        for (const [k, v] of Object.entries(this.secrets)) if (k.startsWith(`${name}/`)) next[k] = v;
      }
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
    await Promise.all(this.all.map((i) => i.stop()));
  }
}
