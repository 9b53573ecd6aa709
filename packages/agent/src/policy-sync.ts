// NetworkPolicy enforcement, the agent's side (docs/network-policy.md). The only file of the agent
// that calls @podnet/policy: it watches NetworkPolicies, Namespaces and every Pod cluster-wide,
// keeps of each object only what the translation reads (a projection, never the whole object),
// and hands the agent the `inet podnet` fragment (chains, sets, maps) that enforces the policies
// for this node's pods on their pn* interfaces. Changes are debounced (bounded by a maximum delay)
// and then trigger one netfilter reconcile; unusable policies are logged and reported as Events
// naming the field and value, while every other policy stays enforced.
import {
  compareStrings,
  coreSource,
  Informer,
  type InformerEvent,
  type InformerSource,
  type KubeClient,
  type Meta,
  toK8sError,
} from '@podnet/k8s';
import type { Table } from '@podnet/nft';
import {
  Incremental,
  LowerMemo,
  type NamespaceInput,
  type PodInput,
  podFromObject,
  policyTable,
  type Translation,
} from '@podnet/policy';
import type { Logger } from 'pino';
import { POD_IP_ANNOTATION, POD_IPS_ANNOTATION } from './adapters/views.js';
import type { EventRecorder } from './events.js';

export type PolicyFragment = Required<Pick<Table, 'chains' | 'sets' | 'maps'>>;

/** What the agent asks of the policy side (PolicySync is the real one). */
export interface PolicyPort {
  /** Every watch listed once: before that, enforcing would open what a policy closes. */
  synced(): boolean;
  /** The chains, sets and maps enforcing the policies for this node's pods. */
  fragment(nodeAddresses: string[]): PolicyFragment;
  /** Policies (and pods, namespaces) not used as written, each naming the field and value. */
  problems(): string[];
}

// ------------------------------------------------------------------ projections

/**
 * A Pod as kept in memory: what the translation reads. `metadata.resourceVersion` holds a digest of
 * the projection instead of the server's version, so the informer reports a change only when a
 * field we use changed (a status condition or annotation update is not one).
 */
export interface PodProjection extends Meta {
  metadata: { namespace: string; name: string; resourceVersion: string };
  labels: Readonly<Record<string, string>>;
  ips: readonly string[];
  node?: string;
  ports: PodInput['ports'];
  /** Host-network pods use the node's address: never a policy peer, never enforced. */
  hostNetwork?: true;
}

export interface NamespaceProjection extends Meta {
  metadata: { name: string; resourceVersion: string };
  labels: Readonly<Record<string, string>>;
}

export interface PolicyObject extends Meta {
  metadata: { namespace: string; name: string; resourceVersion: string; uid?: string };
  spec: unknown;
}

/**
 * Shares equal values between projections: label maps, port lists, node names and label strings of
 * pods of one workload are one object each, not one per pod. Emptied when it holds more entries
 * than `limit` (what projections already hold stays shared; new ones start a new table), so values
 * no pod uses any more do not pile up.
 */
export class Interner {
  private readonly values = new Map<string, unknown>();
  constructor(private readonly limit = 50_000) {}

  intern<T>(key: string, make: () => T): T {
    const hit = this.values.get(key);
    if (hit !== undefined) return hit as T;
    if (this.values.size >= this.limit) this.values.clear();
    const v = make();
    this.values.set(key, v);
    return v;
  }

  string(s: string): string {
    return this.intern(`s\0${s}`, () => s);
  }

  labels(l: Record<string, string> | undefined): Readonly<Record<string, string>> {
    if (!l) return EMPTY;
    const entries = Object.entries(l).sort(([a], [b]) => compareStrings(a, b));
    if (entries.length === 0) return EMPTY;
    return this.intern(`l\0${JSON.stringify(entries)}`, () =>
      Object.freeze(Object.fromEntries(entries.map(([k, v]) => [this.string(k), this.string(v)]))),
    );
  }

