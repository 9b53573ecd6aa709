// Adj-RIB-In, Loc-RIB and the decision process (RFC 4271 §9.1, RFC 4456 §9).
// Memory layout for large tables: attribute sets are interned (one object per distinct set), IPv4
// prefixes are numeric keys (addr * 64 + len), and a Loc-RIB entry is one pointer to the source
// whose path won. No per-prefix objects.

import { Afi } from '../wire/constants.js';
import { type AfiValue, v4KeyToString } from '../wire/ip.js';
import { asPathLength, attrsKey, neighborAs, type RouteAttrs } from './attrs.js';
import type { PrefixMap } from './prefix-map.js';

/** IPv4 prefixes are numbers (addr * 64 + len); IPv6 prefixes are canonical strings. */
export type PrefixKey = number | string;

export function keyToPrefix(k: PrefixKey): string {
  return typeof k === 'number' ? v4KeyToString(k) : k;
}

export function keyFamily(k: PrefixKey): AfiValue {
  return typeof k === 'number' ? Afi.IPV4 : Afi.IPV6;
}

/**
 * One attribute set with the fields the decision process reads, precomputed. A set is made for
 * every distinct attribute list that arrives, but it enters the table (is interned) only when a
 * prefix that uses it is accepted, and leaves it when the last such prefix goes (refcount).
 */
export interface AttrSet {
  readonly id: number;
  readonly attrs: RouteAttrs;
  readonly key: string;
  /** Prefixes (Adj-RIB-In, stale, Adj-RIB-Out entries) holding this set. */
  refs: number;
  /** In the table: some prefix holds it. A set that is not is garbage once no cache refers to it. */
  interned: boolean;
  readonly pathLen: number;
  readonly originCode: number;
  readonly med: number;
  readonly localPref: number;
  readonly nbrAs: number | undefined;
  /** Carries LLGR_STALE (65535:6): the least preferred of all paths (RFC 9494). */
  readonly llgrStale: boolean;
}

/** RFC 9494 well-known communities, in RouteAttrs form. */
export const LLGR_STALE = '65535:6';
export const NO_LLGR = '65535:7';

export class AttrTable {
  private readonly byKey = new Map<string, AttrSet>();
  private nextId = 1;

  /** A set for `attrs`, not yet in the table: nothing is held until `acquire`. */
  make(attrs: RouteAttrs, defaultLocalPref = 100): AttrSet {
    const key = attrsKey(attrs);
    const live = this.byKey.get(key);
    if (live) return live;
    return {
      id: this.nextId++,
      attrs,
      key,
      refs: 0,
      interned: false,
      pathLen: asPathLength(attrs.asPath),
      originCode: attrs.origin === 'igp' ? 0 : attrs.origin === 'egp' ? 1 : 2,
      med: attrs.med ?? 0,
      localPref: attrs.localPref ?? defaultLocalPref,
      nbrAs: neighborAs(attrs.asPath),
      llgrStale: attrs.communities?.includes(LLGR_STALE) ?? false,
    };
  }

  /**
   * Takes one reference for a prefix that is accepted with `s`, and returns the set to store: `s`
   * itself (interned now if it was not), or the set of equal attributes already in the table.
   */
  acquire(s: AttrSet): AttrSet {
    if (!s.interned) {
      const live = this.byKey.get(s.key);
      if (live) s = live;
      else {
        s.interned = true;
        this.byKey.set(s.key, s);
      }
    }
    s.refs++;
    return s;
  }

  /** Drops one reference; the last one takes the set out of the table. */
  release(s: AttrSet): void {
    if (--s.refs > 0) return;
    s.refs = 0;
    if (s.interned) {
      s.interned = false;
      if (this.byKey.get(s.key) === s) this.byKey.delete(s.key);
    }
  }

  /** Sets held by at least one prefix. */
  get size(): number {
    return this.byKey.size;
  }
}

/** Same attributes (`a` and `b` may be distinct objects, one of them not interned). */
export function sameAttrs(a: AttrSet | undefined, b: AttrSet | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.key === b.key);
}

/** Where paths come from: a peer, or the speaker itself (originated routes). */
export interface PathSource {
  readonly id: number;
  readonly kind: 'local' | 'peer';
  readonly address: string;
  /** Comparable form of the address for the last tie-break. */
  readonly addressOrder: string;
  ebgp: boolean;
  /** Peer's BGP Identifier (set when the session comes up). */
  routerId: string;
  routeReflectorClient: boolean;
  /** The session is Established (peers only). */
  up: boolean;
  readonly adjIn: PrefixMap<AttrSet>;
  /** Routes kept from a previous session while the peer restarts (RFC 4724 helper mode). */
  stale?: PrefixMap<AttrSet> | undefined;
}

