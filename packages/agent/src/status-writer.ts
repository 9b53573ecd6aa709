// The cluster-wide status writer: run by the one agent that holds the lease (leader.ts). It watches
// every IPPool, BGPPeer and BGPConfiguration, computes their Ready condition (conditions.ts) and
// writes it to the status subresource, only when it changed, at a bounded rate, with a Kubernetes Event when an
// object becomes unusable (Warning) or usable again (Normal). A new leader reads the conditions
// already written, so a handover rewrites nothing and repeats no Event.
import {
  BGPCONFIGURATION,
  BGPPEER,
  type BGPPeer,
  compareStrings,
  Informer,
  IPAMBLOCK,
  type IPAMBlock,
  IPPOOL,
  type IPPool,
  isK8sError,
  K8S_ERR,
  type KubeClient,
  NODESTATUS,
  type NodeStatus,
  type ResourceDef,
  resourceSource,
} from '@podnet/k8s';
import type { Logger } from 'pino';
import { poolConditions, type ReadyCondition, specConditions } from './conditions.js';
import type { EventRecorder, TokenBucket } from './events.js';
import { type ObservedStatus, POOL_REASON, peerSessions, poolUsage } from './resource-status.js';

interface StoredCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

interface Raw {
  metadata?: { name?: string; uid?: string; resourceVersion?: string };
  status?: { conditions?: StoredCondition[] } & Record<string, unknown>;
}

export interface StatusWriterOptions {
  client: KubeClient;
  recorder: EventRecorder;
  /** Bounds the rate of status writes (shared with the recorder or not). */
  limiter: TokenBucket;
  logger?: Logger;
  now?: () => number;
  /** Share of a pool in use at which it is reported NearlyFull (default 0.9). */
  poolUsageWarning?: number;
}

type Kind = 'IPPool' | 'BGPPeer' | 'BGPConfiguration';
type Named = { metadata: { name: string } };

/** What is watched, and how its Ready condition is computed (pools also overlap each other). */
const KINDS: { kind: Kind; def: ResourceDef; conditions: typeof specConditions }[] = [
  { kind: 'IPPool', def: IPPOOL as ResourceDef, conditions: poolConditions as typeof specConditions },
  { kind: 'BGPPeer', def: BGPPEER as ResourceDef, conditions: specConditions },
  { kind: 'BGPConfiguration', def: BGPCONFIGURATION as ResourceDef, conditions: specConditions },
];

interface Pending {
  kind: Kind;
  name: string;
  cond: ReadyCondition;
  /** Pools: address use and Exhausted; peers: sessions per node and Established. */
  observed?: ObservedStatus;
}

