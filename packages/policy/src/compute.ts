// The semantics: which local pods the policies select, and for each of them the union of what
// its policies allow, as allow entries over shared peer sets. A peer set belongs to one policy
// rule (not to a pod), so the rules grow with pods x policies selecting them, while the peers of
// a rule (every pod a selector picks, every ipBlock) are elements of its set. The pods' addresses
// and the ipBlocks' prefixes are kept apart: pods come and go and change labels, and their
// addresses are plain elements the kernel takes as a delta; prefixes need an interval set.
import { createHash } from 'node:crypto';
import { type Family, formatIp, parseCidrResult, parseIpResult, podInterfaceName } from '@podnet/net';
import { type ParsedPolicy, type ParsedPort, type ParsedRule, parsePolicy } from './parse.js';
import { inSpans, type Span, toPrefixes } from './ranges.js';
import { matchesSelector } from './selector.js';
import {
  NamespaceSchema,
  type Pod,
  type PodInput,
  PodSchema,
  type PolicyInput,
  type Protocol,
} from './types.js';

/** The label the API server puts on every namespace (selectable even when the input lacks it). */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

export interface FamilyAddrs {
  v4: string[];
  v6: string[];
}

/**
 * The addresses of a rule's peers, by kind. Which kinds are present depends on the rule alone
 * (its peers' kinds), never on the pods: the rules referring to the set stay the same while its
 * members change.
 */
export interface PeerSet {
  /** Unique per policy rule (and named port): the nft set names derive from it. */
  id: string;
  /** `namespace/name ingress[0]` (and the named port). */
  origin: string;
  /** Present when the rule has an ipBlock peer: the blocks less their excepts, as canonical prefixes (a host as the bare address). */
  blocks?: FamilyAddrs;
  /** Present when the rule has a selector peer: the addresses of the pods picked, bare, in numeric order. */
  pods?: FamilyAddrs;
}

/** Every entry of a peer set in one family: its pods' addresses, then its ipBlocks' prefixes. */
export function peerEntries(s: PeerSet, family: keyof FamilyAddrs): string[] {
  return [...(s.pods?.[family] ?? []), ...(s.blocks?.[family] ?? [])];
}

export interface PortMatch {
  protocol: Protocol;
  /** Absent: every port of the protocol. */
  port?: number;
  /** With `port`: the range port..endPort. */
  endPort?: number;
}

/** One allowed (peers, ports) pair of one policy rule, for one pod and direction. */
export interface Allow {
  /** `namespace/name` of the policy. */
  policy: string;
  rule: number;
  /** A PeerSet id; absent: every address. */
  peers?: string;
  /** Absent: every port and protocol. Never empty. */
  ports?: PortMatch[];
  /** Named ports of the rule, as resolved for this entry (`http` = TCP 8080), for display. */
  named?: string[];
}

export interface PodPolicy {
  namespace: string;
  name: string;
  /** The host side of the pod's veth: the interface the chains are dispatched on. */
  ifname: string;
  /** `namespace/name` of every policy selecting the pod. */
  policies: string[];
  /** Present when some policy isolates the pod's ingress: only these pass (besides replies and the node). */
  ingress?: Allow[];
  /** Present when some policy isolates the pod's egress. */
  egress?: Allow[];
}

export interface Translation {
  node: string;
  /** Local pods selected by at least one policy, by ifname. */
  pods: PodPolicy[];
  /** Peer sets the allow entries refer to, by id. */
  sets: PeerSet[];
  /** This node's addresses (always allowed to reach its pods). */
  nodeAddrs: { v4: string[]; v6: string[] };
  /** Inputs that were skipped, each naming the object, the field and the value. */
  problems: string[];
}

interface Addr {
  family: Family;
  value: bigint;
}
export interface PodInfo extends Pod {
  addrs: Addr[];
}

/** The cluster as the translation indexes it (kept up to date change by change by Incremental). */
export interface Cluster {
  /** Each namespace's labels, with its name label. */
  namespaces: Map<string, Record<string, string>>;
  /** The pods of each namespace by name (a namespace without pods has no entry). */
  podsByNs: Map<string, Map<string, PodInfo>>;
}

function* allPods(c: Cluster): Iterable<PodInfo> {
  for (const pods of c.podsByNs.values()) yield* pods.values();
}

/** A namespace as the cluster holds it (labels plus its name label), or a problem naming it. */
export function namespaceInfo(raw: unknown): { name: string; labels: Record<string, string> } | string {
  const r = NamespaceSchema.safeParse(raw);
  if (!r.success) return `namespace ${JSON.stringify(raw)}: ${r.error.issues[0]?.message}`;
  return { name: r.data.name, labels: { ...r.data.labels, [NAMESPACE_NAME_LABEL]: r.data.name } };
}