  get size(): number {
    return this.values.size;
  }
}

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});
const NO_PORTS: PodInput['ports'] = Object.freeze([]) as unknown as PodInput['ports'];

/** FNV-1a over the projection's fields: a short stand-in for the resourceVersion. */
function digest(parts: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < parts.length; i++) {
    h ^= parts.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(36);
}

type RawPod = Parameters<typeof podFromObject>[0] & {
  metadata?: { annotations?: Record<string, string> };
  spec?: { hostNetwork?: boolean };
  status?: { phase?: string };
};

/** A core/v1 Pod (as listed or watched) reduced to its projection. */
export function projectPod(raw: unknown, interner: Interner): PodProjection {
  const o = raw as RawPod;
  const p = podFromObject(o);
  // A finished pod's addresses go back to IPAM and may be another pod's already.
  const done = o.status?.phase === 'Succeeded' || o.status?.phase === 'Failed';
  // podnet's CNI plugin writes the addresses as annotations at ADD, before (or without) the kubelet's
  // status.podIPs: the same precedence as the agent's own pods (adapters/views.ts podView).
  const ann = o.metadata?.annotations?.[POD_IPS_ANNOTATION] ?? o.metadata?.annotations?.[POD_IP_ANNOTATION];
  const annotated = ann
    ? ann
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)
    : [];
  const ips = done ? [] : annotated.length ? annotated : (p.ips ?? []);
  const ports = p.ports?.length
    ? interner.intern(
        `p\0${JSON.stringify(p.ports)}`,
        () => Object.freeze(p.ports ?? []) as PodInput['ports'],
      )
    : NO_PORTS;
  const labels = interner.labels(p.labels);
  const node = p.node ? interner.string(p.node) : undefined;
  const hostNetwork = o.spec?.hostNetwork === true;
  const version = digest(
    `${JSON.stringify(labels)}|${ips.join(',')}|${node ?? ''}|${JSON.stringify(ports)}|${hostNetwork}`,
  );
  return {
    metadata: { namespace: interner.string(p.namespace), name: p.name, resourceVersion: version },
    labels,
    ips: hostNetwork ? [] : ips,
    ...(node ? { node } : {}),
    ports,
    ...(hostNetwork ? { hostNetwork: true as const } : {}),
  };
}

export function projectNamespace(raw: unknown, interner: Interner): NamespaceProjection {
  const m = (raw as { metadata?: { name?: string; labels?: Record<string, string> } }).metadata ?? {};
  const labels = interner.labels(m.labels);
  return {
    metadata: { name: interner.string(m.name ?? ''), resourceVersion: digest(JSON.stringify(labels)) },
    labels,
  };
}

export function projectPolicy(raw: unknown): PolicyObject {
  const o = raw as {
    metadata?: { namespace?: string; name?: string; resourceVersion?: string; uid?: string };
    spec?: unknown;
  };
  const m = o.metadata ?? {};
  return {
    metadata: {
      namespace: m.namespace ?? '',
      name: m.name ?? '',
      resourceVersion: m.resourceVersion ?? '',
      ...(m.uid ? { uid: m.uid } : {}),
    },
    spec: o.spec,
  };
}

/** A projection as the translation's input (shared label and port objects, no copies). */
function podInput(p: PodProjection): PodInput {
  return {
    namespace: p.metadata.namespace,
    name: p.metadata.name,
    labels: p.labels as Record<string, string>,
    ips: p.ips as string[],
    ...(p.node ? { node: p.node } : {}),
    ports: p.ports,
  };
}

const namespaceInput = (n: NamespaceProjection): NamespaceInput => ({
  name: n.metadata.name,
  labels: n.labels as Record<string, string>,
});

// ------------------------------------------------------------------ sources

function named(raw: unknown): boolean {
  const n = (raw as Meta | null)?.metadata?.name;
  return typeof n === 'string' && n !== '';
}

