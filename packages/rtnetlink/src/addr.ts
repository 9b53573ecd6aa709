// ifaddrmsg: interface addresses (linux/if_addr.h, rtnetlink(7)).

import { parseAttrs, str, u32 } from './codec.js';
import { AF, IFA, IFA_F, IFADDRMSG_LEN, NLM_F, RT_SCOPE, RTM } from './constants.js';
import { decodeError, invalid, type NetlinkError, requireObject } from './errors.js';
import { type Family, formatAddr, parsePrefix } from './ip.js';
import type { Writer } from './writer.js';

/** An address to add or delete. */
export interface AddressSpec {
  /** Interface index. */
  index: number;
  /** 'ip/len' ('10.0.0.1/32', 'fd00::1/64'); a bare address means a host prefix. */
  address: string;
  /** Point-to-point peer (IFA_ADDRESS when it differs from the local address). */
  peer?: string;
  label?: string;
  /** Default universe (0); 253 link, 254 host. */
  scope?: number;
  /** Skip duplicate address detection (IPv6). */
  nodad?: boolean;
  /** Do not add the prefix route. */
  noprefixroute?: boolean;
  /** Replace an existing address instead of failing with EEXIST. */
  replace?: boolean;
}

/** An address read from the kernel. */
export interface Address {
  family: Family;
  index: number;
  /** 'ip/len' of the local address. */
  address: string;
  peer?: string;
  label?: string;
  scope: number;
  /** IFA_F_* (from IFA_FLAGS when present). */
  flags: number;
  broadcast?: string;
}

function checkIndex(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 0x7fff_ffff) {
    throw invalid(field, v, 'must be an interface index (a positive integer)');
  }
  return v;
}

export function encodeAddr(w: Writer, op: 'add' | 'del', a: AddressSpec, seq: number, ack = true): void {
  const where = `addr.${op}`;
  requireObject(where, a, 'an object like { index, address }');
  const p = parsePrefix(a.address, `${where}.address`);
  const index = checkIndex(`${where}.index`, a.index);
  let flags = NLM_F.REQUEST | (ack ? NLM_F.ACK : 0);
  if (op === 'add') flags |= NLM_F.CREATE | (a.replace ? NLM_F.REPLACE : NLM_F.EXCL);
  const start = w.off;
  try {
    const m = w.beginMsg(op === 'add' ? RTM.NEWADDR : RTM.DELADDR, flags, seq);
    w.ensure(IFADDRMSG_LEN);
    const o = w.off;
    let ifaFlags = 0;
    if (a.nodad) ifaFlags |= IFA_F.NODAD;
    if (a.noprefixroute) ifaFlags |= IFA_F.NOPREFIXROUTE;
    w.buf[o] = p.family === 4 ? AF.INET : AF.INET6;
    w.buf[o + 1] = p.len;
    w.buf[o + 2] = ifaFlags & 0xff;
    w.buf[o + 3] = a.scope ?? RT_SCOPE.UNIVERSE;
    w.buf.writeUInt32LE(index, o + 4);
    w.off += IFADDRMSG_LEN;
    w.attrAddr(IFA.LOCAL, p.addr, `${where}.address`);
    w.attrAddr(IFA.ADDRESS, a.peer ?? p.addr, `${where}.peer`);
    if (a.label !== undefined) w.attrStr(IFA.LABEL, a.label);
    if (ifaFlags > 0xff) w.attrU32(IFA.FLAGS, ifaFlags);
    w.endMsg(m);
  } catch (err) {
    w.off = start;
    throw err;
  }
}

export function encodeAddrDump(w: Writer, family: Family | undefined, seq: number): void {
  const m = w.beginMsg(RTM.GETADDR, NLM_F.REQUEST | NLM_F.DUMP, seq);
  w.zeros(IFADDRMSG_LEN);
  w.buf[m + 16] = family === undefined ? AF.UNSPEC : family === 4 ? AF.INET : AF.INET6;
  w.endMsg(m);
}

export function decodeAddr(body: Buffer): Address | NetlinkError {
  if (body.length < IFADDRMSG_LEN)
    return decodeError(`truncated ifaddrmsg: ${body.length} of ${IFADDRMSG_LEN} bytes`);
  const af = body[0]!;
  if (af !== AF.INET && af !== AF.INET6)
    return decodeError(`ifaddrmsg family ${af} is neither AF_INET nor AF_INET6`);
  const family: Family = af === AF.INET ? 4 : 6;
  const attrs = parseAttrs(body, IFADDRMSG_LEN);
  if (attrs instanceof Error) return attrs;
  const alen = family === 4 ? 4 : 16;
  const ok = (b: Buffer | undefined) => (b && b.length === alen ? formatAddr(b) : undefined);
  const local = ok(attrs[IFA.LOCAL]);
  const address = ok(attrs[IFA.ADDRESS]);
  const mine = local ?? address;
  if (!mine) return decodeError('address message without IFA_LOCAL or IFA_ADDRESS');
  const out: Address = {
    family,
    index: body.readUInt32LE(4),
    address: `${mine}/${body[1]}`,
    scope: body[3]!,
    flags: u32(attrs[IFA.FLAGS]) ?? body[2]!,
  };
  if (local && address && local !== address) out.peer = address;
  const label = str(attrs[IFA.LABEL]);
  if (label) out.label = label;
  const brd = ok(attrs[IFA.BROADCAST]);
  if (brd) out.broadcast = brd;
  return out;
}
