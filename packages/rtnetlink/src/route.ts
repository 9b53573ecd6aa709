// rtmsg: routes (linux/rtnetlink.h, rtnetlink(7)). Encoders write into a Writer; the decoder is
// pure and returns a NetlinkError for malformed input.

import { forEachAttr, NLA_TYPE_MASK } from './codec.js';
import {
  AF,
  NLM_F,
  ROUTE_TYPES,
  type RouteType,
  RT_SCOPE,
  RT_TABLE,
  RTA,
  RTM,
  RTMSG_LEN,
  RTN,
  RTNEXTHOP_LEN,
  RTNH_F,
  RTPROT,
} from './constants.js';
import { decodeError, invalid, type NetlinkError } from './errors.js';
import { type Family, familyOf, formatAddr, formatAddrAt, parsePrefix } from './ip.js';
import type { Writer } from './writer.js';

/** One next hop of an ECMP route (RTA_MULTIPATH). */
export interface Nexthop {
  gateway?: string;
  /** Outgoing interface index. */
  oif?: number;
  /** 1..256 (rtnh_hops + 1); default 1. */
  weight?: number;
  /** Gateway is on-link even if no address covers it (RTNH_F_ONLINK). */
  onlink?: boolean;
}

/**
 * A route, as given to add/replace/del and as returned by list (then with every header field set).
 * Add defaults: table main (254), protocol boot (3), type unicast, scope universe with a gateway or
 * multipath, else link (as `ip route` does). Delete matches only the fields given: a delete with
 * `protocol` never removes someone else's route.
 */
export interface Route {
  /** Destination prefix: '10.0.0.0/24', 'fd00::/64', '0.0.0.0/0'. A bare address is a host route. */
  dst: string;
  /** Routing table id (any u32; > 255 goes in RTA_TABLE only). */
  table?: number;
  /** rtm_protocol: who owns the route (RTPROT_*, or podnet's own number). */
  protocol?: number;
  /** rtm_scope: 0 universe, 253 link, 254 host. */
  scope?: number;
  type?: RouteType;
  gateway?: string;
  /** Outgoing interface index (RTA_OIF). */
  oif?: number;
  /** RTA_PRIORITY (the `metric` of `ip route`). */
  metric?: number;
  /** Preferred source address (RTA_PREFSRC). */
  prefsrc?: string;
  /** ECMP next hops (RTA_MULTIPATH); exclusive with gateway/oif. */
  multipath?: Nexthop[];
  /** Single-path gateway is on-link (RTNH_F_ONLINK in rtm_flags). */
  onlink?: boolean;
  tos?: number;
}

/** A route read from the kernel: header fields always present. */
export interface RouteInfo extends Route {
  family: Family;
  table: number;
  protocol: number;
  scope: number;
  type: RouteType;
  /** rtm_flags (RTM_F_*, RTNH_F_*). */
  flags: number;
}

/** Filter for route dumps; table/protocol/type/oif are also applied by the kernel (strict checking). */
export interface RouteFilter {
  family?: Family;
  table?: number;
  protocol?: number;
  type?: RouteType;
  oif?: number;
}

function routeTypeNumber(t: RouteType | undefined, field: string): number {
  if (t === undefined) return RTN.UNICAST;
  const n = ROUTE_TYPES.indexOf(t);
  if (n < 0) throw invalid(field, t, `unknown route type (one of ${ROUTE_TYPES.join(', ')})`);
  return n;
}

function checkU32(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw invalid(field, v, 'must be an integer in 0..4294967295');
  }
  return v;
}

function checkU8(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) {
    throw invalid(field, v, 'must be an integer in 0..255');
  }
  return v;
}

/** A short description of a route for error messages: 'route.add 10.0.0.0/24 table 254'. */
export function describeRoute(op: string, r: Route): string {
  let s = `${op} ${r.dst}`;
  if (r.type && r.type !== 'unicast') s = `${op} ${r.type} ${r.dst}`;
  if (r.gateway) s += ` via ${r.gateway}`;
  if (r.oif !== undefined) s += ` oif ${r.oif}`;
  if (r.table !== undefined) s += ` table ${r.table}`;
  if (r.protocol !== undefined) s += ` proto ${r.protocol}`;
  if (r.metric !== undefined) s += ` metric ${r.metric}`;
  return s;
}