/** Every Pod of the cluster, projected as it arrives (the store never holds a whole Pod). */
export function podSource(client: KubeClient, interner: Interner): InformerSource<PodProjection> {
  const core = coreSource<Meta>(client, 'Pod');
  return {
    kind: 'Pod',
    path: core.path,
    list: (opts) => core.list(opts),
    parse: (raw) =>
      named(raw)
        ? { ok: true, value: projectPod(raw, interner) }
        : { ok: false, error: new Error('Pod without metadata.name') },
  };
}

export function namespaceSource(client: KubeClient, interner: Interner): InformerSource<NamespaceProjection> {
  return {
    kind: 'Namespace',
    path: '/api/v1/namespaces',
    async list(opts) {
      client.stats.reads++;
      try {
        const r = (await client.request('GET', '/api/v1/namespaces', { query: { ...opts } })) as {
          items?: unknown[];
          metadata?: { resourceVersion?: string };
        };
        return { items: r.items ?? [], resourceVersion: r.metadata?.resourceVersion ?? '' };
      } catch (err) {
        throw toK8sError(err, 'list Namespace');
      }
    },
    parse: (raw) =>
      named(raw)
        ? { ok: true, value: projectNamespace(raw, interner) }
        : { ok: false, error: new Error('Namespace without metadata.name') },
  };
}

/** NetworkPolicies as the server sends them (spec unchecked here: the translation names bad fields). */
export function networkPolicySource(client: KubeClient): InformerSource<PolicyObject> {
  return {
    kind: 'NetworkPolicy',
    path: '/apis/networking.k8s.io/v1/networkpolicies',
    async list(opts) {
      client.stats.reads++;
      try {
        const r = (await client.request('GET', '/apis/networking.k8s.io/v1/networkpolicies', {
          query: { ...opts },
        })) as { items?: unknown[]; metadata?: { resourceVersion?: string } };
        return { items: r.items ?? [], resourceVersion: r.metadata?.resourceVersion ?? '' };
      } catch (err) {
        throw toK8sError(err, 'list NetworkPolicy');
      }
    },
    parse: (raw) =>
      named(raw)
        ? { ok: true, value: projectPolicy(raw) }
        : { ok: false, error: new Error('NetworkPolicy without metadata.name') },
  };
}

// ------------------------------------------------------------------ the sync

export interface Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(h: unknown): void;
  now(): number;
}

const realClock: Clock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  now: () => Date.now(),
};

/**
 * Coalesces a burst of changes into one call without delaying a lone change: the first change
 * after a quiet spell runs `fn` on the next turn of the event loop (the events of one watch batch
 * still go together); changes within `quietMs` of a call are held and run `quietMs` after the
 * last of them, but never later than `maxDelayMs` after the first one held (a steady stream still
 * gets applied).
 */
export class Debouncer {
  private timer: unknown;
  private firstAt: number | undefined;
  /** The pending call is a leading one: changes before it runs are in it already. */
  private leading = false;
  private lastFireAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly fn: () => void,
    private readonly quietMs: number,
    private readonly maxDelayMs: number,
    private readonly clock: Clock = realClock,
  ) {}

  trigger(): void {
    if (this.leading) return;
    const now = this.clock.now();
    if (this.timer === undefined && now - this.lastFireAt >= this.quietMs) {
      this.leading = true;
      this.timer = this.clock.setTimeout(() => this.fire(), 0);
      return;
    }
    this.firstAt ??= now;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.quietMs, this.firstAt + this.maxDelayMs - now));
    this.timer = this.clock.setTimeout(() => this.fire(), wait);
  }

  private fire(): void {
    this.timer = undefined;
    this.firstAt = undefined;
    this.leading = false;
    this.lastFireAt = this.clock.now();
    this.fn();
  }

  cancel(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.firstAt = undefined;
    this.leading = false;
  }
}

export interface PolicyStores {
  pods: { list(): PodProjection[]; hasSynced: boolean };
  namespaces: { list(): NamespaceProjection[]; hasSynced: boolean };
  policies: { list(): PolicyObject[]; hasSynced: boolean };
}