/** A pod as the cluster holds it (its parsed addresses; bad ones skipped), and its problems. */
export function podInfo(raw: PodInput): { pod?: PodInfo; problems: string[] } {
  const r = PodSchema.safeParse(raw);
  if (!r.success) return { problems: [`pod ${raw.namespace}/${raw.name}: ${r.error.issues[0]?.message}`] };
  const problems: string[] = [];
  const addrs: Addr[] = [];
  for (const ip of r.data.ips) {
    const a = parseIpResult(ip);
    if (a.ok) addrs.push({ family: a.value.family, value: a.value.value });
    else
      problems.push(
        `pod ${r.data.namespace}/${r.data.name}: ips: ${JSON.stringify(ip)} is not an IP address: ${a.reason}`,
      );
  }
  return { pod: { ...r.data, addrs }, problems };
}

export function addPod(c: Cluster, p: PodInfo): void {
  let m = c.podsByNs.get(p.namespace);
  if (!m) {
    m = new Map();
    c.podsByNs.set(p.namespace, m);
  }
  m.set(p.name, p);
}

export function removePod(c: Cluster, namespace: string, name: string): void {
  const m = c.podsByNs.get(namespace);
  if (!m) return;
  m.delete(name);
  if (m.size === 0) c.podsByNs.delete(namespace);
}

function index(input: PolicyInput, problems: string[]): Cluster {
  const c: Cluster = { namespaces: new Map(), podsByNs: new Map() };
  for (const raw of input.namespaces) {
    const n = namespaceInfo(raw);
    if (typeof n === 'string') problems.push(n);
    else c.namespaces.set(n.name, n.labels);
  }
  for (const raw of input.pods) {
    const r = podInfo(raw);
    problems.push(...r.problems);
    if (r.pod) addPod(c, r.pod);
  }
  return c;
}

export const nsLabels = (c: Cluster, ns: string) => c.namespaces.get(ns) ?? { [NAMESPACE_NAME_LABEL]: ns };

/**
 * Pods a rule's selector peers pick, and the spans of its ipBlocks, per family; each undefined
 * when the rule has no peer of that kind.
 */
function rulePeers(c: Cluster, policy: ParsedPolicy, rule: ParsedRule) {
  let pods: Set<PodInfo> | undefined;
  let blocks: Record<Family, Span[]> | undefined;
  for (const peer of rule.peers ?? []) {
    if (peer.kind === 'block') {
      blocks ??= { 4: [], 6: [] };
      blocks[peer.family].push(...peer.spans);
      continue;
    }
    pods ??= new Set();
    const nss = peer.namespaceSelector
      ? [...c.podsByNs.keys()].filter((ns) => matchesSelector(peer.namespaceSelector!, nsLabels(c, ns)))
      : [policy.namespace];
    for (const ns of nss)
      for (const p of c.podsByNs.get(ns)?.values() ?? [])
        if (!peer.podSelector || matchesSelector(peer.podSelector, p.labels)) pods.add(p);
  }
  return { pods: pods && [...pods], blocks };
}

/** The addresses of `addrs`, each family in numeric order, without repeats. */
function hostAddrs(addrs: Iterable<Addr>): FamilyAddrs {
  const byFamily: Record<Family, bigint[]> = { 4: [], 6: [] };
  for (const a of addrs) byFamily[a.family].push(a.value);
  const text = (family: Family) => {
    const v = byFamily[family].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return v.filter((x, i) => i === 0 || x !== v[i - 1]).map((value) => formatIp({ family, value }));
  };
  return { v4: text(4), v6: text(6) };
}

function peerSet(
  id: string,
  origin: string,
  pods: Iterable<Addr> | undefined,
  blocks: Record<Family, Span[]> | undefined,
): PeerSet {
  const s: PeerSet = { id, origin };
  if (blocks) s.blocks = { v4: toPrefixes(4, blocks[4]), v6: toPrefixes(6, blocks[6]) };
  if (pods) s.pods = hostAddrs(pods);
  return s;
}

const addrsOf = (pods: PodInfo[]) => pods.flatMap((p) => p.addrs);

/** The number a named port means on `pod` (first container port with that name and protocol). */
function resolveNamed(pod: Pod, name: string, protocol: Protocol): number | undefined {
  return pod.ports.find((p) => p.name === name && p.protocol === protocol)?.containerPort;
}

