// Import/export policy: prefix lists with ge/le and community matching. Pure functions.
import { Afi } from '../wire/constants.js';
import { BgpConfigError } from '../wire/errors.js';
import { parsePrefix } from '../wire/ip.js';
import { normaliseCommunity, parseCommunity, type RouteAttrs } from './attrs.js';

export interface PrefixRule {
  /** `10.0.0.0/8` or `2001:db8::/32`. */
  prefix: string;
  /** Match prefixes at least this long (default: the rule's own length). */
  ge?: number | undefined;
  /** Match prefixes at most this long (default: `ge` if given, else the rule's own length). */
  le?: number | undefined;
  action: 'accept' | 'reject';
}

export interface Policy {
  /** First matching rule decides; no match falls to `defaultAction`. */
  prefixList?: PrefixRule[] | undefined;
  /** What happens to a prefix no rule matches (default `accept`, or `reject` when a prefix list is given). */
  defaultAction?: 'accept' | 'reject' | undefined;
  /** Routes carrying any of these communities (`asn:value`, `no-export`...) are rejected. */
  rejectCommunities?: string[] | undefined;
  /** Communities added to accepted routes. */
  addCommunities?: string[] | undefined;
  /** LOCAL_PREF set on accepted routes (import only). */
  localPref?: number | undefined;
  /**
   * Export only: only routes this speaker originates (`originate`) leave, never routes learned from
   * a peer, whatever the prefix list says. A constant rule, so a peer's policy does not change
   * (and its table is not re-evaluated) each time the speaker originates another prefix.
   */
  originatedOnly?: boolean | undefined;
}

interface CompiledRule {
  family: number;
  bytes: Uint8Array;
  len: number;
  ge: number;
  le: number;
  accept: boolean;
  /** IPv4 rules: the network as an unsigned 32-bit number (0 for IPv6), for `prefixAllowedV4`. */
  v4: number;
}

export interface CompiledPolicy {
  rules: CompiledRule[];
  /**
   * Exact-prefix rules (ge = le = the rule's length), by prefix key, to the index of the first one:
   * a long list of exact prefixes (an originated-only export list) is a lookup, not a scan.
   */
  exact: Map<string, number>;
  /** Indices of the other rules, in order. */
  ranged: number[];
  defaultAccept: boolean;
  reject: Set<string>;
  add: string[];
  localPref?: number | undefined;
  originatedOnly: boolean;
}

export function compilePolicy(p: Policy | undefined, field: string): CompiledPolicy | undefined {
  if (!p) return undefined;
  const rules = (p.prefixList ?? []).map((r, i) => {
    const f = `${field}.prefixList[${i}]`;
    const pp = parsePrefix(r.prefix, `${f}.prefix`);
    const max = pp.bytes.length * 8;
    const ge = r.ge ?? pp.len;
    const le = r.le ?? (r.ge !== undefined ? max : pp.len);
    if (ge < pp.len || ge > max)
      throw new BgpConfigError(`${f}.ge`, r.ge, `must be between ${pp.len} and ${max}`);
    if (le < ge || le > max) throw new BgpConfigError(`${f}.le`, r.le, `must be between ${ge} and ${max}`);
    if (r.action !== 'accept' && r.action !== 'reject')
      throw new BgpConfigError(`${f}.action`, r.action, 'must be accept or reject');
    const b = pp.bytes;
    const v4 = pp.afi === Afi.IPV4 ? ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0 : 0;
    return { family: pp.afi, bytes: pp.bytes, len: pp.len, ge, le, accept: r.action === 'accept', v4 };
  });
  const exact = new Map<string, number>();
  const ranged: number[] = [];
  rules.forEach((r, i) => {
    if (r.ge === r.len && r.le === r.len) {
      const k = exactKey(r.family, r.bytes, r.len);
      if (!exact.has(k)) exact.set(k, i);
    } else ranged.push(i);
  });
  if (p.originatedOnly !== undefined && typeof p.originatedOnly !== 'boolean')
    throw new BgpConfigError(`${field}.originatedOnly`, p.originatedOnly, 'must be true or false');
  if (p.originatedOnly && field !== 'export')
    throw new BgpConfigError(`${field}.originatedOnly`, p.originatedOnly, 'applies to an export policy only');
  for (const [i, c] of [...(p.rejectCommunities ?? []), ...(p.addCommunities ?? [])].entries())
    if (parseCommunity(c) === undefined)
      throw new BgpConfigError(`${field}.communities[${i}]`, c, 'expected asn:value');
  return {
    rules,
    exact,
    ranged,
    defaultAccept: (p.defaultAction ?? (rules.length > 0 ? 'reject' : 'accept')) === 'accept',
    reject: new Set((p.rejectCommunities ?? []).map((c) => normaliseCommunity(c)!)),
    add: (p.addCommunities ?? []).map((c) => normaliseCommunity(c)!),
    localPref: p.localPref,
    originatedOnly: p.originatedOnly === true,
  };
}

