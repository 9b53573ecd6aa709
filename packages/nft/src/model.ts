// The typed model of the one nf_tables table podnet owns. Everything podnet puts in the kernel's
// netfilter is described here and rendered by render.ts; nothing outside this table is modelled,
// so nothing outside it can be touched.

/** The only family podnet uses: `inet` sees IPv4 and IPv6 in one table. */
export const FAMILY = 'inet';
/** The table podnet owns by default (`inet podnet`). */
export const DEFAULT_TABLE = 'podnet';

export type Hook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
export type ChainType = 'filter' | 'nat' | 'route';
/** Named priorities of the inet family and their numbers (the kernel reports numbers). */
export const NAMED_PRIORITIES = {
  raw: -300,
  mangle: -150,
  dstnat: -100,
  filter: 0,
  security: 50,
  srcnat: 100,
} as const;
export type Priority = keyof typeof NAMED_PRIORITIES | number;

export interface BaseChainSpec {
  type: ChainType;
  hook: Hook;
  priority: Priority;
  /** Default `accept`. */
  policy?: 'accept' | 'drop';
}

/** What a rule does last (or a map element's value). */
export type Verdict =
  | { kind: 'accept' }
  | { kind: 'drop' }
  | { kind: 'return' }
  | { kind: 'jump'; chain: string }
  | { kind: 'goto'; chain: string };

/** Fields a set, a map or a match can key on. */
export type AddrField = 'ip saddr' | 'ip daddr' | 'ip6 saddr' | 'ip6 daddr';
export type KeyField = AddrField | 'iifname' | 'oifname' | 'th dport';

export type Match =
  /** `ip saddr @set` / `ip6 daddr != @set`: the address is (not) in a named set. */
  | { kind: 'addr'; field: AddrField; set: string; negate?: boolean }
  /** `iifname "pn*"`: an interface name, or every name with that prefix when it ends in `*`. */
  | { kind: 'ifname'; field: 'iifname' | 'oifname'; name: string; negate?: boolean }
  /**
   * `oifname . ip saddr @set`: the concatenation of the fields is (not) in a set whose type is the
   * fields' types concatenated (`ifname . ipv4_addr`). `th dport` needs an `l4` match before it.
   */
  | { kind: 'concat'; fields: KeyField[]; set: string; negate?: boolean }
  /** `iifname @set`: the interface is (not) in a named ifname set. */
  | { kind: 'ifset'; field: 'iifname' | 'oifname'; set: string; negate?: boolean }
  /** `meta l4proto tcp`, or with a port `tcp dport 53` / `tcp dport @set` / a range `tcp dport 80-90`. */
  | {
      kind: 'l4';
      proto: 'tcp' | 'udp' | 'sctp';
      dport?: number | { set: string } | { range: [from: number, to: number] };
    }
  /** `ct state established,related`. */
  | { kind: 'ct'; states: ('new' | 'established' | 'related' | 'invalid' | 'untracked')[] };

export type Action =
  | Verdict
  /** Source NAT to the outgoing interface's address (NAT44 or NAT66 in an inet nat chain). */
  | { kind: 'masquerade'; fullyRandom?: boolean }
  /** `ip saddr vmap @map`: the verdict is looked up in a verdict map. */
  | { kind: 'vmap'; field: KeyField; map: string };

export interface Rule {
  match?: Match[];
  /** Count packets and bytes (before the action). */
  counter?: boolean;
  /** No action: the rule only matches (and counts); evaluation continues. */
  action?: Action;
  comment?: string;
}

export interface Chain {
  name: string;
  /** Present for a base chain (attached to a hook); absent for a regular chain (jump/goto target). */
  base?: BaseChainSpec;
  rules: Rule[];
  comment?: string;
}

/** The key types of one field. */
export type BaseType = 'ipv4_addr' | 'ipv6_addr' | 'inet_service' | 'ifname';
/**
 * A set's key type: one field, or a concatenation of two or three (`ifname . ipv4_addr`), whose
 * elements are written the same way (`pn0001 . 10.65.0.2`). Concatenations have no `interval`.
 */
export type SetType = BaseType | `${BaseType} . ${BaseType}` | `${BaseType} . ${BaseType} . ${BaseType}`;

export interface NamedSet {
  name: string;
  type: SetType;
  /** `flags interval`: elements may be prefixes (`10.0.0.0/8`). Address sets only. */
  interval?: boolean;
  /** Addresses / prefixes, ports (as decimal text) or interface names. */
  elements: string[];
  comment?: string;
}

export interface VerdictMap {
  name: string;
  type: SetType;
  interval?: boolean;
  elements: { key: string; verdict: Verdict }[];
  comment?: string;
}

export interface Table {
  /** Default `podnet`. */
  name?: string;
  chains: Chain[];
  sets?: NamedSet[];
  maps?: VerdictMap[];
}