function numericPort(p: ParsedPort): PortMatch {
  const m: PortMatch = { protocol: p.protocol };
  if (typeof p.port === 'number') m.port = p.port;
  if (typeof p.port === 'number' && p.endPort !== undefined && p.endPort !== p.port) m.endPort = p.endPort;
  return m;
}

const hashes = new Map<string, string>();
/** 10 hex of sha1(namespace/name): the stable stem of a policy's set names (memoised). */
function policyHash(key: string): string {
  let h = hashes.get(key);
  if (h === undefined) {
    h = createHash('sha1').update(key).digest('hex').slice(0, 10);
    if (hashes.size > 100_000) hashes.clear();
    hashes.set(key, h);
  }
  return h;
}

/** Builds the sets of one policy's rules once, however many local pods the policy selects. */
class RuleSets {
  readonly sets = new Map<string, PeerSet>();
  constructor(private readonly c: Cluster) {}

  /** The set of the rule's peers (undefined when the rule has none: every address). */
  base(policy: ParsedPolicy, dir: 'ingress' | 'egress', i: number, rule: ParsedRule): string | undefined {
    if (!rule.peers) return undefined;
    const id = `np${policyHash(policy.key)}-${dir[0]}${i}`;
    if (!this.sets.has(id)) {
      const { pods, blocks } = rulePeers(this.c, policy, rule);
      this.sets.set(id, peerSet(id, `${policy.key} ${dir}[${i}]`, pods && addrsOf(pods), blocks));
    }
    return id;
  }

  /**
   * An egress rule's named port, resolved on each destination pod: one set per number it means,
   * holding the peers (pods picked by the rule's selectors, or pods inside its ipBlocks; every pod
   * when the rule has no peers) that define the name as that number.
   */
  named(policy: ParsedPolicy, i: number, rule: ParsedRule, name: string, protocol: Protocol) {
    const peers = rule.peers
      ? rulePeers(this.c, policy, rule)
      : { pods: [...allPods(this.c)], blocks: undefined };
    const pods = peers.pods ?? [];
    const blocks = peers.blocks ?? { 4: [], 6: [] };
    const candidates = new Set(pods);
    if (peers.blocks)
      for (const p of allPods(this.c))
        if (p.addrs.some((a) => inSpans(blocks[a.family], a.value))) candidates.add(p);
    const byNumber = new Map<number, PodInfo[]>();
    for (const p of candidates) {
      const n = resolveNamed(p, name, protocol);
      if (n !== undefined) byNumber.set(n, [...(byNumber.get(n) ?? []), p]);
    }
    const out: { id: string; port: number }[] = [];
    const picked = new Set(pods);
    for (const [n, ps] of [...byNumber].sort((a, b) => a[0] - b[0])) {
      const id = `np${policyHash(policy.key)}-e${i}-${protocol.toLowerCase()}${n}`;
      // A pod picked only through an ipBlock contributes only its addresses inside the block.
      const members = ps.flatMap((p) =>
        picked.has(p) ? p.addrs : p.addrs.filter((a) => inSpans(blocks[a.family], a.value)),
      );
      this.sets.set(
        id,
        peerSet(id, `${policy.key} egress[${i}] ${name}=${protocol}/${n}`, members, undefined),
      );
      out.push({ id, port: n });
    }
    return out;
  }
}

function ingressAllows(sets: RuleSets, policy: ParsedPolicy, pod: Pod): Allow[] {
  const out: Allow[] = [];
  (policy.ingress ?? []).forEach((rule, i) => {
    const a: Allow = { policy: policy.key, rule: i };
    const peers = sets.base(policy, 'ingress', i, rule);
    if (peers) a.peers = peers;
    if (rule.ports) {
      // Named ports resolve on the destination, which is this pod; a name it lacks matches nothing.
      const named: string[] = [];
      const ports = rule.ports.flatMap((p): PortMatch[] => {
        if (typeof p.port !== 'string') return [numericPort(p)];
        const n = resolveNamed(pod, p.port, p.protocol);
        if (n !== undefined) named.push(`${p.port}=${p.protocol}/${n}`);
        return n === undefined ? [] : [{ protocol: p.protocol, port: n }];
      });
      if (ports.length === 0) return;
      a.ports = ports;
      if (named.length) a.named = named;
    }
    out.push(a);
  });
  return out;
}

