// Route attributes in the form the RIB and the API use (one record per interned set), and the
// conversions to and from the wire's attribute list.
import type { AsSegment, PathAttr } from '../wire/attributes.js';
import { AS_TRANS } from '../wire/constants.js';

/** Path attributes of a route, independent of address family. */
export interface RouteAttrs {
  origin: 'igp' | 'egp' | 'incomplete';
  asPath: AsSegment[];
  /** IPv4 NEXT_HOP, or the IPv6 global next hop from MP_REACH. */
  nextHop?: string | undefined;
  /** IPv6 link-local next hop, when the peer sent one. */
  linkLocalNextHop?: string | undefined;
  med?: number | undefined;
  localPref?: number | undefined;
  atomicAggregate?: boolean | undefined;
  aggregator?: { asn: number; addr: string } | undefined;
  /** RFC 1997 communities as `asn:value` strings. */
  communities?: string[] | undefined;
  /** RFC 8092 large communities as `global:local1:local2` strings. */
  largeCommunities?: string[] | undefined;
  originatorId?: string | undefined;
  clusterList?: string[] | undefined;
  /** Unknown optional transitive attributes, passed on with the Partial bit set. */
  unknown?: { code: number; flags: number; value: Uint8Array }[] | undefined;
}

const originNames = ['igp', 'egp', 'incomplete'] as const;
const originCodes = { igp: 0, egp: 1, incomplete: 2 } as const;

export function communityToString(c: number): string {
  return `${c >>> 16}:${c & 0xffff}`;
}

export function parseCommunity(s: string): number | undefined {
  const known: Record<string, number> = {
    'no-export': 0xffffff01,
    'no-advertise': 0xffffff02,
    'no-export-subconfed': 0xffffff03,
    // RFC 9494
    'llgr-stale': 0xffff0006,
    'no-llgr': 0xffff0007,
  };
  if (known[s] !== undefined) return known[s];
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const a = Number(m[1]);
  const b = Number(m[2]);
  if (a > 0xffff || b > 0xffff) return undefined;
  return ((a << 16) | b) >>> 0;
}

/** Canonical `asn:value` form of a community (`no-export` becomes `65535:65281`). */
export function normaliseCommunity(s: string): string | undefined {
  const c = parseCommunity(s);
  return c === undefined ? undefined : communityToString(c);
}

/** Builds RouteAttrs from decoded wire attributes; merges AS4_PATH for 2-octet peers (RFC 6793 §4.2.3). */
export function fromWire(list: PathAttr[], as4: boolean): RouteAttrs {
  const r: RouteAttrs = { origin: 'igp', asPath: [] };
  let as4Path: AsSegment[] | undefined;
  let as4Agg: { asn: number; addr: string } | undefined;
  for (const a of list) {
    switch (a.type) {
      case 'origin':
        r.origin = originNames[a.value] ?? 'incomplete';
        break;
      case 'as-path':
        r.asPath = a.segments;
        break;
      case 'next-hop':
        r.nextHop = a.addr;
        break;
      case 'med':
        r.med = a.value;
        break;
      case 'local-pref':
        r.localPref = a.value;
        break;
      case 'atomic-aggregate':
        r.atomicAggregate = true;
        break;
      case 'aggregator':
        r.aggregator = { asn: a.asn, addr: a.addr };
        break;
      case 'communities':
        r.communities = a.values.map(communityToString);
        break;
      case 'large-communities':
        r.largeCommunities = a.values.map(([x, y, z]) => `${x}:${y}:${z}`);
        break;
      case 'originator-id':
        r.originatorId = a.id;
        break;
      case 'cluster-list':
        r.clusterList = a.ids;
        break;
      case 'mp-reach':
        r.nextHop = a.nextHops[0];
        if (a.nextHops[1]) r.linkLocalNextHop = a.nextHops[1];
        break;
      case 'as4-path':
        as4Path = a.segments;
        break;
      case 'as4-aggregator':
        as4Agg = { asn: a.asn, addr: a.addr };
        break;
      case 'unknown':
        r.unknown = [...(r.unknown ?? []), { code: a.code, flags: a.flags | 0x20, value: a.value }];
        break;
      case 'mp-unreach':
        break;
    }
  }
  if (!as4 && as4Path) {
    if (r.aggregator && r.aggregator.asn !== AS_TRANS) {
      // RFC 6793 §4.2.3: AGGREGATOR not AS_TRANS means AS4_PATH is ignored.
    } else {
      if (as4Agg) r.aggregator = as4Agg;
      const count = (p: AsSegment[]) =>
        p.reduce((n, s) => n + (s.type === 'sequence' ? s.asns.length : s.type === 'set' ? 1 : 0), 0);
      const n2 = count(r.asPath);
      const n4 = count(as4Path);
      if (n4 <= n2) {
        // Keep the leading (n2 - n4) ASNs of AS_PATH, then AS4_PATH.
        let keep = n2 - n4;
        const head: AsSegment[] = [];
        for (const s of r.asPath) {
          if (keep <= 0) break;
          if (s.type === 'sequence') {
            const part = s.asns.slice(0, keep);
            head.push({ type: 'sequence', asns: part });
            keep -= part.length;
          } else {
            head.push(s);
            keep -= 1;
          }
        }
        r.asPath = [...head, ...as4Path];
      }
    }
  }
  return r;
}

