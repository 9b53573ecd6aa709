// ifinfomsg: links (linux/if_link.h, rtnetlink(7)): dump/get, veth creation (peer in another
// namespace via IFLA_NET_NS_FD), set up/down, MTU, MAC, rename, move, delete.

import { parseAttrs, str, u8, u32 } from './codec.js';
import { AF, IFF, IFINFOMSG_LEN, IFLA, IFLA_INFO, NLM_F, OPERSTATES, RTM, VETH_INFO } from './constants.js';
import { decodeError, invalid, type NetlinkError, requireObject } from './errors.js';
import { formatMac, macBytes } from './ip.js';
import type { Writer } from './writer.js';

/** A link read from the kernel. */
export interface Link {
  index: number;
  name: string;
  /** ARPHRD_* (1 = Ethernet, 772 = loopback). */
  linkType: number;
  /** ifi_flags (IFF_*). */
  flags: number;
  /** IFF_UP is set (administratively up). */
  up: boolean;
  mtu?: number;
  mac?: string;
  /** IFLA_INFO_KIND: 'veth', 'bridge', … */
  kind?: string;
  operstate?: string;
  master?: number;
  /** IFLA_LINK: for a veth, the peer's ifindex (in linkNetnsId's namespace when set). */
  link?: number;
  linkNetnsId?: number;
  txqlen?: number;
}

/** Identifies an existing link: by index (preferred) or by name. */
export type LinkRef = { index: number } | { name: string };

export interface VethOptions {
  name: string;
  peerName: string;
  /** fd of the namespace for the peer (fs.openSync('/var/run/netns/X', 'r')). */
  peerNetnsFd?: number;
  /** fd of the namespace for the first end (default: the client's namespace). */
  netnsFd?: number;
  mtu?: number;
  mac?: string;
  peerMac?: string;
}

export interface LinkChange {
  up?: boolean;
  mtu?: number;
  mac?: string;
  /** New name (rename). The link must be down for the kernel to accept it. */
  name?: string;
  /** Move into the namespace of this fd. */
  netnsFd?: number;
}

const IFNAMSIZ = 16;

function checkName(field: string, name: unknown): string {
  if (
    typeof name !== 'string' ||
    name.length === 0 ||
    Buffer.byteLength(name) >= IFNAMSIZ ||
    /[\s/:]/.test(name)
  ) {
    throw invalid(field, name, 'must be an interface name of 1..15 bytes without spaces, "/" or ":"');
  }
  return name;
}

function checkInt(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalid(field, v, `must be an integer in ${min}..${max}`);
  }
  return v;
}

function ifinfomsg(w: Writer, index: number, flags: number, change: number): void {
  w.ensure(IFINFOMSG_LEN);
  const o = w.off;
  w.buf.fill(0, o, o + IFINFOMSG_LEN);
  w.buf[o] = AF.UNSPEC;
  w.buf.writeInt32LE(index, o + 4);
  w.buf.writeUInt32LE(flags >>> 0, o + 8);
  w.buf.writeUInt32LE(change >>> 0, o + 12);
  w.off += IFINFOMSG_LEN;
}

function withRollback(w: Writer, fn: () => void): void {
  const start = w.off;
  try {
    fn();
  } catch (err) {
    w.off = start;
    throw err;
  }
}

export function encodeLinkDump(w: Writer, seq: number): void {
  const m = w.beginMsg(RTM.GETLINK, NLM_F.REQUEST | NLM_F.DUMP, seq);
  ifinfomsg(w, 0, 0, 0);
  w.endMsg(m);
}

export function encodeLinkGet(w: Writer, ref: LinkRef, seq: number): void {
  requireObject('link', ref, '{ index } or { name }');
  withRollback(w, () => {
    const m = w.beginMsg(RTM.GETLINK, NLM_F.REQUEST, seq);
    if ('index' in ref) {
      ifinfomsg(w, checkInt('link.index', ref.index, 1, 0x7fff_ffff), 0, 0);
    } else {
      ifinfomsg(w, 0, 0, 0);
      w.attrStr(IFLA.IFNAME, checkName('link.name', ref.name));
    }
    w.endMsg(m);
  });
}