function covers(r: CompiledRule, bytes: Uint8Array, len: number): boolean {
  if (len < r.ge || len > r.le) return false;
  for (let bit = 0; bit < r.len; bit++) {
    const m = 7 - (bit & 7);
    if (((bytes[bit >> 3]! >> m) & 1) !== ((r.bytes[bit >> 3]! >> m) & 1)) return false;
  }
  return true;
}

/** `family/len/` and the prefix's leading `len` bits as hex (host bits cleared). */
function exactKey(family: number, bytes: Uint8Array, len: number): string {
  let hex = '';
  for (let i = 0; i * 8 < len; i++) {
    const keep = Math.min(8, len - i * 8);
    hex += (bytes[i]! & (0xff << (8 - keep)) & 0xff).toString(16).padStart(2, '0');
  }
  return `${family}/${len}/${hex}`;
}

/** Does the prefix pass the prefix list? The first matching rule decides. */
export function prefixAllowed(p: CompiledPolicy | undefined, prefix: string): boolean {
  if (!p || p.rules.length === 0) return p?.defaultAccept ?? true;
  const pp = parsePrefix(prefix);
  const hit = p.exact.size ? p.exact.get(exactKey(pp.afi, pp.bytes, pp.len)) : undefined;
  for (const i of p.ranged) {
    if (hit !== undefined && i > hit) break;
    const r = p.rules[i]!;
    if (r.family === pp.afi && covers(r, pp.bytes, pp.len)) return r.accept;
  }
  return hit !== undefined ? p.rules[hit]!.accept : p.defaultAccept;
}

/**
 * `prefixAllowed` for an IPv4 prefix given as numbers (`addr` holds the network in its top `len`
 * bits, the rest 0): the ingest path filters without building a string or an object per prefix.
 */
export function prefixAllowedV4(p: CompiledPolicy | undefined, addr: number, len: number): boolean {
  if (!p || p.rules.length === 0) return p?.defaultAccept ?? true;
  for (const r of p.rules) {
    if (r.family !== Afi.IPV4 || len < r.ge || len > r.le) continue;
    // r.len <= r.ge <= len: compare the rule's r.len leading bits (a shift by 32 would be by 0).
    if (r.len === 0 || addr >>> (32 - r.len) === r.v4 >>> (32 - r.len)) return r.accept;
  }
  return p.defaultAccept;
}

/** Applies the attribute side of a policy: undefined means rejected. */
export function applyAttrs(p: CompiledPolicy | undefined, a: RouteAttrs): RouteAttrs | undefined {
  if (!p) return a;
  if (p.reject.size > 0 && a.communities?.some((c) => p.reject.has(c))) return undefined;
  if (p.add.length === 0 && p.localPref === undefined) return a;
  const out = { ...a };
  if (p.add.length) out.communities = [...new Set([...(a.communities ?? []), ...p.add])];
  if (p.localPref !== undefined) out.localPref = p.localPref;
  return out;
}