/** Wire attribute list for RouteAttrs (IPv4 NEXT_HOP included only when `v4NextHop`). */
export function toWire(r: RouteAttrs, as4: boolean, v4NextHop: boolean): PathAttr[] {
  const out: PathAttr[] = [
    { type: 'origin', value: originCodes[r.origin] },
    { type: 'as-path', segments: r.asPath },
  ];
  if (v4NextHop && r.nextHop) out.push({ type: 'next-hop', addr: r.nextHop });
  if (r.med !== undefined) out.push({ type: 'med', value: r.med });
  if (r.localPref !== undefined) out.push({ type: 'local-pref', value: r.localPref });
  if (r.atomicAggregate) out.push({ type: 'atomic-aggregate' });
  if (r.aggregator) out.push({ type: 'aggregator', ...r.aggregator });
  if (r.communities?.length)
    out.push({ type: 'communities', values: r.communities.map((c) => parseCommunity(c) ?? 0) });
  if (r.originatorId) out.push({ type: 'originator-id', id: r.originatorId });
  if (r.clusterList?.length) out.push({ type: 'cluster-list', ids: r.clusterList });
  if (!as4) {
    const needs = r.asPath.some((s) => s.asns.some((a) => a > 0xffff));
    if (needs) out.push({ type: 'as4-path', segments: r.asPath });
    if (r.aggregator && r.aggregator.asn > 0xffff) out.push({ type: 'as4-aggregator', ...r.aggregator });
  }
  if (r.largeCommunities?.length)
    out.push({
      type: 'large-communities',
      values: r.largeCommunities.map((s) => s.split(':').map(Number) as [number, number, number]),
    });
  for (const u of r.unknown ?? [])
    out.push({ type: 'unknown', code: u.code, flags: u.flags, value: u.value });
  return out;
}

/** AS_PATH length for best-path selection: an AS_SET counts one, confederation segments zero. */
export function asPathLength(p: AsSegment[]): number {
  let n = 0;
  for (const s of p) n += s.type === 'sequence' ? s.asns.length : s.type === 'set' ? 1 : 0;
  return n;
}

/** The neighbour AS (first AS of the first AS_SEQUENCE), used for MED comparison. */
export function neighborAs(p: AsSegment[]): number | undefined {
  const s = p[0];
  return s?.type === 'sequence' ? s.asns[0] : undefined;
}

export function containsAs(p: AsSegment[], asn: number): boolean {
  return p.some((s) => s.asns.includes(asn));
}

/** A stable string identity for a set of attributes (used for interning). */
export function attrsKey(r: RouteAttrs): string {
  return JSON.stringify(r, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
}