export type RouteOp = 'add' | 'replace' | 'append' | 'del';

/**
 * Writes one RTM_NEWROUTE/RTM_DELROUTE. Throws NetlinkError(NL_ERR_INVALID) on bad input, leaving
 * the writer where it was.
 */
export function encodeRoute(w: Writer, op: RouteOp, r: Route, seq: number, ack: boolean): void {
  const where = `route.${op}`;
  if (r === null || typeof r !== 'object') throw invalid(where, r, 'must be a route object');
  const p = parsePrefix(r.dst, `${where}.dst`);
  const family = p.family;
  const del = op === 'del';
  const type = del && r.type === undefined ? RTN.UNSPEC : routeTypeNumber(r.type, `${where}.type`);
  const table = r.table === undefined ? RT_TABLE.MAIN : checkU32(`${where}.table`, r.table);
  const protocol =
    r.protocol === undefined ? (del ? RTPROT.UNSPEC : RTPROT.BOOT) : checkU8(`${where}.protocol`, r.protocol);
  const hasNh = r.gateway !== undefined || (r.multipath !== undefined && r.multipath.length > 0);
  let scope: number;
  if (r.scope !== undefined) scope = checkU8(`${where}.scope`, r.scope);
  else if (del) scope = RT_SCOPE.NOWHERE;
  else if (type === RTN.LOCAL || type === RTN.NAT) scope = RT_SCOPE.HOST;
  else if (type === RTN.BROADCAST || type === RTN.MULTICAST || type === RTN.ANYCAST) scope = RT_SCOPE.LINK;
  else if ((type === RTN.UNICAST || type === RTN.UNSPEC) && !hasNh) scope = RT_SCOPE.LINK;
  else scope = RT_SCOPE.UNIVERSE;
  if (r.gateway !== undefined && r.multipath !== undefined) {
    throw invalid(`${where}.multipath`, r.multipath.length, 'cannot be combined with gateway');
  }
  if (r.gateway !== undefined && familyOf(r.gateway) === undefined) {
    throw invalid(`${where}.gateway`, r.gateway, 'not an IP address');
  }

  let flags = NLM_F.REQUEST | (ack ? NLM_F.ACK : 0);
  if (op === 'add') flags |= NLM_F.CREATE | NLM_F.EXCL;
  else if (op === 'replace') flags |= NLM_F.CREATE | NLM_F.REPLACE;
  else if (op === 'append') flags |= NLM_F.CREATE | NLM_F.APPEND;

  const start = w.off;
  try {
    const m = w.beginMsg(del ? RTM.DELROUTE : RTM.NEWROUTE, flags, seq);
    w.ensure(RTMSG_LEN);
    const b = w.buf;
    const o = w.off;
    b[o] = family === 4 ? AF.INET : AF.INET6;
    b[o + 1] = p.len;
    b[o + 2] = 0;
    b[o + 3] = r.tos === undefined ? 0 : checkU8(`${where}.tos`, r.tos);
    b[o + 4] = table < 256 ? table : RT_TABLE.UNSPEC;
    b[o + 5] = protocol;
    b[o + 6] = scope;
    b[o + 7] = type;
    b.writeUInt32LE(r.onlink ? RTNH_F.ONLINK : 0, o + 8);
    w.off += RTMSG_LEN;
    w.attrU32(RTA.TABLE, table);
    if (p.len > 0) w.attrAddr(RTA.DST, p.addr, `${where}.dst`);
    if (r.gateway !== undefined) w.attrAddr(RTA.GATEWAY, r.gateway, `${where}.gateway`);
    if (r.oif !== undefined) w.attrU32(RTA.OIF, checkU32(`${where}.oif`, r.oif));
    if (r.metric !== undefined) w.attrU32(RTA.PRIORITY, checkU32(`${where}.metric`, r.metric));
    if (r.prefsrc !== undefined) w.attrAddr(RTA.PREFSRC, r.prefsrc, `${where}.prefsrc`);
    if (r.multipath !== undefined && r.multipath.length > 0) {
      const mp = w.beginNest(RTA.MULTIPATH);
      r.multipath.forEach((nh, i) => {
        const f = `${where}.multipath[${i}]`;
        const weight = nh.weight ?? 1;
        if (!Number.isInteger(weight) || weight < 1 || weight > 256)
          throw invalid(`${f}.weight`, weight, 'must be 1..256');
        w.ensure(RTNEXTHOP_LEN);
        const ns = w.off;
        w.buf.writeUInt16LE(0, ns);
        w.buf[ns + 2] = nh.onlink ? RTNH_F.ONLINK : 0;
        w.buf[ns + 3] = weight - 1;
        w.buf.writeInt32LE(nh.oif === undefined ? 0 : checkU32(`${f}.oif`, nh.oif), ns + 4);
        w.off += RTNEXTHOP_LEN;
        if (nh.gateway !== undefined) {
          if (familyOf(nh.gateway) === undefined)
            throw invalid(`${f}.gateway`, nh.gateway, 'not an IP address');
          w.attrAddr(RTA.GATEWAY, nh.gateway, `${f}.gateway`);
        }
        w.buf.writeUInt16LE(w.off - ns, ns);
      });
      w.endNest(mp);
    }
    w.endMsg(m);
  } catch (err) {
    w.off = start;
    throw err;
  }
}

