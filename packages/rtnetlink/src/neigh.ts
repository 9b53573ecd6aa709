// ndmsg: neighbours (linux/neighbour.h, rtnetlink(7)): permanent entries and proxy entries.

import { parseAttrs } from './codec.js';
import { AF, NDA, NDMSG_LEN, NLM_F, NTF, NUD, RTM } from './constants.js';
import { decodeError, invalid, type NetlinkError, requireObject } from './errors.js';
import { type Family, familyOf, formatAddr, formatMac, macBytes } from './ip.js';
import type { Writer } from './writer.js';

export interface NeighbourSpec {
  /** Interface index. */
  index: number;
  /** The neighbour's IP address. */
  dst: string;
  /** Its MAC (omit for proxy entries). */
  lladdr?: string;
  /** NUD_* state; default NUD_PERMANENT (0x80). */
  state?: number;
  /** A proxy entry (NTF_PROXY): the kernel answers ARP/ND for dst on this interface. */
  proxy?: boolean;
  /** Owner protocol (NDA_PROTOCOL, Linux 5.2+), e.g. podnet's route protocol number. */
  protocol?: number;
}

export interface Neighbour {
  family: Family;
  index: number;
  dst: string;
  lladdr?: string;
  /** NUD_* bits. */
  state: number;
  /** NTF_* bits. */
  flags: number;
  proxy: boolean;
  /** NDA_PROTOCOL when the entry carries one. */
  protocol?: number;
}

function checkIndex(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 0x7fff_ffff) {
    throw invalid(field, v, 'must be an interface index (a positive integer)');
  }
  return v;
}

/** add = create or replace (like `ip neigh replace`); del removes. */
export function encodeNeigh(w: Writer, op: 'add' | 'del', n: NeighbourSpec, seq: number, ack = true): void {
  const where = `neigh.${op}`;
  requireObject(where, n, 'an object like { index, dst }');
  const family = familyOf(n.dst);
  if (!family) throw invalid(`${where}.dst`, n.dst, 'not an IP address');
  const index = checkIndex(`${where}.index`, n.index);
  const state = n.state ?? NUD.PERMANENT;
  if (!Number.isInteger(state) || state < 0 || state > 0xffff)
    throw invalid(`${where}.state`, state, 'must be a NUD_* value');
  const lladdr = n.lladdr === undefined ? undefined : macBytes(n.lladdr, `${where}.lladdr`);
  if (n.protocol !== undefined && (!Number.isInteger(n.protocol) || n.protocol < 0 || n.protocol > 255)) {
    throw invalid(`${where}.protocol`, n.protocol, 'must be an integer in 0..255');
  }
  let flags = NLM_F.REQUEST | (ack ? NLM_F.ACK : 0);
  if (op === 'add') flags |= NLM_F.CREATE | NLM_F.REPLACE;
  const m = w.beginMsg(op === 'add' ? RTM.NEWNEIGH : RTM.DELNEIGH, flags, seq);
  w.ensure(NDMSG_LEN);
  const o = w.off;
  w.buf.fill(0, o, o + NDMSG_LEN);
  w.buf[o] = family === 4 ? AF.INET : AF.INET6;
  w.buf.writeInt32LE(index, o + 4);
  w.buf.writeUInt16LE(state, o + 8);
  w.buf[o + 10] = n.proxy ? NTF.PROXY : 0;
  w.off += NDMSG_LEN;
  w.attrAddr(NDA.DST, n.dst, `${where}.dst`);
  if (lladdr) w.attr(NDA.LLADDR, lladdr);
  if (n.protocol !== undefined) w.attrU8(NDA.PROTOCOL, n.protocol);
  w.endMsg(m);
}

/** Dump request; `proxy` dumps the proxy table instead of the neighbour cache. */
export function encodeNeighDump(
  w: Writer,
  family: Family | undefined,
  proxy: boolean,
  index: number | undefined,
  seq: number,
): void {
  const m = w.beginMsg(RTM.GETNEIGH, NLM_F.REQUEST | NLM_F.DUMP, seq);
  w.zeros(NDMSG_LEN);
  w.buf[m + 16] = family === undefined ? AF.UNSPEC : family === 4 ? AF.INET : AF.INET6;
  if (proxy) w.buf[m + 16 + 10] = NTF.PROXY;
  if (index !== undefined) w.attrU32(NDA.IFINDEX, checkIndex('filter.index', index));
  w.endMsg(m);
}

export function decodeNeigh(body: Buffer): Neighbour | NetlinkError {
  if (body.length < NDMSG_LEN) return decodeError(`truncated ndmsg: ${body.length} of ${NDMSG_LEN} bytes`);
  const af = body[0]!;
  if (af !== AF.INET && af !== AF.INET6)
    return decodeError(`ndmsg family ${af} is neither AF_INET nor AF_INET6`);
  const family: Family = af === AF.INET ? 4 : 6;
  const attrs = parseAttrs(body, NDMSG_LEN);
  if (attrs instanceof Error) return attrs;
  const dst = attrs[NDA.DST];
  if (!dst || dst.length !== (family === 4 ? 4 : 16))
    return decodeError('neighbour message without a valid NDA_DST');
  const flags = body[10]!;
  const n: Neighbour = {
    family,
    index: body.readInt32LE(4),
    dst: formatAddr(dst),
    state: body.readUInt16LE(8),
    flags,
    proxy: (flags & NTF.PROXY) !== 0,
  };
  const ll = attrs[NDA.LLADDR];
  if (ll && ll.length > 0) n.lladdr = formatMac(ll);
  const proto = attrs[NDA.PROTOCOL];
  if (proto && proto.length >= 1) n.protocol = proto[0]!;
  return n;
}
