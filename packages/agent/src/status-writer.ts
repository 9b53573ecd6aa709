// The cluster-wide status writer: run by the one agent that holds the lease (leader.ts). It watches
// every IPPool, BGPPeer and BGPConfiguration, computes their Ready condition (conditions.ts) and
// writes it to the status subresource, only when it changed, at a bounded rate, with a Kubernetes Event when an
// object becomes unusable (Warning) or usable again (Normal). A new leader reads the conditions
// already written, so a handover rewrites nothing and repeats no Event.
import {
  BGPCONFIGURATION,
  BGPPEER,
  Informer,
  IPPOOL,
  isK8sError,
  K8S_ERR,
  type KubeClient,
  type ResourceDef,
  resourceSource,
} from '@podnet/k8s';
import type { Logger } from 'pino';
import { poolConditions, type ReadyCondition, specConditions } from './conditions.js';
import type { EventRecorder, TokenBucket } from './events.js';

interface StoredCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

interface Raw {
  metadata?: { name?: string; uid?: string; resourceVersion?: string };
  status?: { conditions?: StoredCondition[] };
}

export interface StatusWriterOptions {
  client: KubeClient;
  recorder: EventRecorder;
  /** Bounds the rate of status writes (shared with the recorder or not). */
  limiter: TokenBucket;
  logger?: Logger;
  now?: () => number;
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
}

export function rfc3339Seconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

export class StatusWriter {
  private readonly log: Logger | undefined;
  private readonly now: () => number;
  private readonly informers = new Map<Kind, Informer<Named>>();
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
    this.log?.info('writing IPPool, BGPPeer and BGPConfiguration conditions');
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.scheduled) clearImmediate(this.scheduled);
    this.pending.clear();
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
    this.informers.clear();
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
    if (!this.running || ![...this.informers.values()].every((i) => i.hasSynced)) return;
    for (const k of KINDS) {
      const inf = this.informers.get(k.kind)!;
      this.compare(k.kind, k.conditions(this.validOnly(inf), inf.invalid()));
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

  private compare(kind: Kind, want: Map<string, ReadyCondition>) {
    for (const [name, cond] of want) {
      const stored = this.current(kind, name)?.status?.conditions?.find((c) => c.type === 'Ready');
      const key = `${kind}/${name}`;
      if (
        stored &&
        stored.status === cond.status &&
        stored.reason === cond.reason &&
        stored.message === cond.message
      )
        this.pending.delete(key);
      else this.pending.set(key, { kind, name, cond });
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
    const cond: StoredCondition = {
      type: 'Ready',
      ...p.cond,
      lastTransitionTime:
        prev?.status === p.cond.status && prev.lastTransitionTime
          ? prev.lastTransitionTime
          : rfc3339Seconds(this.now()),
    };
    const log = this.log?.child({ kind: p.kind, name: p.name });
    try {
      await this.o.client
        .resource(def)
        .patchStatus(
          p.name,
          { conditions: [...old.filter((c) => c.type !== 'Ready'), cond] },
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
}
