// The translation to @podnet/nft's model: the table fragment this node's agent adds to `inet podnet`.
//
//   chain np-forward (filter, hook forward, priority filter, policy accept)
//     ct state established,related accept       replies and flows already allowed
//     iifname vmap @np-egress                   from a selected pod: jump np-out-<ifname>
//     oifname vmap @np-ingress                  to a selected pod:   jump np-in-<ifname>
//   chain np-in-<ifname>                        one per pod isolated for ingress
//     ip saddr @np-node4 return                 its own node (kubelet probes), ip6 likewise
//     ip saddr @<rule set>-v4 tcp dport 80 return   one rule per allowed (family, port)
//     counter drop
//   chain np-out-<ifname>                       one per pod isolated for egress, daddr instead
//
// A chain allows with `return`, so a packet between two selected pods of this node passes the
// sender's egress chain and then the receiver's ingress chain. Peer addresses live in sets per
// policy rule and family: the pods a rule's selectors pick in a plain set (`<id>-p4`), its
// ipBlocks in an interval set (`<id>-v4`), each only when the rule has peers of that kind. A pod or
// namespace label change, a pod address change, is an element update of the plain sets (which the
// kernel takes over netlink, without an `nft` process); the rules change only with the pods a
// policy selects.
import type { Chain, Match, NamedSet, Rule, Table, VerdictMap } from '@podnet/nft';
import type { Allow, PeerSet, PortMatch, Translation } from './compute.js';

export const POLICY_CHAIN = 'np-forward';
export const INGRESS_MAP = 'np-ingress';
export const EGRESS_MAP = 'np-egress';
export const NODE_SET = { v4: 'np-node4', v6: 'np-node6' } as const;

export const ingressChain = (ifname: string) => `np-in-${ifname}`;
export const egressChain = (ifname: string) => `np-out-${ifname}`;
/** The set of a rule's ipBlock prefixes (`interval`). */
export const setName = (id: string, family: 'v4' | 'v6') => `${id}-${family}`;
/** The set of the addresses of the pods a rule's selectors pick. */
export const podSetName = (id: string, family: 'v4' | 'v6') => `${id}-p${family.slice(1)}`;

const COMMENT_MAX = 128;
const comment = (text: string) => (text.length > COMMENT_MAX ? `${text.slice(0, COMMENT_MAX - 1)}~` : text);

function portMatch(p: PortMatch): Match {
  const proto = p.protocol.toLowerCase() as 'tcp' | 'udp' | 'sctp';
  if (p.port === undefined) return { kind: 'l4', proto };
  if (p.endPort === undefined) return { kind: 'l4', proto, dport: p.port };
  return { kind: 'l4', proto, dport: { range: [p.port, p.endPort] } };
}

function allowRules(a: Allow, dir: 'ingress' | 'egress', peers: PeerSet | undefined): Rule[] {
  const side = dir === 'ingress' ? 'saddr' : 'daddr';
  const addrs: Match[][] = [];
  if (!a.peers) addrs.push([]);
  else
    for (const [present, name] of [
      [peers?.pods, podSetName],
      [peers?.blocks, setName],
    ] as const)
      if (present)
        addrs.push(
          [{ kind: 'addr', field: `ip ${side}`, set: name(a.peers, 'v4') }],
          [{ kind: 'addr', field: `ip6 ${side}`, set: name(a.peers, 'v6') }],
        );
  const ports: Match[][] = a.ports ? a.ports.map((p) => [portMatch(p)]) : [[]];
  const text = comment(`${a.policy} ${dir}[${a.rule}]`);
  return addrs.flatMap((am) =>
    ports.map((pm): Rule => {
      const match = [...am, ...pm];
      return match.length
        ? { match, action: { kind: 'return' }, comment: text }
        : { action: { kind: 'return' }, comment: text };
    }),
  );
}

function podChain(
  name: string,
  allows: Allow[],
  dir: 'ingress' | 'egress',
  pod: string,
  sets: ReadonlyMap<string, PeerSet>,
): Chain {
  const rules: Rule[] = [];
  if (dir === 'ingress')
    rules.push(
      { match: [{ kind: 'addr', field: 'ip saddr', set: NODE_SET.v4 }], action: { kind: 'return' } },
      { match: [{ kind: 'addr', field: 'ip6 saddr', set: NODE_SET.v6 }], action: { kind: 'return' } },
    );
  for (const a of allows)
    rules.push(...allowRules(a, dir, a.peers === undefined ? undefined : sets.get(a.peers)));
  rules.push({ counter: true, action: { kind: 'drop' }, comment: comment(`${pod} ${dir} not allowed`) });
  return { name, rules, comment: comment(`${dir} of ${pod}`) };
}

/** The base chain dispatching to the pods' chains (the same for every translation). */
function forwardChain(): Chain {
  return {
    name: POLICY_CHAIN,
    base: { type: 'filter', hook: 'forward', priority: 'filter', policy: 'accept' },
    comment: "NetworkPolicy of this node's pods",
    rules: [
      { match: [{ kind: 'ct', states: ['established', 'related'] }], action: { kind: 'accept' } },
      { match: [], action: { kind: 'vmap', field: 'iifname', map: EGRESS_MAP } },
      { match: [], action: { kind: 'vmap', field: 'oifname', map: INGRESS_MAP } },
    ],
  };
}
const FORWARD = frozenRules(forwardChain());

/**
 * `c` with its rules frozen, deeply: @podnet/nft checks a frozen rules array once and keys it by
 * identity (the memo hands the same chain back while its entries are unchanged).
 */
