// LoadBalancer address allocation, the imperative part (docs/services.md). Runs only on the agent
// holding the podnet-status-writer Lease (a LeaderDuty): watches Services, namespaces,
// LoadBalancerPools and LoadBalancerAddresses, and for each Service applies lb-alloc's Decision.
// Every address handed out is a LoadBalancerAddress created only if absent (a second create is
// 409 AlreadyExists), and every change to one is a compare-and-swap on resourceVersion, so no
// address ever goes to two Services, also when two allocators overlap across a leader change.
// An address is released (its object deleted) only once its Service is gone or no longer a podnet
// LoadBalancer. The result goes to status.loadBalancer.ingress and a status condition, problems
// also to Events; each pool's status says whether it is usable and how many addresses are in use.

import {
  coreSource,
  Informer,
  K8S_ERR,
  type KubeClient,
  LB_ANNOTATIONS,
  LOADBALANCERADDRESS,
  LOADBALANCERPOOL,
  type LoadBalancerAddress,
  type LoadBalancerPool,
  loadBalancerAddressName,
  MERGE_PATCH,
  parseIp,
  resourceSource,
  toK8sError,
} from '@podnet/k8s';
import type { Logger } from 'pino';
import type { EventRecorder } from './events.js';
import {
  type Decision,
  decide,
  dependsOnOthers,
  type Held,
  HeldIndex,
  type LbService,
  lbService,
  overlapProblems,
  poolUse,
  poolView,
  servedByPodnet,
  type World,
} from './lb-alloc.js';

/** The Service condition the allocator owns. */
export const LB_CONDITION = 'podnet.io/AddressAllocated';

const MAX_TRIES = 16;

interface RawMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
}
interface RawCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}
interface RawService {
  metadata?: RawMeta;
  spec?: Record<string, unknown>;
  status?: { loadBalancer?: { ingress?: { ip?: string; hostname?: string }[] }; conditions?: RawCondition[] };
}
interface RawNamespace {
  metadata?: RawMeta;
}

const rvOf = (o: { metadata: { resourceVersion?: string } }) => Number(o.metadata.resourceVersion ?? 0);

export interface LbAllocatorOptions {
  client: KubeClient;
  recorder?: EventRecorder;
  logger?: Logger;
  now?: () => Date;
  /** Services reconciled at once (default 8); a Service with a sharing key or a requested address runs alone. */
  concurrency?: number;
  /** The pools' status is written at most this often (default 500 ms), once for a burst of changes. */
  poolStatusDelayMs?: number;
}