export interface PolicySyncOptions {
  node: string;
  log: Logger;
  /** Called (debounced) after pods, namespaces or policies changed in a way the translation reads. */
  onChange: () => void;
  debounceMs: number;
  maxDelayMs: number;
  /** Warning Events on unusable NetworkPolicies (absent: log lines only). */
  events?: EventRecorder;
  clock?: Clock;
}

/** A translation problem about a policy (`networkpolicy ns/name: field: value why`), split up. */
export function policyOfProblem(p: string): { namespace: string; name: string; message: string } | undefined {
  const m = /^networkpolicy ([^/\s]+)\/([^:\s]+): (.*)$/s.exec(p);
  return m ? { namespace: m[1]!, name: m[2]!, message: m[3]! } : undefined;
}

type Change<T> = { type: 'added' | 'modified' | 'deleted'; object: T };

/**
 * The translation over stores, kept up to date change by change (@podnet/policy's Incremental:
 * a change recomputes only the policies it concerns; LowerMemo keeps the unchanged chains and sets
 * the same objects, so validation and the nft patch cost the change, not the table). `changed()`
 * (or a relist) rebuilds from the stores on the next fragment().
 */
export class PolicyEngine implements PolicyPort {
  private inc: Incremental | undefined;
  private memo = new LowerMemo();
  private cached: { t: Translation; fragment: PolicyFragment } | undefined;
  private reported = new Set<string>();
  private readonly log: Logger;

  constructor(
    private readonly stores: PolicyStores,
    private readonly o: Pick<PolicySyncOptions, 'node' | 'log' | 'events'>,
  ) {
    this.log = o.log.child({ component: 'network-policy' });
  }

  /** Rebuild from the stores on the next fragment() (a relist; tests changing the stores). */
  changed(): void {
    this.inc = undefined;
  }

  pod(ev: Change<PodProjection>): void {
    if (!this.inc) return;
    const p = ev.object;
    if (ev.type === 'deleted' || p.hostNetwork) this.inc.deletePod(p.metadata.namespace, p.metadata.name);
    else this.inc.setPod(podInput(p));
  }

  namespace(ev: Change<NamespaceProjection>): void {
    if (!this.inc) return;
    if (ev.type === 'deleted') this.inc.deleteNamespace(ev.object.metadata.name);
    else this.inc.setNamespace(namespaceInput(ev.object));
  }

  policy(ev: Change<PolicyObject>): void {
    if (!this.inc) return;
    if (ev.type === 'deleted') this.inc.deletePolicy(ev.object.metadata.namespace, ev.object.metadata.name);
    else this.inc.setPolicy(ev.object);
  }

  synced(): boolean {
    return this.stores.pods.hasSynced && this.stores.namespaces.hasSynced && this.stores.policies.hasSynced;
  }

  private rebuild(): Incremental {
    const inc = new Incremental(this.o.node);
    for (const n of this.stores.namespaces.list()) inc.setNamespace(namespaceInput(n));
    for (const p of this.stores.pods.list()) if (!p.hostNetwork) inc.setPod(podInput(p));
    for (const np of this.stores.policies.list()) inc.setPolicy(np);
    this.memo = new LowerMemo();
    return inc;
  }

  fragment(nodeAddresses: string[]): PolicyFragment {
    const started = performance.now();
    const full = !this.inc;
    this.inc ??= this.rebuild();
    this.inc.setNodeAddresses(nodeAddresses);
    const parts = this.inc.pending();
    const t = this.inc.translation();
    if (this.cached?.t === t) return this.cached.fragment;
    const translated = performance.now();
    const fragment = policyTable(t, this.memo);
    this.report(t.problems);
    this.cached = { t, fragment };
    this.log.debug(
      {
        full,
        policiesRecomputed: parts,
        chainsRebuilt: this.memo.rebuilt.chains,
        setsRebuilt: this.memo.rebuilt.sets,
        translateMs: Math.round((translated - started) * 10) / 10,
        lowerMs: Math.round((performance.now() - translated) * 10) / 10,
        pods: t.pods.length,
        sets: fragment.sets.length,
        chains: fragment.chains.length,
      },
      'network policy translated',
    );
    return fragment;
  }