/** Writes an RTM_GETROUTE dump request carrying the kernel-side filter. */
export function encodeRouteDump(w: Writer, filter: RouteFilter, seq: number): void {
  const m = w.beginMsg(RTM.GETROUTE, NLM_F.REQUEST | NLM_F.DUMP, seq);
  w.ensure(RTMSG_LEN);
  const o = w.off;
  w.buf.fill(0, o, o + RTMSG_LEN);
  w.buf[o] = filter.family === undefined ? AF.UNSPEC : filter.family === 4 ? AF.INET : AF.INET6;
  if (filter.protocol !== undefined) w.buf[o + 5] = checkU8('filter.protocol', filter.protocol);
  if (filter.type !== undefined) w.buf[o + 7] = routeTypeNumber(filter.type, 'filter.type');
  w.off += RTMSG_LEN;
  if (filter.table !== undefined) w.attrU32(RTA.TABLE, checkU32('filter.table', filter.table));
  if (filter.oif !== undefined) w.attrU32(RTA.OIF, checkU32('filter.oif', filter.oif));
  w.endMsg(m);
}

function familyOfAf(af: number): Family | undefined {
  if (af === AF.INET) return 4;
  if (af === AF.INET6) return 6;
  return undefined;
}

function addrOf(b: Buffer | undefined, family: Family): string | undefined {
  if (!b) return undefined;
  if (b.length !== (family === 4 ? 4 : 16)) return undefined;
  return formatAddr(b);
}

