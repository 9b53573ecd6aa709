// The netfilter model of the node: a pure function of the IPPools, the Nodes and the
// BGPConfigurations to the one nf_tables table podnet owns (`inet podnet`, rendered and applied by
// @podnet/nft). Membership lives in interval address sets, so a pool, exclusion or node change is an
// element update; the rules only name the sets (docs/network-models.md).
import type { Chain, NamedSet, Rule, Table } from '@podnet/nft';
import { addressOf, type Cidr, parseCidr } from './ip.js';
import type { BgpConfigView, NodeView, PoolView } from './model.js';

export const NETFILTER_TABLE = 'podnet';

/** A pool (or other object) podnet acts on differently from what its spec asks, and why. */
export interface NetfilterProblem {
  kind: 'IPPool' | 'BGPConfiguration' | 'Node';
  name: string;
  /** Names the fields and values. */
  message: string;
}

export interface NetfilterInput {
  nodeName: string;
  /** The usable pools (overlapping ones already set aside). */
  pools: PoolView[];
  nodes: NodeView[];
  bgpConfigs: BgpConfigView[];
}

export interface NetfilterPlan {
  table: Table;
  problems: NetfilterProblem[];
}

/** The sets of the table, per family (suffix 4 / 6). */
export const SETS = ['pools', 'nat', 'natexcl', 'isolated', 'cluster'] as const;
type SetName = (typeof SETS)[number];

const SET_COMMENTS: Record<SetName, string> = {
  pools: 'every IPPool',
  nat: 'IPPools with natOutgoing (not disabled, not isolated)',
  natexcl: 'natOutgoingExclusions: never translated',
  isolated: 'IPPools with isolated',
  cluster: 'IPPools, node addresses and service cluster ranges',
};

/** Is the pool isolated, and is it masqueraded: isolated wins over natOutgoing (fails closed). */
export function poolTreatment(p: PoolView): { isolated: boolean; nat: boolean; conflict: boolean } {
  const isolated = p.isolated === true;
  const conflict = isolated && p.natOutgoing === true;
  return { isolated, nat: p.natOutgoing === true && !isolated && !p.disabled, conflict };
}

/** The message of an IPPool that sets both isolated and natOutgoing (log line, pool condition). */
export function conflictMessage(): string {
  return 'spec.isolated: true and spec.natOutgoing: true cannot both apply; the pool is treated as isolated (its traffic is not masqueraded): set one of them to false';
}

/**
 * Prefixes of one family with no overlap, as an nft interval set needs them: a prefix inside another
 * is dropped (prefixes either nest or are disjoint, so this is a merge). Sorted.
 */
export function normalisePrefixes(prefixes: Cidr[]): string[] {
  const sorted = [...prefixes].sort((a, b) =>
    a.net < b.net ? -1 : a.net > b.net ? 1 : a.prefixLen - b.prefixLen,
  );
  const out: Cidr[] = [];
  for (const c of sorted) {
    const last = out[out.length - 1];
    if (last && inside(c, last)) continue;
    out.push(c);
  }
  return out.map((c) => c.text);
}

function inside(inner: Cidr, outer: Cidr): boolean {
  if (inner.family !== outer.family || inner.prefixLen < outer.prefixLen) return false;
  const bits = inner.family === 4 ? 32 : 128;
  const shift = BigInt(bits - outer.prefixLen);
  return inner.net >> shift === outer.net >> shift;
}

class Collector {
  private readonly byFamily = { 4: new Map<SetName, Cidr[]>(), 6: new Map<SetName, Cidr[]>() };

  add(set: SetName, c: Cidr): void {
    const m = this.byFamily[c.family];
    const list = m.get(set) ?? [];
    list.push(c);
    m.set(set, list);
  }

  sets(): NamedSet[] {
    const out: NamedSet[] = [];
    for (const family of [4, 6] as const)
      for (const s of SETS)
        out.push({
          name: `${s}${family}`,
          type: family === 4 ? 'ipv4_addr' : 'ipv6_addr',
          interval: true,
          elements: normalisePrefixes(this.byFamily[family].get(s) ?? []),
          comment: SET_COMMENTS[s],
        });
    return out;
  }
}