function frozenRules(c: Chain): Chain {
  for (const r of c.rules) {
    for (const m of r.match ?? []) {
      if (m.kind === 'l4' && typeof m.dport === 'object') {
        if ('range' in m.dport) Object.freeze(m.dport.range);
        Object.freeze(m.dport);
      }
      if (m.kind === 'concat' || m.kind === 'ct') Object.freeze(m.kind === 'concat' ? m.fields : m.states);
      Object.freeze(m);
    }
    if (r.match) Object.freeze(r.match);
    if (r.action) Object.freeze(r.action);
    Object.freeze(r);
  }
  return { ...c, rules: Object.freeze(c.rules) as Rule[] };
}

/**
 * What policyTable() built last, so that the next one hands back the same objects for what did not
 * change: a pod's chain whose entries are equal, a set whose elements are equal (its elements array
 * frozen: @podnet/nft checks a frozen array once, and renderPatch() skips an unchanged chain or set
 * by identity). Only for one translation after another of the same node.
 */
export class LowerMemo {
  chains = new Map<string, { key: string; chain: Chain }>();
  sets = new Map<string, NamedSet>();
  /** Chains and sets built anew (not reused) by the last policyTable() call. */
  rebuilt = { chains: 0, sets: 0 };
}

function sameElements(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The nft table fragment (chains, sets, maps) of a translation. Concatenate it into the agent's
 * table. With `memo`, unchanged chains and sets are the objects of the previous call.
 */
export function policyTable(
  t: Translation,
  memo?: LowerMemo,
): Required<Pick<Table, 'chains' | 'sets' | 'maps'>> {
  const chains: Chain[] = [memo ? FORWARD : forwardChain()];
  const ingress: VerdictMap = { name: INGRESS_MAP, type: 'ifname', elements: [] };
  const egress: VerdictMap = { name: EGRESS_MAP, type: 'ifname', elements: [] };
  const chainMemo = new Map<string, { key: string; chain: Chain }>();
  const setMemo = new Map<string, NamedSet>();
  const rebuilt = { chains: 0, sets: 0 };
  const peerSets = new Map(t.sets.map((s) => [s.id, s]));
  const chain = (name: string, allows: Allow[], dir: 'ingress' | 'egress', pod: string): Chain => {
    if (!memo) return podChain(name, allows, dir, pod, peerSets);
    // The kinds of each set an entry refers to shape the rules too (they are the rule's, fixed).
    const kinds = allows.map((a) => {
      const s = a.peers === undefined ? undefined : peerSets.get(a.peers);
      return `${s?.pods ? 'p' : ''}${s?.blocks ? 'b' : ''}`;
    });
    const key = `${pod}\0${JSON.stringify(allows)}\0${kinds.join()}`;
    const prev = memo.chains.get(name);
    const c = prev?.key === key ? prev.chain : frozenRules(podChain(name, allows, dir, pod, peerSets));
    if (c !== prev?.chain) rebuilt.chains++;
    chainMemo.set(name, { key, chain: c });
    return c;
  };
  const set = (s: NamedSet): NamedSet => {
    if (!memo) return s;
    const prev = memo.sets.get(s.name);
    const out =
      prev &&
      prev.type === s.type &&
      prev.interval === s.interval &&
      prev.comment === s.comment &&
      sameElements(prev.elements, s.elements)
        ? prev
        : { ...s, elements: Object.freeze([...s.elements]) as string[] };
    if (out !== prev) rebuilt.sets++;
    setMemo.set(s.name, out);
    return out;
  };
  for (const p of t.pods) {
    const pod = `${p.namespace}/${p.name}`;
    if (p.ingress) {
      chains.push(chain(ingressChain(p.ifname), p.ingress, 'ingress', pod));
      ingress.elements.push({ key: p.ifname, verdict: { kind: 'jump', chain: ingressChain(p.ifname) } });
    }
    if (p.egress) {
      chains.push(chain(egressChain(p.ifname), p.egress, 'egress', pod));
      egress.elements.push({ key: p.ifname, verdict: { kind: 'jump', chain: egressChain(p.ifname) } });
    }
  }
  const sets: NamedSet[] = [
    set({
      name: NODE_SET.v4,
      type: 'ipv4_addr',
      interval: true,
      elements: t.nodeAddrs.v4,
      comment: 'this node',
    }),
    set({
      name: NODE_SET.v6,
      type: 'ipv6_addr',
      interval: true,
      elements: t.nodeAddrs.v6,
      comment: 'this node',
    }),
  ];
  for (const s of t.sets) {
    const c = comment(s.origin);
    if (s.pods) {
      sets.push(set({ name: podSetName(s.id, 'v4'), type: 'ipv4_addr', elements: s.pods.v4, comment: c }));
      sets.push(set({ name: podSetName(s.id, 'v6'), type: 'ipv6_addr', elements: s.pods.v6, comment: c }));
    }
    if (s.blocks) {
      const b = s.blocks;
      sets.push(
        set({ name: setName(s.id, 'v4'), type: 'ipv4_addr', interval: true, elements: b.v4, comment: c }),
      );
      sets.push(
        set({ name: setName(s.id, 'v6'), type: 'ipv6_addr', interval: true, elements: b.v6, comment: c }),
      );
    }
  }
  if (memo) {
    memo.chains = chainMemo;
    memo.sets = setMemo;
    memo.rebuilt = rebuilt;
  }
  return { chains, sets, maps: [ingress, egress] };
}
