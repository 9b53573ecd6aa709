// The translation kept up to date change by change. translate() stays the authority: this holds
// the same cluster index and builds each policy's part with the same policyPart(), but after a
// change recomputes only the parts the change can alter:
//   - a policy created, changed or deleted: that policy's part;
//   - a pod added, changed or deleted: the policies that select it on this node (old or new
//     labels), whose peers pick it (old or new labels, its namespace's labels), and those with an
//     egress named port (their sets look at every pod's ports);
//   - a namespace's labels: the policies with a namespaceSelector peer matching the old or new
//     labels, and those with an egress named port.
// incremental.test.ts checks after random sequences of changes that the result equals translate().
import {
  addPod,
  assemble,
  byKey,
  type Cluster,
  namespaceInfo,
  nodeAddrs,
  nsLabels,
  type PodInfo,
  type PolicyPart,
  podInfo,
  policyPart,
  removePod,
  type Translation,
} from './compute.js';
import { type ParsedPolicy, type ParsedRule, parsePolicy } from './parse.js';
import { matchesSelector } from './selector.js';
import type { NamespaceInput, PodInput } from './types.js';

interface PolicyEntry {
  parsed?: ParsedPolicy;
  problems: string[];
  /** The policy has an egress rule with a named port (its sets depend on every pod's ports). */
  anyPod: boolean;
  /** The policy has a peer with a namespaceSelector. */
  nsPeers: boolean;
}

export interface IncrementalStats {
  /** Policy parts recomputed since the start. */
  partsComputed: number;
  /** Changes applied since the start. */
  changes: number;
}

const rulesOf = (p: ParsedPolicy): ParsedRule[] => [...(p.ingress ?? []), ...(p.egress ?? [])];

/** The policies' parts for one node, updated by change. */
export class Incremental {
  private readonly cluster: Cluster = { namespaces: new Map(), podsByNs: new Map() };
  private readonly policies = new Map<string, PolicyEntry>();
  private readonly parts = new Map<string, PolicyPart>();
  private readonly dirty = new Set<string>();
  private readonly podProblems = new Map<string, string[]>();
  private readonly nsProblems = new Map<string, string>();
  private addresses: string[] = [];
  private cached: Translation | undefined;
  readonly stats: IncrementalStats = { partsComputed: 0, changes: 0 };

  constructor(readonly node: string) {}

  /** Adds or replaces a policy (keyed `namespace/name` as parsePolicy() names it). */
  setPolicy(raw: unknown): void {
    const r = parsePolicy(raw);
    const key = r.ok ? r.policy.key : r.key;
    const entry: PolicyEntry = r.ok
      ? {
          parsed: r.policy,
          problems: [],
          anyPod: (r.policy.egress ?? []).some((rule) => rule.ports?.some((p) => typeof p.port === 'string')),
          nsPeers: rulesOf(r.policy).some((rule) =>
            rule.peers?.some((p) => p.kind === 'pods' && p.namespaceSelector !== undefined),
          ),
        }
      : { problems: r.problems.map((p) => `networkpolicy ${r.key}: ${p}`), anyPod: false, nsPeers: false };
    this.policies.set(key, entry);
    this.touch(key);
  }

  deletePolicy(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    this.policies.delete(key);
    this.touch(key);
  }

  /** Adds or replaces a pod (by namespace/name); `undefined` labels etc. as PodSchema defaults them. */
  setPod(raw: PodInput): void {
    const key = `${raw.namespace}/${raw.name}`;
    const old = this.cluster.podsByNs.get(raw.namespace)?.get(raw.name);
    const r = podInfo(raw);
    if (r.problems.length) this.podProblems.set(key, r.problems);
    else this.podProblems.delete(key);
    if (old) removePod(this.cluster, old.namespace, old.name);
    if (r.pod) addPod(this.cluster, r.pod);
    this.podChanged(old, r.pod);
    this.changed();
  }

  deletePod(namespace: string, name: string): void {
    const old = this.cluster.podsByNs.get(namespace)?.get(name);
    this.podProblems.delete(`${namespace}/${name}`);
    if (old) {
      removePod(this.cluster, namespace, name);
      this.podChanged(old, undefined);
    }
    this.changed();
  }