function egressAllows(sets: RuleSets, policy: ParsedPolicy): Allow[] {
  const out: Allow[] = [];
  (policy.egress ?? []).forEach((rule, i) => {
    const peers = sets.base(policy, 'egress', i, rule);
    const numeric = rule.ports?.filter((p) => typeof p.port !== 'string');
    if (!rule.ports || (numeric && numeric.length > 0)) {
      const a: Allow = { policy: policy.key, rule: i };
      if (peers) a.peers = peers;
      if (numeric) a.ports = numeric.map(numericPort);
      out.push(a);
    }
    for (const p of rule.ports ?? []) {
      if (typeof p.port !== 'string') continue;
      for (const s of sets.named(policy, i, rule, p.port, p.protocol))
        out.push({
          policy: policy.key,
          rule: i,
          peers: s.id,
          ports: [{ protocol: p.protocol, port: s.port }],
          named: [`${p.port}=${p.protocol}/${s.port}`],
        });
    }
  });
  return out;
}

export function nodeAddrs(addresses: string[], problems: string[]) {
  const spans: Record<Family, Span[]> = { 4: [], 6: [] };
  for (const text of addresses) {
    // Node annotations carry the address with its prefix length (10.0.0.11/24): the address counts.
    const r = parseCidrResult(text, { hostBits: 'keep', bare: true });
    if (!r.ok) problems.push(`nodeAddresses: ${JSON.stringify(text)} is not an address: ${r.reason}`);
    else spans[r.value.family].push({ start: r.value.addr, end: r.value.addr });
  }
  return { v4: toPrefixes(4, spans[4]), v6: toPrefixes(6, spans[6]) };
}

/** What one policy contributes on `node`: its entries for each local pod it selects, and its sets. */
export interface PolicyPart {
  key: string;
  pods: { pod: PodInfo; ifname: string; ingress?: Allow[]; egress?: Allow[] }[];
  sets: PeerSet[];
}

/** One policy's part of the translation for `node` (its sets are its own: ids derive from its key). */
export function policyPart(cluster: Cluster, policy: ParsedPolicy, node: string): PolicyPart {
  const sets = new RuleSets(cluster);
  const pods: PolicyPart['pods'] = [];
  let egress: Allow[] | undefined;
  for (const pod of cluster.podsByNs.get(policy.namespace)?.values() ?? []) {
    if (pod.node !== node || !matchesSelector(policy.podSelector, pod.labels)) continue;
    const entry: PolicyPart['pods'][number] = { pod, ifname: podInterfaceName(pod.namespace, pod.name) };
    if (policy.ingress) entry.ingress = ingressAllows(sets, policy, pod);
    if (policy.egress) entry.egress = egress ??= egressAllows(sets, policy);
    pods.push(entry);
  }
  return { key: policy.key, pods, sets: [...sets.sets.values()] };
}

/** The translation from the policies' parts, taken in the order of their keys. */
export function assemble(
  node: string,
  parts: Iterable<PolicyPart>,
  nodeAddresses: { v4: string[]; v6: string[] },
  problems: string[],
): Translation {
  const byIf = new Map<string, PodPolicy>();
  const sets: PeerSet[] = [];
  for (const part of parts) {
    sets.push(...part.sets);
    for (const e of part.pods) {
      let pp = byIf.get(e.ifname);
      if (!pp) {
        pp = { namespace: e.pod.namespace, name: e.pod.name, ifname: e.ifname, policies: [] };
        byIf.set(e.ifname, pp);
      }
      pp.policies.push(part.key);
      if (e.ingress) {
        pp.ingress ??= [];
        pp.ingress.push(...e.ingress);
      }
      if (e.egress) {
        pp.egress ??= [];
        pp.egress.push(...e.egress);
      }
    }
  }
  return {
    node,
    pods: [...byIf.values()].sort((a, b) => (a.ifname < b.ifname ? -1 : 1)),
    sets: sets.sort((a, b) => (a.id < b.id ? -1 : 1)),
    nodeAddrs: nodeAddresses,
    problems,
  };
}

export const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** Policies + pods + namespaces → what `input.node` enforces for its pods. Pure. */
export function translate(input: PolicyInput): Translation {
  const problems: string[] = [];
  const cluster = index(input, problems);
  const policies: ParsedPolicy[] = [];
  for (const raw of input.policies) {
    const r = parsePolicy(raw);
    if (r.ok) policies.push(r.policy);
    else problems.push(...r.problems.map((p) => `networkpolicy ${r.key}: ${p}`));
  }
  policies.sort(byKey);
  const parts = policies.map((p) => policyPart(cluster, p, input.node));
  const addrs = nodeAddrs(input.nodeAddresses, problems);
  return assemble(input.node, parts, addrs, problems);
}