export function addressOrder(addr: string): string {
  if (addr.includes(':')) return `6${addr}`;
  return `4${addr
    .split('.')
    .map((p) => p.padStart(3, '0'))
    .join('.')}`;
}

function ipOrder(s: string | undefined): number {
  if (!s) return 0;
  const p = s.split('.');
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}

/**
 * Compares two candidate paths: negative when `a` is better. `upTo` stops after the step that
 * ECMP uses (5: eBGP over iBGP), so equal-up-to-there paths are multipath-equal.
 */
export function comparePaths(a: PathSource, as: AttrSet, b: PathSource, bs: AttrSet, upTo = 99): number {
  // RFC 9494: a path carrying LLGR_STALE loses to every path that does not.
  if (as.llgrStale !== bs.llgrStale) return as.llgrStale ? 1 : -1;
  // Locally originated routes win over learned ones.
  if (a.kind !== b.kind) return a.kind === 'local' ? -1 : 1;
  // 1. Highest LOCAL_PREF.
  if (as.localPref !== bs.localPref) return bs.localPref - as.localPref;
  // 2. Shortest AS_PATH.
  if (as.pathLen !== bs.pathLen) return as.pathLen - bs.pathLen;
  // 3. Lowest ORIGIN.
  if (as.originCode !== bs.originCode) return as.originCode - bs.originCode;
  // 4. Lowest MED, only between paths from the same neighbour AS.
  if (as.nbrAs === bs.nbrAs && as.med !== bs.med) return as.med - bs.med;
  // 5. eBGP over iBGP.
  if (a.ebgp !== b.ebgp) return a.ebgp ? -1 : 1;
  if (upTo <= 5) return 0;
  // 6. Lowest BGP Identifier (ORIGINATOR_ID when reflected, RFC 4456 §9).
  const ida = ipOrder(as.attrs.originatorId ?? a.routerId);
  const idb = ipOrder(bs.attrs.originatorId ?? b.routerId);
  if (ida !== idb) return ida - idb;
  // 7. Shortest CLUSTER_LIST.
  const cla = as.attrs.clusterList?.length ?? 0;
  const clb = bs.attrs.clusterList?.length ?? 0;
  if (cla !== clb) return cla - clb;
  // 8. Lowest peer address.
  return a.addressOrder < b.addressOrder ? -1 : a.addressOrder > b.addressOrder ? 1 : 0;
}

export function pathOf(src: PathSource, key: PrefixKey): AttrSet | undefined {
  return src.adjIn.get(key) ?? src.stale?.get(key);
}

/**
 * Whether a path may be selected: RFC 4271 §9.1.2.1, a route whose NEXT_HOP cannot be resolved is
 * excluded from the decision process. Originated paths always qualify.
 */
export type PathUsable = (src: PathSource, set: AttrSet) => boolean;

/** A PathUsable over a next-hop reachability test (undefined when there is none). */
export function nextHopUsable(reachable: ((addr: string) => boolean) | undefined): PathUsable | undefined {
  if (!reachable) return undefined;
  return (src, set) =>
    src.kind === 'local' || set.attrs.nextHop === undefined || reachable(set.attrs.nextHop);
}

/** Best source for `key` among `sources`, or undefined when no one has a (usable) path. */
export function selectBest(
  sources: PathSource[],
  key: PrefixKey,
  usable?: PathUsable,
): PathSource | undefined {
  let best: PathSource | undefined;
  let bestSet: AttrSet | undefined;
  for (const s of sources) {
    const set = pathOf(s, key);
    if (!set || (usable && !usable(s, set))) continue;
    if (!best || comparePaths(s, set, best, bestSet!) < 0) {
      best = s;
      bestSet = set;
    }
  }
  return best;
}

/** The ECMP set: the best path plus every path equal to it through step 5, distinct next hops. */
export function multipath(
  sources: PathSource[],
  key: PrefixKey,
  best: PathSource,
  usable?: PathUsable,
): { src: PathSource; set: AttrSet }[] {
  const bestSet = pathOf(best, key)!;
  const out = [{ src: best, set: bestSet }];
  const hops = new Set([bestSet.attrs.nextHop]);
  for (const s of sources) {
    if (s === best) continue;
    const set = pathOf(s, key);
    if (!set || hops.has(set.attrs.nextHop) || (usable && !usable(s, set))) continue;
    if (comparePaths(s, set, best, bestSet, 5) === 0) {
      out.push({ src: s, set });
      hops.add(set.attrs.nextHop);
    }
  }
  return out;
}