  setNamespace(raw: NamespaceInput): void {
    const n = namespaceInfo(raw);
    const rawName = (raw as { name?: unknown }).name;
    const name = typeof n === 'string' ? (typeof rawName === 'string' ? rawName : '') : n.name;
    if (typeof n === 'string') this.nsProblems.set(name, n);
    else this.nsProblems.delete(name);
    const old = nsLabels(this.cluster, name);
    if (typeof n === 'string') this.cluster.namespaces.delete(name);
    else this.cluster.namespaces.set(n.name, n.labels);
    this.namespaceChanged(name, old);
  }

  deleteNamespace(name: string): void {
    this.nsProblems.delete(name);
    const old = nsLabels(this.cluster, name);
    this.cluster.namespaces.delete(name);
    this.namespaceChanged(name, old);
  }

  setNodeAddresses(addresses: string[]): void {
    if (addresses.length === this.addresses.length && addresses.every((a, i) => a === this.addresses[i]))
      return;
    this.addresses = [...addresses];
    this.changed();
  }

  /** Keys of the policies whose parts the next translation() recomputes. */
  pending(): number {
    return this.dirty.size;
  }

  /** What translate() returns for the same policies, pods, namespaces and node addresses. */
  translation(): Translation {
    if (this.cached && this.dirty.size === 0) return this.cached;
    for (const key of this.dirty) {
      const parsed = this.policies.get(key)?.parsed;
      if (parsed) {
        this.parts.set(key, policyPart(this.cluster, parsed, this.node));
        this.stats.partsComputed++;
      } else this.parts.delete(key);
    }
    this.dirty.clear();
    const problems = [
      ...this.nsProblems.values(),
      ...[...this.podProblems.values()].flat(),
      ...[...this.policies.values()].flatMap((p) => p.problems),
    ];
    const addrs = nodeAddrs(this.addresses, problems);
    const parts = [...this.parts.values()].sort(byKey);
    this.cached = assemble(this.node, parts, addrs, problems);
    return this.cached;
  }

  private changed(): void {
    this.stats.changes++;
    this.cached = undefined;
  }

  private touch(key: string): void {
    this.dirty.add(key);
    this.changed();
  }

  /** Marks the policies whose part can differ between a pod's old and new form. */
  private podChanged(old: PodInfo | undefined, now: PodInfo | undefined): void {
    for (const [key, e] of this.policies) {
      const p = e.parsed;
      if (!p || this.dirty.has(key)) continue;
      if (e.anyPod || (old && this.concerns(p, old)) || (now && this.concerns(p, now))) this.dirty.add(key);
    }
  }

  /** Whether policy `p`'s part can involve `pod`: it selects it here, or a peer of a rule picks it. */
  private concerns(p: ParsedPolicy, pod: PodInfo): boolean {
    if (pod.namespace === p.namespace && pod.node === this.node && matchesSelector(p.podSelector, pod.labels))
      return true;
    let ns: Record<string, string> | undefined;
    for (const rule of rulesOf(p))
      for (const peer of rule.peers ?? []) {
        if (peer.kind !== 'pods') continue;
        if (peer.podSelector && !matchesSelector(peer.podSelector, pod.labels)) continue;
        if (!peer.namespaceSelector) {
          if (pod.namespace === p.namespace) return true;
          continue;
        }
        ns ??= nsLabels(this.cluster, pod.namespace);
        if (matchesSelector(peer.namespaceSelector, ns)) return true;
      }
    return false;
  }

  private namespaceChanged(name: string, old: Record<string, string>): void {
    const now = nsLabels(this.cluster, name);
    for (const [key, e] of this.policies) {
      const p = e.parsed;
      if (!p || this.dirty.has(key) || !(e.nsPeers || e.anyPod)) continue;
      if (e.anyPod) {
        this.dirty.add(key);
        continue;
      }
      const picks = rulesOf(p).some((rule) =>
        rule.peers?.some(
          (peer) =>
            peer.kind === 'pods' &&
            peer.namespaceSelector !== undefined &&
            (matchesSelector(peer.namespaceSelector, old) || matchesSelector(peer.namespaceSelector, now)),
        ),
      );
      if (picks) this.dirty.add(key);
    }
    this.changed();
  }
}