export class LbAllocator {
  private readonly log: Logger | undefined;
  private services: Informer<RawService & { metadata: RawMeta }> | undefined;
  private namespaces: Informer<RawNamespace & { metadata: RawMeta }> | undefined;
  private pools: Informer<LoadBalancerPool> | undefined;
  private addresses: Informer<LoadBalancerAddress> | undefined;
  /** Our own writes the address informer may not have seen yet (null: deleted at that resourceVersion). */
  private readonly local = new Map<string, { obj: LoadBalancerAddress | null; rv: number }>();
  /** The addresses in effect: the informer's, overlaid with `local` (see `refresh`). */
  private readonly index = new HeldIndex();
  private readonly queue = new Set<string>();
  /** Keys being reconciled now, by workers (at most `concurrency`). */
  private readonly active = new Set<string>();
  /** A Service that must not overlap with another (sharing key, requested address) is running. */
  private exclusive = false;
  /** Addresses a running worker is taking: the others do not pick them. */
  private readonly reserved = new Set<string>();
  private readonly concurrency: number;
  private readonly poolStatusDelayMs: number;
  private poolsTimer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];
  private term = 0;
  private leading = false;
  private readonly poolStatus = new Map<string, string>();
  /** Writes made, for tests: creates, updates, deletes, status patches. */
  readonly counts = { created: 0, updated: 0, deleted: 0, conflicts: 0, statusWrites: 0 };

  constructor(private readonly o: LbAllocatorOptions) {
    this.log = o.logger?.child({ component: 'lb-allocator' });
    this.concurrency = Math.max(1, o.concurrency ?? 8);
    this.poolStatusDelayMs = Math.max(0, o.poolStatusDelayMs ?? 500);
  }

  isLeading(): boolean {
    return this.leading;
  }

  onStartedLeading(): void {
    if (this.leading) return;
    this.leading = true;
    const term = ++this.term;
    void this.begin(term).catch((err: unknown) => this.log?.error({ err }, 'cannot start the allocator'));
  }

  onStoppedLeading(): void {
    if (!this.leading) return;
    this.leading = false;
    this.term++;
    void this.end();
  }

  async stop(): Promise<void> {
    this.onStoppedLeading();
    await this.idle();
  }

  /** Resolves once nothing is queued, due or running. */
  idle(): Promise<void> {
    if (!this.busy()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private busy(): boolean {
    return this.queue.size > 0 || this.active.size > 0 || this.poolsTimer !== undefined;
  }

  private settle(): void {
    if (this.busy()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async begin(term: number): Promise<void> {
    const c = this.o.client;
    const opts = this.log ? { logger: this.log } : {};
    this.local.clear();
    this.index.clear();
    this.services = new Informer(c, coreSource<RawService & { metadata: RawMeta }>(c, 'Service'), opts);
    this.namespaces = new Informer(c, coreSource<RawNamespace & { metadata: RawMeta }>(c, 'Namespace'), opts);
    this.pools = new Informer(c, resourceSource(c, LOADBALANCERPOOL), opts);
    this.addresses = new Informer(c, resourceSource(c, LOADBALANCERADDRESS), opts);
    this.services.on((ev) => {
      if (ev.type === 'added' || ev.type === 'modified' || ev.type === 'deleted')
        this.enqueue(`${ev.object.metadata.namespace}/${ev.object.metadata.name}`);
    });
    this.namespaces.on((ev) => {
      if (ev.type !== 'modified') return;
      for (const s of this.services?.list() ?? [])
        if (s.metadata.namespace === ev.object.metadata.name)
          this.enqueue(`${s.metadata.namespace}/${s.metadata.name}`);
    });
    this.pools.on((ev) => {
      if (ev.type === 'synced' || ev.type === 'relisted') return;
      this.enqueueAll();
    });
    const addresses = this.addresses;
    addresses.on((ev) => {
      if (this.addresses !== addresses) return;
      if (ev.type === 'added' || ev.type === 'modified' || ev.type === 'deleted')
        this.refresh(ev.object.metadata.name);
      if (ev.type === 'deleted') this.enqueueAll();
      else if (ev.type === 'added' || ev.type === 'modified') this.enqueue('pools');
    });
    for (const i of [this.services, this.namespaces, this.pools, this.addresses]) i.start();
    await Promise.all([this.services, this.namespaces, this.pools, this.addresses].map((i) => i.synced));
    if (term !== this.term) return;
    this.log?.info('allocator running');
    this.enqueueAll();
  }

  private async end(): Promise<void> {
    const informers = [this.services, this.namespaces, this.pools, this.addresses];
    this.services = this.namespaces = this.pools = this.addresses = undefined;
    this.queue.clear();
    if (this.poolsTimer) clearTimeout(this.poolsTimer);
    this.poolsTimer = undefined;
    this.settle();
    this.local.clear();
    this.index.clear();
    this.poolStatus.clear();
    await Promise.all(informers.map((i) => i?.stop()));
  }

  /** Every Service, every Service an allocation names, and the pools' status. */
  private enqueueAll(): void {
    for (const s of this.services?.list() ?? []) this.enqueue(`${s.metadata.namespace}/${s.metadata.name}`);
    for (const a of this.index.objects())
      for (const h of a.spec.services) this.enqueue(`${h.namespace}/${h.name}`);
    this.enqueue('pools');
  }

  private enqueue(key: string): void {
    if (!this.leading) return;
    if (key === 'pools') {
      // Once for a burst: every address written in the delay is counted by one status write.
      if (this.poolsTimer || this.queue.has('pools')) return;
      this.poolsTimer = setTimeout(() => {
        this.poolsTimer = undefined;
        if (this.leading) this.queue.add('pools');
        this.pump();
        this.settle();
      }, this.poolStatusDelayMs);
      this.poolsTimer.unref();
      return;
    }
    this.queue.add(key);
    this.pump();
  }

  /** Whether a Service must be reconciled alone (lb-alloc's dependsOnOthers). */
  private mustRunAlone(key: string): boolean {
    const raw = this.services?.get(key);
    return raw !== undefined && dependsOnOthers(lbService(raw));
  }

  /** Starts workers for queued keys, up to `concurrency`; a key already running waits for its worker. */
  private pump(): void {
    const term = this.term;
    for (const key of this.queue) {
      if (!this.leading || this.exclusive || this.active.size >= this.concurrency) break;
      if (this.active.has(key)) continue;
      const alone = key !== 'pools' && this.mustRunAlone(key);
      if (alone && this.active.size > 0) break; // waits for the running ones, in queue order
      this.queue.delete(key);
      this.active.add(key);
      if (alone) this.exclusive = true;
      void this.work(key, term).finally(() => {
        this.active.delete(key);
        if (alone) this.exclusive = false;
        if (term === this.term) this.pump();
        this.settle();
      });
    }
  }

  private async work(key: string, term: number): Promise<void> {
    try {
      if (key === 'pools') await this.writePoolStatus();
      else await this.reconcile(key);
    } catch (err) {
      const e = toK8sError(err, key);
      this.log?.warn({ key, err: e.message, code: e.code }, 'allocation pass failed; retrying');
      if (term === this.term) setTimeout(() => this.enqueue(key), 1000).unref();
    }
  }

  // ---- allocation state ----------------------------------------------------------------------

  /**
   * Sets what is in effect under `name` from the informer's copy and our own last write: ours while
   * the informer has not caught up with it (a deletion hides an older copy), the informer's after.
   */
  private refresh(name: string): void {
    const seen = this.addresses?.get(name);
    const l = this.local.get(name);
    let now = seen;
    if (l?.obj === null) {
      if (seen && rvOf(seen) <= l.rv) now = undefined;
      else this.local.delete(name);
    } else if (l) {
      if (!seen || rvOf(seen) < l.rv) now = l.obj;
      else this.local.delete(name);
    }
    this.index.set(name, now);
  }

  /** Records one of our writes (null: we deleted it, at resourceVersion `rv`). */
  private wrote(name: string, obj: LoadBalancerAddress | null, rv: number): void {
    this.local.set(name, { obj, rv });
    this.refresh(name);
  }

  private validPools() {
    const pools = this.pools?.list() ?? [];
    const bad = overlapProblems(pools);
    return pools.filter((p) => !bad.has(p.metadata.name)).map(poolView);
  }

  private namespaceLabels = (ns: string) => this.namespaces?.get(ns)?.metadata.labels ?? {};

  private remember(obj: LoadBalancerAddress): void {
    this.wrote(obj.metadata.name, obj, rvOf(obj));
  }

  private async refetch(name: string): Promise<void> {
    try {
      this.remember(await this.o.client.resource(LOADBALANCERADDRESS).get(name));
    } catch (err) {
      const e = toK8sError(err, `get LoadBalancerAddress ${name}`);
      if (e.code !== K8S_ERR.NOT_FOUND) throw e;
      const was = this.index.get(name);
      this.wrote(name, null, was ? rvOf(was) : 0);
    }
  }

  /** Takes one address for `s`: create if absent, or join a shared one (CAS). False when lost a race. */
  private async take(s: LbService, t: Decision['take'][number], exclude: Set<string>): Promise<boolean> {
    const rc = this.o.client.resource(LOADBALANCERADDRESS);
    const name = loadBalancerAddressName(t.address);
    const holder = { namespace: s.namespace, name: s.name, uid: s.uid, ports: s.ports };
    const key = s.annotations[LB_ANNOTATIONS.sharingKey];
    try {
      if (!t.share) {
        const created = await rc.create({
          metadata: { name },
          spec: { address: t.address, pool: t.pool, ...(key ? { sharingKey: key } : {}), services: [holder] },
        });
        this.counts.created++;
        this.remember(created);
      } else {
        const cur = this.index.get(name);
        if (!cur) return false;
        const updated = await rc.replace({
          ...cur,
          spec: { ...cur.spec, services: [...cur.spec.services.filter((h) => h.uid !== s.uid), holder] },
        });
        this.counts.updated++;
        this.remember(updated);
      }
      return true;
    } catch (err) {
      const e = toK8sError(err, `take ${t.address}`);
      if (e.code === K8S_ERR.ALREADY_EXISTS) {
        this.counts.conflicts++;
        exclude.add(t.address);
        await this.refetch(name);
        return false;
      }
      if (e.code === K8S_ERR.CONFLICT) {
        this.counts.conflicts++;
        await this.refetch(name);
        return false;
      }
      throw e;
    }
  }

  /** Removes the holders `drop` picks from an address; deletes it when none is left (CAS). */
  private async release(address: string, drop: (h: Held['holders'][number]) => boolean): Promise<void> {
    const rc = this.o.client.resource(LOADBALANCERADDRESS);
    const name = loadBalancerAddressName(address);
    for (let i = 0; i < MAX_TRIES; i++) {
      const cur = this.index.get(name);
      if (!cur) return;
      const left = cur.spec.services.filter((h) => !drop(h));
      if (left.length === cur.spec.services.length) return;
      try {
        if (left.length === 0) {
          await rc.delete(name, { resourceVersion: cur.metadata.resourceVersion! });
          this.counts.deleted++;
          this.wrote(name, null, rvOf(cur));
          this.log?.info({ address }, 'released');
        } else {
          this.remember(await rc.replace({ ...cur, spec: { ...cur.spec, services: left } }));
          this.counts.updated++;
        }
        return;
      } catch (err) {
        const e = toK8sError(err, `release ${address}`);
        if (e.code !== K8S_ERR.CONFLICT && e.code !== K8S_ERR.NOT_FOUND) throw e;
        this.counts.conflicts++;
        await this.refetch(name);
      }
    }
  }

  /** Keeps the ports recorded for `s` on an address it holds current (sharing checks read them). */
  private async updatePorts(address: string, s: LbService): Promise<void> {
    const rc = this.o.client.resource(LOADBALANCERADDRESS);
    const name = loadBalancerAddressName(address);
    for (let i = 0; i < MAX_TRIES; i++) {
      const cur = this.index.get(name);
      const me = cur?.spec.services.find((h) => h.uid === s.uid);
      if (!cur || !me || JSON.stringify(me.ports) === JSON.stringify(s.ports)) return;
      try {
        const services = cur.spec.services.map((h) => (h.uid === s.uid ? { ...h, ports: s.ports } : h));
        this.remember(await rc.replace({ ...cur, spec: { ...cur.spec, services } }));
        this.counts.updated++;
        return;
      } catch (err) {
        const e = toK8sError(err, `update ports on ${address}`);
        if (e.code !== K8S_ERR.CONFLICT) throw e;
        this.counts.conflicts++;
        await this.refetch(name);
      }
    }
  }

  // ---- one Service ---------------------------------------------------------------------------

  private async reconcile(key: string): Promise<void> {
    const raw = this.services?.get(key);
    const [namespace, name] = key.split('/') as [string, string];
    const ofKey = (h: Held['holders'][number]) => h.namespace === namespace && h.name === name;
    // Holders under this name with another uid belong to a Service that is gone.
    const uid = raw?.metadata.uid;
    for (const h of this.index.heldBy(key))
      if (h.holders.some((o) => ofKey(o) && o.uid !== uid))
        await this.release(h.address, (o) => ofKey(o) && o.uid !== uid);
    if (!raw) return;
    const s = lbService(raw);
    const exclude = new Set<string>();
    let d: Decision | undefined;
    /** Other workers held addresses back when this one found none free: it is due again after them. */
    let again = false;
    for (let i = 0; i < MAX_TRIES; i++) {
      const mine = this.index.heldBy(key).filter((h) => h.holders.some((o) => o.uid === s.uid));
      const world: World = {
        pools: this.validPools(),
        allocations: this.index.byAddress,
        namespaceLabels: this.namespaceLabels,
        exclude: this.reserved.size > 0 ? new Set([...exclude, ...this.reserved]) : exclude,
      };
      d = decide(s, mine, world);
      again = this.reserved.size > 0 && d.problems.some((p) => p.reason === 'NoAddressAvailable');
      // Reserved before the first await: a worker deciding meanwhile picks another address.
      const taking = d.take.filter((t) => !t.share).map((t) => t.address);
      for (const a of taking) this.reserved.add(a);
      let lost = false;
      try {
        for (const t of d.take) {
          if (!(await this.take(s, t, exclude))) {
            lost = true;
            break;
          }
          // Not awaited: Events are rate-limited and must not hold back the allocation.
          void this.o.recorder?.record(
            involved(s),
            'Normal',
            'AddressAllocated',
            `allocated ${t.address} from LoadBalancerPool ${t.pool}${t.share ? ' (shared)' : ''}`,
          );
        }
      } finally {
        for (const a of taking) this.reserved.delete(a);
      }
      if (!lost) break;
    }
    if (again) setImmediate(() => this.enqueue(key));
    if (!d) return;
    for (const a of d.release) await this.release(a, (o) => o.uid === s.uid);
    for (const a of d.keep) await this.updatePorts(a, s);
    const now = this.index.heldBy(key).filter((h) => h.holders.some((o) => o.uid === s.uid));
    await this.writeServiceStatus(s, raw, now, d);
  }

  private async writeServiceStatus(s: LbService, raw: RawService, now: Held[], d: Decision): Promise<void> {
    const status = raw.status ?? {};
    const others = (status.conditions ?? []).filter((c) => c.type !== LB_CONDITION);
    const old = (status.conditions ?? []).find((c) => c.type === LB_CONDITION);
    let ingress: { ip: string }[];
    let conditions: RawCondition[];
    if (!servedByPodnet(s)) {
      // Not ours (any more): take back only what we wrote, the addresses of our pools.
      if (!old) return;
      const pools = this.validPools();
      const ours = (ip: string) => {
        const n = parseIp(ip);
        return (
          !!n &&
          pools.some((p) =>
            p.ranges.some((r) => r.family === n.family && r.first <= n.value && n.value <= r.last),
          )
        );
      };
      ingress = (status.loadBalancer?.ingress ?? []).filter((i) => !i.ip || !ours(i.ip)) as { ip: string }[];
      conditions = others;
    } else {
      const order = s.ipFamilies;
      ingress = now
        .sort((a, b) => order.indexOf(a.family) - order.indexOf(b.family))
        .map((h) => ({ ip: h.address }));
      const p = d.problems[0];
      const cond: RawCondition = {
        type: LB_CONDITION,
        status: p ? 'False' : 'True',
        reason: p ? p.reason : 'Allocated',
        message: p
          ? d.problems.map((x) => x.message).join('; ')
          : `allocated ${ingress.map((i) => i.ip).join(', ')}`,
        observedGeneration: raw.metadata?.generation ?? 1,
        lastTransitionTime: (this.o.now?.() ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      };
      if (old && old.status === cond.status) cond.lastTransitionTime = old.lastTransitionTime;
      if (p && (old?.status !== 'False' || old.message !== cond.message))
        void this.o.recorder?.record(involved(s), 'Warning', p.reason, cond.message!);
      conditions = [...others, cond];
    }
    const same =
      JSON.stringify(ingress) === JSON.stringify(status.loadBalancer?.ingress ?? []) &&
      JSON.stringify(conditions.map(strip)) === JSON.stringify((status.conditions ?? []).map(strip));
    if (same) return;
    try {
      this.o.client.stats.writes++;
      await this.o.client.request(
        'PATCH',
        `/api/v1/namespaces/${encodeURIComponent(s.namespace)}/services/${encodeURIComponent(s.name)}/status`,
        {
          body: {
            metadata: { uid: s.uid },
            status: { loadBalancer: ingress.length > 0 ? { ingress } : { ingress: null }, conditions },
          },
          contentType: MERGE_PATCH,
        },
      );
      this.counts.statusWrites++;
    } catch (err) {
      const e = toK8sError(err, `patch status of Service ${s.namespace}/${s.name}`);
      if (e.code !== K8S_ERR.NOT_FOUND && e.code !== K8S_ERR.CONFLICT) throw e;
    }
  }

  // ---- pools ---------------------------------------------------------------------------------

  private async writePoolStatus(): Promise<void> {
    const pools = this.pools?.list() ?? [];
    const bad = overlapProblems(pools);
    const allocations = this.index.byAddress;
    const rc = this.o.client.resource(LOADBALANCERPOOL);
    const at = (this.o.now?.() ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const desired: {
      name: string;
      uid?: string;
      status: Record<string, unknown>;
      problem?: { reason: string; message: string };
      old?: RawCondition[];
    }[] = [];
    for (const p of pools) {
      const problem = bad.get(p.metadata.name);
      const use = poolUse(poolView(p), allocations);
      desired.push({
        name: p.metadata.name,
        ...(p.metadata.uid ? { uid: p.metadata.uid } : {}),
        status: { addressesInUse: use.inUse, addressesFree: problem ? '0' : String(use.free) },
        ...(problem ? { problem } : {}),
        old: p.status?.conditions as RawCondition[] | undefined,
      });
    }
    for (const inv of this.pools?.invalid() ?? []) {
      if (pools.some((p) => p.metadata.name === inv.key)) continue; // an older valid version is in use
      desired.push({
        name: inv.key,
        status: { addressesInUse: 0, addressesFree: '0' },
        problem: { reason: 'InvalidSpec', message: inv.error.message },
        old: (inv.raw as { status?: { conditions?: RawCondition[] } }).status?.conditions,
      });
    }
    for (const x of desired) {
      const oldReady = x.old?.find((c) => c.type === 'Ready');
      const ready: RawCondition = x.problem
        ? { type: 'Ready', status: 'False', reason: x.problem.reason, message: x.problem.message }
        : {
            type: 'Ready',
            status: 'True',
            reason: 'Valid',
            message: 'addresses are handed out from this pool',
          };
      ready.lastTransitionTime =
        oldReady && oldReady.status === ready.status ? (oldReady.lastTransitionTime as string) : at;
      const status = { ...x.status, conditions: [ready] };
      const text = JSON.stringify({ ...x.status, ready: strip(ready) });
      if (this.poolStatus.get(x.name) === text) continue;
      try {
        await rc.patchStatus(x.name, status);
        this.counts.statusWrites++;
        this.poolStatus.set(x.name, text);
      } catch (err) {
        const e = toK8sError(err, `patch status of LoadBalancerPool ${x.name}`);
        if (e.code !== K8S_ERR.NOT_FOUND) throw e;
        continue;
      }
      if (x.problem && (oldReady?.status !== 'False' || oldReady.message !== x.problem.message))
        await this.o.recorder?.record(
          {
            apiVersion: 'podnet.io/v1alpha1',
            kind: 'LoadBalancerPool',
            name: x.name,
            ...(x.uid ? { uid: x.uid } : {}),
          },
          'Warning',
          x.problem.reason,
          x.problem.message,
        );
    }
  }
}

const strip = (c: RawCondition) => ({ type: c.type, status: c.status, reason: c.reason, message: c.message });

const involved = (s: LbService) => ({
  apiVersion: 'v1',
  kind: 'Service',
  name: s.name,
  namespace: s.namespace,
  uid: s.uid,
});