/** JSON with sorted keys: the API server may hand back the fields in another order. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => compareStrings(a, b)))
      : x,
  );
}

const sameCondition = (
  a: StoredCondition | undefined,
  b: { status: string; reason: string; message: string },
) => !!a && a.status === b.status && a.reason === b.reason && a.message === b.message;

export function rfc3339Seconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

export class StatusWriter {
  private readonly log: Logger | undefined;
  private readonly now: () => number;
  private readonly informers = new Map<Kind, Informer<Named>>();
  /** What the observed status is computed from: IPAM blocks (pools) and NodeStatuses (peers). */
  private blocks: Informer<IPAMBlock> | undefined;
  private nodeStatuses: Informer<NodeStatus> | undefined;
  private readonly pending = new Map<string, Pending>();
  private pump: Promise<void> | undefined;
  private scheduled: NodeJS.Immediate | undefined;
  private running = false;
  /** Status writes done, for tests and metrics. */
  writes = 0;
  /** `Kind/name` of each status write, in order (the last 1000). */
  readonly writtenKeys: string[] = [];

  constructor(private readonly o: StatusWriterOptions) {
    this.log = o.logger?.child({ component: 'status-writer' });
    this.now = o.now ?? Date.now;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const opts = {
      ...(this.o.logger ? { logger: this.o.logger } : {}),
      initialBackoffMs: 200,
      maxBackoffMs: 5000,
    };
    for (const k of KINDS) {
      const inf = new Informer(this.o.client, resourceSource(this.o.client, k.def), opts) as Informer<Named>;
      this.informers.set(k.kind, inf);
      inf.on(() => this.schedule());
      inf.start();
    }
    this.blocks = new Informer(this.o.client, resourceSource(this.o.client, IPAMBLOCK), opts);
    this.nodeStatuses = new Informer(this.o.client, resourceSource(this.o.client, NODESTATUS), opts);
    for (const inf of [this.blocks, this.nodeStatuses] as Informer<Named>[]) {
      inf.on(() => this.schedule());
      inf.start();
    }
    this.log?.info('writing IPPool, BGPPeer and BGPConfiguration status');
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.scheduled) clearImmediate(this.scheduled);
    this.pending.clear();
    await Promise.all([...this.informers.values(), this.blocks, this.nodeStatuses].map((i) => i?.stop()));
    this.informers.clear();
    this.blocks = undefined;
    this.nodeStatuses = undefined;
    await this.pump;
    this.log?.info('stopped writing conditions');
  }

  private schedule() {
    if (this.scheduled || !this.running) return;
    this.scheduled = setImmediate(() => {
      this.scheduled = undefined;
      this.reconcile();
    });
  }

  /** Queues a write for every object whose Ready condition differs from the one stored. */
  private reconcile() {
    const inputs = [...this.informers.values(), this.blocks, this.nodeStatuses];
    if (!this.running || !inputs.every((i) => i?.hasSynced)) return;
    const pools = this.validOnly(this.informers.get('IPPool')!) as unknown as IPPool[];
    const peers = this.validOnly(this.informers.get('BGPPeer')!) as unknown as BGPPeer[];
    const observed: Partial<Record<Kind, Map<string, ObservedStatus>>> = {
      IPPool: poolUsage(pools, this.blocks!.list(), this.o.poolUsageWarning ?? 0.9),
      BGPPeer: peerSessions(peers, this.nodeStatuses!.list()),
    };
    for (const k of KINDS) {
      const inf = this.informers.get(k.kind)!;
      this.compare(k.kind, k.conditions(this.validOnly(inf), inf.invalid()), observed[k.kind]);
    }
    if (this.pending.size && !this.pump)
      this.pump = this.drain().finally(() => {
        this.pump = undefined;
        if (this.pending.size && this.running) this.schedule();
      });
  }

  private validOnly<T extends Named>(inf: Informer<T>): T[] {
    const bad = new Set(inf.invalid().map((i) => i.key));
    return inf.list().filter((o) => !bad.has(o.metadata.name));
  }

  /** The object as last seen: its latest (maybe invalid) version. */
  private current(kind: Kind, name: string): Raw | undefined {
    const inf = this.informers.get(kind);
    const bad = inf?.invalid().find((i) => i.key === name);
    return (bad?.raw as Raw | undefined) ?? (inf?.get(name) as Raw | undefined);
  }

  private compare(kind: Kind, want: Map<string, ReadyCondition>, observed?: Map<string, ObservedStatus>) {
    for (const [name, cond] of want) {
      const status = this.current(kind, name)?.status;
      const stored = status?.conditions?.find((c) => c.type === 'Ready');
      const key = `${kind}/${name}`;
      const obs = observed?.get(name);
      const obsSame =
        !obs ||
        (sameCondition(
          status?.conditions?.find((c) => c.type === obs.condition.type),
          obs.condition,
        ) &&
          Object.entries(obs.fields).every(([f, v]) => canonical(status?.[f]) === canonical(v)));
      if (sameCondition(stored, cond) && obsSame) this.pending.delete(key);
      else this.pending.set(key, { kind, name, cond, ...(obs ? { observed: obs } : {}) });
    }
  }

  private async drain() {
    while (this.running && this.pending.size) {
      const [key, p] = this.pending.entries().next().value as [string, Pending];
      this.pending.delete(key);
      await this.o.limiter.take();
      if (!this.running) return;
      await this.write(p);
    }
  }

  private async write(p: Pending) {
    const raw = this.current(p.kind, p.name);
    if (!raw?.metadata) return; // deleted meanwhile
    const def = KINDS.find((k) => k.kind === p.kind)!.def;
    const old = raw.status?.conditions ?? [];
    const prev = old.find((c) => c.type === 'Ready');
    const since = (was: StoredCondition | undefined, status: string) =>
      was?.status === status && was.lastTransitionTime ? was.lastTransitionTime : rfc3339Seconds(this.now());
    const cond: StoredCondition = {
      type: 'Ready',
      ...p.cond,
      lastTransitionTime: since(prev, p.cond.status),
    };
    const obs = p.observed;
    const prevObs = obs && old.find((c) => c.type === obs.condition.type);
    const obsCond: StoredCondition[] = obs
      ? [{ ...obs.condition, lastTransitionTime: since(prevObs, obs.condition.status) }]
      : [];
    const log = this.log?.child({ kind: p.kind, name: p.name });
    try {
      await this.o.client.resource(def).patchStatus(
        p.name,
        {
          ...obs?.fields,
          conditions: [
            ...old.filter((c) => c.type !== 'Ready' && c.type !== obs?.condition.type),
            cond,
            ...obsCond,
          ],
        },
        { ...(raw.metadata.resourceVersion ? { resourceVersion: raw.metadata.resourceVersion } : {}) },
      );
      this.writes++;
      this.writtenKeys.push(`${p.kind}/${p.name}`);
      if (this.writtenKeys.length > 1000) this.writtenKeys.shift();
    } catch (err) {
      // A conflict means a newer version is on its way through the informer: it reconciles again.
      if (!isK8sError(err, K8S_ERR.CONFLICT) && !isK8sError(err, K8S_ERR.NOT_FOUND))
        log?.warn({ err: (err as Error).message }, 'cannot write the Ready condition');
      return;
    }
    if (obs?.condition.type === 'Exhausted') await this.poolEvent(p, raw, prevObs, obs);
    if (sameCondition(prev, p.cond)) return;
    if (p.cond.status === 'False')
      log?.warn({ reason: p.cond.reason, err: p.cond.message }, `${p.kind} not usable`);
    else log?.info({ reason: p.cond.reason }, `${p.kind} ready`);
    const changed =
      prev?.status !== p.cond.status || prev?.reason !== p.cond.reason || prev?.message !== p.cond.message;
    // No Event for an object that was never reported unusable and is fine (a fresh install stays quiet).
    if (!changed || (p.cond.status === 'True' && prev?.status !== 'False')) return;
    await this.o.recorder.record(
      {
        apiVersion: `${def.group}/${def.version}`,
        kind: p.kind,
        name: p.name,
        ...(raw.metadata.uid ? { uid: raw.metadata.uid } : {}),
      },
      p.cond.status === 'False' ? 'Warning' : 'Normal',
      p.cond.reason,
      p.cond.message,
    );
  }

  /** A Warning when a pool runs out or nearly (NoFreeAddresses, NearlyFull); Normal once it has room again. */
  private async poolEvent(p: Pending, raw: Raw, prev: StoredCondition | undefined, obs: ObservedStatus) {
    const c = obs.condition;
    if (prev?.reason === c.reason) return;
    const full = c.reason === POOL_REASON.noFree || c.reason === POOL_REASON.nearlyFull;
    const wasFull = prev?.reason === POOL_REASON.noFree || prev?.reason === POOL_REASON.nearlyFull;
    if (!full && !wasFull) return;
    if (full)
      this.log?.warn({ pool: p.name, reason: c.reason, err: c.message }, 'IPPool running out of addresses');
    await this.o.recorder.record(
      {
        apiVersion: `${IPPOOL.group}/${IPPOOL.version}`,
        kind: 'IPPool',
        name: p.name,
        ...(raw.metadata?.uid ? { uid: raw.metadata.uid } : {}),
      },
      full ? 'Warning' : 'Normal',
      full ? (c.reason === POOL_REASON.noFree ? 'PoolExhausted' : 'PoolNearlyFull') : 'PoolAvailable',
      c.message,
    );
  }
}