/** Decodes an RTM_NEWROUTE/RTM_DELROUTE body. Unknown attributes are ignored. */
export function decodeRoute(body: Buffer): RouteInfo | NetlinkError {
  if (body.length < RTMSG_LEN) return decodeError(`truncated rtmsg: ${body.length} of ${RTMSG_LEN} bytes`);
  const family = familyOfAf(body[0]!);
  if (!family) return decodeError(`rtmsg family ${body[0]} is neither AF_INET nor AF_INET6`);
  const dstLen = body[1]!;
  // One pass over the attributes, keeping offsets: no per-attribute views (dumps decode 100k+).
  const alen = family === 4 ? 4 : 16;
  const n = body.length;
  let dstOff = -1;
  let gwOff = -1;
  let prefOff = -1;
  let mpOff = -1;
  let mpEnd = 0;
  let table = body[4]!;
  let oif: number | undefined;
  let prio: number | undefined;
  let off = RTMSG_LEN;
  while (off + 4 <= n) {
    const len = body.readUInt16LE(off);
    const type = body.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < 4 || off + len > n) {
      return decodeError(`bad attribute length ${len} (type ${type}) at offset ${off} of ${n}`);
    }
    const v = off + 4;
    const vlen = len - 4;
    switch (type) {
      case RTA.DST:
        if (vlen === alen) dstOff = v;
        break;
      case RTA.GATEWAY:
        if (vlen === alen) gwOff = v;
        break;
      case RTA.PREFSRC:
        if (vlen === alen) prefOff = v;
        break;
      case RTA.TABLE:
        if (vlen >= 4) table = body.readUInt32LE(v);
        break;
      case RTA.OIF:
        if (vlen >= 4) oif = body.readUInt32LE(v);
        break;
      case RTA.PRIORITY:
        if (vlen >= 4) prio = body.readUInt32LE(v);
        break;
      case RTA.MULTIPATH:
        mpOff = v;
        mpEnd = off + len;
        break;
    }
    off += (len + 3) & ~3;
  }
  if (off < n && n - off < 4 && body.subarray(off).some((x) => x !== 0)) {
    return decodeError(`truncated attribute header at offset ${off} of ${n}`);
  }
  const dstAddr = dstOff < 0 ? (family === 4 ? '0.0.0.0' : '::') : formatAddrAt(body, dstOff, alen);
  const rt: RouteInfo = {
    family,
    dst: `${dstAddr}/${dstLen}`,
    tos: body[3]!,
    table,
    protocol: body[5]!,
    scope: body[6]!,
    type: ROUTE_TYPES[body[7]!] ?? 'unspec',
    flags: body.readUInt32LE(8),
  };
  if (gwOff >= 0) rt.gateway = formatAddrAt(body, gwOff, alen);
  if (oif !== undefined) rt.oif = oif;
  if (prio !== undefined) rt.metric = prio;
  if (prefOff >= 0) rt.prefsrc = formatAddrAt(body, prefOff, alen);
  if (rt.flags & RTNH_F.ONLINK) rt.onlink = true;
  if (mpOff >= 0) {
    const mp = body.subarray(mpOff, mpEnd);
    const hops: Nexthop[] = [];
    let off = 0;
    while (off + RTNEXTHOP_LEN <= mp.length) {
      const len = mp.readUInt16LE(off);
      if (len < RTNEXTHOP_LEN || off + len > mp.length) {
        return decodeError(
          `bad rtnexthop length ${len} at offset ${off} of RTA_MULTIPATH (${mp.length} bytes)`,
        );
      }
      const nh: Nexthop = { weight: mp[off + 3]! + 1 };
      const nhFlags = mp[off + 2]!;
      if (nhFlags & RTNH_F.ONLINK) nh.onlink = true;
      const ifindex = mp.readInt32LE(off + 4);
      if (ifindex) nh.oif = ifindex;
      const err = forEachAttr(mp.subarray(off + RTNEXTHOP_LEN, off + len), (t, v) => {
        if (t === RTA.GATEWAY) {
          const g = addrOf(v, family);
          if (g) nh.gateway = g;
        }
      });
      if (err) return err;
      hops.push(nh);
      off += (len + 3) & ~3;
    }
    rt.multipath = hops;
  }
  return rt;
}

/** True when a decoded route passes a filter (applied client-side too, for older kernels). */
export function routeMatches(r: RouteInfo, f: RouteFilter): boolean {
  if (f.family !== undefined && r.family !== f.family) return false;
  if (f.table !== undefined && r.table !== f.table) return false;
  if (f.protocol !== undefined && r.protocol !== f.protocol) return false;
  if (f.type !== undefined && r.type !== f.type) return false;
  if (f.oif !== undefined) {
    if (r.oif !== f.oif && !(r.multipath ?? []).some((nh) => nh.oif === f.oif)) return false;
  }
  return true;
}