export function encodeVeth(w: Writer, o: VethOptions, seq: number): void {
  requireObject('veth', o, 'an object with name and peerName');
  withRollback(w, () => {
    const m = w.beginMsg(RTM.NEWLINK, NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.EXCL, seq);
    ifinfomsg(w, 0, 0, 0);
    w.attrStr(IFLA.IFNAME, checkName('veth.name', o.name));
    if (o.mtu !== undefined) w.attrU32(IFLA.MTU, checkInt('veth.mtu', o.mtu, 68, 65535));
    if (o.mac !== undefined) w.attr(IFLA.ADDRESS, macBytes(o.mac, 'veth.mac'));
    if (o.netnsFd !== undefined)
      w.attrU32(IFLA.NET_NS_FD, checkInt('veth.netnsFd', o.netnsFd, 0, 0x7fff_ffff));
    const li = w.beginNest(IFLA.LINKINFO);
    w.attrStr(IFLA_INFO.KIND, 'veth');
    const data = w.beginNest(IFLA_INFO.DATA);
    const peer = w.beginNest(VETH_INFO.PEER);
    ifinfomsg(w, 0, 0, 0);
    w.attrStr(IFLA.IFNAME, checkName('veth.peerName', o.peerName));
    if (o.mtu !== undefined) w.attrU32(IFLA.MTU, o.mtu);
    if (o.peerMac !== undefined) w.attr(IFLA.ADDRESS, macBytes(o.peerMac, 'veth.peerMac'));
    if (o.peerNetnsFd !== undefined) {
      w.attrU32(IFLA.NET_NS_FD, checkInt('veth.peerNetnsFd', o.peerNetnsFd, 0, 0x7fff_ffff));
    }
    w.endNest(peer);
    w.endNest(data);
    w.endNest(li);
    w.endMsg(m);
  });
}

/** RTM_NEWLINK on an existing link (no NLM_F_CREATE): changes only what is given. */
export function encodeLinkSet(w: Writer, index: number, c: LinkChange, seq: number, ack = true): void {
  requireObject('link.change', c, 'an object like { up, mtu, mac, name }');
  withRollback(w, () => {
    const m = w.beginMsg(RTM.NEWLINK, NLM_F.REQUEST | (ack ? NLM_F.ACK : 0), seq);
    const change = c.up === undefined ? 0 : IFF.UP;
    ifinfomsg(w, checkInt('link.index', index, 1, 0x7fff_ffff), c.up ? IFF.UP : 0, change);
    if (c.name !== undefined) w.attrStr(IFLA.IFNAME, checkName('link.name', c.name));
    if (c.mtu !== undefined) w.attrU32(IFLA.MTU, checkInt('link.mtu', c.mtu, 68, 65535));
    if (c.mac !== undefined) w.attr(IFLA.ADDRESS, macBytes(c.mac, 'link.mac'));
    if (c.netnsFd !== undefined)
      w.attrU32(IFLA.NET_NS_FD, checkInt('link.netnsFd', c.netnsFd, 0, 0x7fff_ffff));
    w.endMsg(m);
  });
}

export function encodeLinkDel(w: Writer, ref: LinkRef, seq: number, ack = true): void {
  requireObject('link', ref, '{ index } or { name }');
  withRollback(w, () => {
    const m = w.beginMsg(RTM.DELLINK, NLM_F.REQUEST | (ack ? NLM_F.ACK : 0), seq);
    if ('index' in ref) {
      ifinfomsg(w, checkInt('link.index', ref.index, 1, 0x7fff_ffff), 0, 0);
    } else {
      ifinfomsg(w, 0, 0, 0);
      w.attrStr(IFLA.IFNAME, checkName('link.name', ref.name));
    }
    w.endMsg(m);
  });
}

/** Decodes an RTM_NEWLINK/RTM_DELLINK body. */
export function decodeLink(body: Buffer): Link | NetlinkError {
  if (body.length < IFINFOMSG_LEN)
    return decodeError(`truncated ifinfomsg: ${body.length} of ${IFINFOMSG_LEN} bytes`);
  const attrs = parseAttrs(body, IFINFOMSG_LEN);
  if (attrs instanceof Error) return attrs;
  const flags = body.readUInt32LE(8);
  const link: Link = {
    index: body.readInt32LE(4),
    name: str(attrs[IFLA.IFNAME]) ?? '',
    linkType: body.readUInt16LE(2),
    flags,
    up: (flags & IFF.UP) !== 0,
  };
  const mtu = u32(attrs[IFLA.MTU]);
  if (mtu !== undefined) link.mtu = mtu;
  const addr = attrs[IFLA.ADDRESS];
  if (addr && addr.length > 0) link.mac = formatMac(addr);
  const op = u8(attrs[IFLA.OPERSTATE]);
  if (op !== undefined) link.operstate = OPERSTATES[op] ?? String(op);
  const master = u32(attrs[IFLA.MASTER]);
  if (master !== undefined) link.master = master;
  const lnk = u32(attrs[IFLA.LINK]);
  if (lnk !== undefined) link.link = lnk;
  const nsid = attrs[IFLA.LINK_NETNSID];
  if (nsid && nsid.length >= 4) link.linkNetnsId = nsid.readInt32LE(0);
  const txq = u32(attrs[IFLA.TXQLEN]);
  if (txq !== undefined) link.txqlen = txq;
  const info = attrs[IFLA.LINKINFO];
  if (info) {
    const ia = parseAttrs(info);
    if (ia instanceof Error) return ia;
    const kind = str(ia[IFLA_INFO.KIND]);
    if (kind) link.kind = kind;
  }
  return link;
}