  problems(): string[] {
    return this.cached?.t.problems ?? [];
  }

  /** Each problem once while it lasts: a log line, and an Event on the policy it names. */
  private report(problems: string[]): void {
    const now = new Set(problems);
    for (const p of problems) {
      if (this.reported.has(p)) continue;
      const np = policyOfProblem(p);
      this.log.warn(
        np ? { policy: `${np.namespace}/${np.name}`, problem: np.message } : { problem: p },
        np ? 'NetworkPolicy not enforced as written' : 'network policy input skipped',
      );
      if (np && this.o.events)
        void this.o.events.record(
          {
            apiVersion: 'networking.k8s.io/v1',
            kind: 'NetworkPolicy',
            namespace: np.namespace,
            name: np.name,
          },
          'Warning',
          'InvalidNetworkPolicy',
          `${np.message} (not enforced on node ${this.o.node}; the other policies are)`,
        );
    }
    this.reported = now;
  }
}

/** Watches the three kinds cluster-wide and drives a PolicyEngine. */
export class PolicySync implements PolicyPort {
  readonly interner = new Interner();
  readonly pods: Informer<PodProjection>;
  readonly namespaces: Informer<NamespaceProjection>;
  readonly policies: Informer<PolicyObject>;
  private readonly engine: PolicyEngine;
  private readonly debouncer: Debouncer;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(client: KubeClient, o: PolicySyncOptions) {
    const io = { logger: o.log, initialBackoffMs: 200, maxBackoffMs: 5000 };
    this.pods = new Informer(client, podSource(client, this.interner), io);
    this.namespaces = new Informer(client, namespaceSource(client, this.interner), io);
    this.policies = new Informer(client, networkPolicySource(client), io);
    this.engine = new PolicyEngine(
      { pods: this.pods, namespaces: this.namespaces, policies: this.policies },
      o,
    );
    this.debouncer = new Debouncer(o.onChange, o.debounceMs, o.maxDelayMs, o.clock ?? realClock);
  }

  start(): void {
    const watch = <T extends Meta>(inf: Informer<T>, apply: (ev: Change<T>) => void) => {
      this.unsubscribe.push(
        inf.on((ev: InformerEvent<T>) => {
          if (ev.type === 'invalid') return;
          if (ev.type === 'relisted' || ev.type === 'synced') this.engine.changed();
          else apply(ev);
          this.debouncer.trigger();
        }),
      );
      inf.start();
    };
    watch(this.pods, (ev) => this.engine.pod(ev));
    watch(this.namespaces, (ev) => this.engine.namespace(ev));
    watch(this.policies, (ev) => this.engine.policy(ev));
  }

  async stop(): Promise<void> {
    this.debouncer.cancel();
    for (const u of this.unsubscribe.splice(0)) u();
    await Promise.all([this.pods.stop(), this.namespaces.stop(), this.policies.stop()]);
  }

  synced(): boolean {
    return this.engine.synced();
  }

  fragment(nodeAddresses: string[]): PolicyFragment {
    return this.engine.fragment(nodeAddresses);
  }

  problems(): string[] {
    return this.engine.problems();
  }
}

/** The `inet podnet` model with the policy fragment added (names are the fragment's own, np-…). */
export function withPolicy(table: Table, fragment: PolicyFragment | undefined): Table {
  if (!fragment) return table;
  return {
    ...table,
    chains: [...table.chains, ...fragment.chains],
    sets: [...(table.sets ?? []), ...fragment.sets],
    maps: [...(table.maps ?? []), ...fragment.maps],
  };
}