function natRule(f: 4 | 6): Rule {
  const ip = f === 4 ? 'ip' : 'ip6';
  return {
    match: [
      { kind: 'addr', field: `${ip} saddr`, set: `nat${f}` },
      { kind: 'addr', field: `${ip} daddr`, set: `pools${f}`, negate: true },
      { kind: 'addr', field: `${ip} daddr`, set: `natexcl${f}`, negate: true },
    ],
    counter: true,
    action: { kind: 'masquerade' },
    comment: `natOutgoing IPv${f}: pods to outside every pool and exclusion`,
  };
}

function isolationRules(f: 4 | 6): Rule[] {
  const ip = f === 4 ? 'ip' : 'ip6';
  return [
    {
      match: [
        { kind: 'addr', field: `${ip} saddr`, set: `isolated${f}` },
        { kind: 'addr', field: `${ip} daddr`, set: `cluster${f}`, negate: true },
      ],
      counter: true,
      action: { kind: 'drop' },
      comment: `isolated IPv${f}: pods to outside the cluster`,
    },
    {
      match: [
        { kind: 'addr', field: `${ip} daddr`, set: `isolated${f}` },
        { kind: 'addr', field: `${ip} saddr`, set: `cluster${f}`, negate: true },
      ],
      counter: true,
      action: { kind: 'drop' },
      comment: `isolated IPv${f}: outside the cluster to pods`,
    },
  ];
}

/**
 * The chains: fixed rules over the sets, so no input change rewrites a rule. No chain comments:
 * @podnet/nft does not read them back, so each resync saw drift and recreated the table.
 */
export function netfilterChains(): Chain[] {
  return [
    {
      name: 'postrouting',
      base: { type: 'nat', hook: 'postrouting', priority: 'srcnat' },
      rules: [natRule(4), natRule(6)],
    },
    {
      name: 'forward',
      base: { type: 'filter', hook: 'forward', priority: 'filter', policy: 'accept' },
      rules: [...isolationRules(4), ...isolationRules(6)],
    },
  ];
}

/** The table of this node: pools, exclusions (default + node.<name>), node addresses, service ranges. */
export function buildNetfilter(input: NetfilterInput): NetfilterPlan {
  const problems: NetfilterProblem[] = [];
  const sets = new Collector();
  for (const p of input.pools) {
    const c = parseCidr(p.cidr);
    if (!c) {
      problems.push({
        kind: 'IPPool',
        name: p.name,
        message: `spec.cidr: ${JSON.stringify(p.cidr)} is not a CIDR; left out`,
      });
      continue;
    }
    const t = poolTreatment(p);
    if (t.conflict) problems.push({ kind: 'IPPool', name: p.name, message: conflictMessage() });
    sets.add('pools', c);
    sets.add('cluster', c);
    if (t.nat) sets.add('nat', c);
    if (t.isolated) sets.add('isolated', c);
  }
  const configs = input.bgpConfigs.filter((b) => b.name === 'default' || b.name === `node.${input.nodeName}`);
  for (const b of configs) {
    const cidrs = (field: string, list: string[] | undefined, set: SetName) =>
      (list ?? []).forEach((s, i) => {
        const c = parseCidr(s);
        if (c) sets.add(set, c);
        else
          problems.push({
            kind: 'BGPConfiguration',
            name: b.name,
            message: `spec.${field}[${i}].cidr: ${JSON.stringify(s)} is not a CIDR; left out`,
          });
      });
    cidrs('natOutgoingExclusions', b.natOutgoingExclusions, 'natexcl');
    cidrs('serviceClusterIPs', b.serviceClusterIPs, 'cluster');
  }
  for (const n of input.nodes)
    for (const a of [n.ipv4, n.ipv6, ...(n.internalIPs ?? [])]) {
      if (!a) continue;
      const c = parseCidr(addressOf(a));
      if (c) sets.add('cluster', c);
    }
  return { table: { name: NETFILTER_TABLE, chains: netfilterChains(), sets: sets.sets() }, problems };
}
