// Packing many prefixes that share one attribute set into as few UPDATEs as fit in 4096 octets.
import { type CodecContext, encodeAttributes, type PathAttr } from './attributes.js';
import { Writer } from './buffer.js';
import { Afi, AttrFlag, AttrType, HEADER_LEN, MAX_MESSAGE_LEN, MessageType, Safi } from './constants.js';
import { parseIpv6 } from './ip.js';
import { encodePrefix, prefixWireLen } from './nlri.js';

function header(w: Writer): number {
  for (let i = 0; i < 16; i++) w.u8(0xff);
  const lenAt = w.reserve(2);
  w.u8(MessageType.UPDATE);
  return lenAt;
}

/**
 * Builds UPDATEs announcing `prefixes` (one family) with `attrs` (which must not contain
 * MP_REACH/MP_UNREACH; for IPv6 give `nextHops`: global and optional link-local).
 */
export function packAnnounce(
  afi: number,
  prefixes: string[],
  attrs: PathAttr[],
  ctx: CodecContext,
  nextHops: string[] = [],
): Buffer[] {
  return packAnnounceEncoded(afi, prefixes, encodeAnnounceAttrs(afi, attrs, ctx), nextHops);
}

/**
 * The attributes of an announcement of family `afi`, encoded once for many UPDATEs (and, by a
 * caller that keeps them, for many peers): MP_REACH/MP_UNREACH left out, NEXT_HOP only for IPv4.
 */
export function encodeAnnounceAttrs(afi: number, attrs: PathAttr[], ctx: CodecContext): Buffer {
  return encodeAttributes(
    attrs.filter(
      (a) => a.type !== 'mp-reach' && a.type !== 'mp-unreach' && (afi === Afi.IPV4 || a.type !== 'next-hop'),
    ),
    ctx,
  );
}

/** packAnnounce with the attributes already encoded (encodeAnnounceAttrs). */
export function packAnnounceEncoded(
  afi: number,
  prefixes: string[],
  base: Buffer,
  nextHops: string[] = [],
): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i < prefixes.length) {
    const w = new Writer(MAX_MESSAGE_LEN);
    const lenAt = header(w);
    w.u16(0);
    const aAt = w.reserve(2);
    const aStart = w.length;
    w.bytes(base);
    if (afi === Afi.IPV4) {
      w.patchU16(aAt, w.length - aStart);
      while (i < prefixes.length && w.length + prefixWireLen(prefixes[i]!) <= MAX_MESSAGE_LEN)
        encodePrefix(w, prefixes[i++]!);
    } else {
      w.u8(AttrFlag.OPTIONAL | AttrFlag.EXTENDED_LENGTH).u8(AttrType.MP_REACH_NLRI);
      const mpLenAt = w.reserve(2);
      const mpStart = w.length;
      w.u16(afi)
        .u8(Safi.UNICAST)
        .u8(16 * nextHops.length);
      for (const nh of nextHops) {
        const b = parseIpv6(nh);
        if (!b) throw new TypeError(`not an IPv6 next hop: ${JSON.stringify(nh)}`);
        w.bytes(b);
      }
      w.u8(0);
      while (i < prefixes.length && w.length + prefixWireLen(prefixes[i]!) <= MAX_MESSAGE_LEN)
        encodePrefix(w, prefixes[i++]!);
      w.patchU16(mpLenAt, w.length - mpStart);
      w.patchU16(aAt, w.length - aStart);
    }
    w.patchU16(lenAt, w.length);
    out.push(w.toBuffer());
  }
  return out;
}

/** Builds UPDATEs withdrawing `prefixes` (one family). */
export function packWithdraw(afi: number, prefixes: string[]): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i < prefixes.length) {
    const w = new Writer(MAX_MESSAGE_LEN);
    const lenAt = header(w);
    if (afi === Afi.IPV4) {
      const wAt = w.reserve(2);
      while (i < prefixes.length && w.length + prefixWireLen(prefixes[i]!) + 2 <= MAX_MESSAGE_LEN)
        encodePrefix(w, prefixes[i++]!);
      w.patchU16(wAt, w.length - HEADER_LEN - 2);
      w.u16(0);
    } else {
      w.u16(0);
      const aAt = w.reserve(2);
      const aStart = w.length;
      w.u8(AttrFlag.OPTIONAL | AttrFlag.EXTENDED_LENGTH).u8(AttrType.MP_UNREACH_NLRI);
      const mpLenAt = w.reserve(2);
      const mpStart = w.length;
      w.u16(afi).u8(Safi.UNICAST);
      while (i < prefixes.length && w.length + prefixWireLen(prefixes[i]!) <= MAX_MESSAGE_LEN)
        encodePrefix(w, prefixes[i++]!);
      w.patchU16(mpLenAt, w.length - mpStart);
      w.patchU16(aAt, w.length - aStart);
    }
    w.patchU16(lenAt, w.length);
    out.push(w.toBuffer());
  }
  return out;
}
