// The ARP frame codec (RFC 826 over Ethernet II): pure decode and encode, no I/O.
//
//  0               6               12      14
//  | dst MAC       | src MAC       | 0x0806 | ARP payload (28 bytes for Ethernet/IPv4):
//  htype(2)=1 ptype(2)=0x0800 hlen(1)=6 plen(1)=4 oper(2) sha(6) spa(4) tha(6) tpa(4)
//
// Decoding never throws: a frame that is not well-formed Ethernet/IPv4 ARP comes back as a
// `malformed` result naming what was wrong, so the responder counts it and drops it.
import { parseIpv4Number } from '@podnet/net';

/** EtherType of ARP (IEEE 802 numbers; RFC 826). */
export const ETH_P_ARP = 0x0806;
/** EtherType of IPv4, the ARP protocol type for IPv4 addresses. */
export const ETH_P_IP = 0x0800;
/** ARP hardware type Ethernet (RFC 826, IANA "Hardware Types" 1). */
export const ARPHRD_ETHER = 1;
/** ARP opcodes (RFC 826). */
export const ARPOP = { request: 1, reply: 2 } as const;
export const ARPOP_NAMES: Record<number, string> = { 1: 'request', 2: 'reply' };

export const ETH_HLEN = 14;
export const ARP_ETH_IPV4_LEN = 28;
/** Ethernet header + ARP payload, without padding. */
export const ARP_FRAME_LEN = ETH_HLEN + ARP_ETH_IPV4_LEN;
/** Minimum Ethernet frame without the FCS; shorter frames are padded with zeros. */
export const ETH_ZLEN = 60;

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';
export const ZERO_MAC = '00:00:00:00:00:00';

export interface ArpPacket {
  ethDst: string;
  ethSrc: string;
  /** ARPOP request (1), reply (2) or any other code a peer sent. */
  op: number;
  /** Sender hardware and protocol addresses. */
  sha: string;
  spa: string;
  /** Target hardware and protocol addresses. */
  tha: string;
  tpa: string;
}

export type MalformedReason = 'short' | 'ethertype' | 'htype' | 'ptype' | 'hlen' | 'plen';
export const MALFORMED_REASONS: readonly MalformedReason[] = [
  'short',
  'ethertype',
  'htype',
  'ptype',
  'hlen',
  'plen',
];

export type DecodeResult =
  | { type: 'arp'; packet: ArpPacket }
  | { type: 'malformed'; reason: MalformedReason; detail: string };

const hex2 = (n: number) => n.toString(16).padStart(2, '0');

export function macToString(buf: Buffer, off: number): string {
  return `${hex2(buf[off]!)}:${hex2(buf[off + 1]!)}:${hex2(buf[off + 2]!)}:${hex2(buf[off + 3]!)}:${hex2(buf[off + 4]!)}:${hex2(buf[off + 5]!)}`;
}

export function ipv4ToString(buf: Buffer, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export const isMac = (s: string) => MAC_RE.test(s);
/** Strict dotted-quad IPv4 (@podnet/net, podnet's one address parser). */
export const isIPv4 = (s: string) => parseIpv4Number(s) !== undefined;

/** Canonical (lower-case) MAC text, or undefined when `s` is not `xx:xx:xx:xx:xx:xx`. */
export function normalizeMac(s: string): string | undefined {
  return isMac(s) ? s.toLowerCase() : undefined;
}

function writeMac(buf: Buffer, off: number, mac: string, field: string): void {
  if (!isMac(mac)) throw new TypeError(`${field}: "${mac}" is not a MAC address`);
  for (let i = 0; i < 6; i++) buf[off + i] = Number.parseInt(mac.slice(i * 3, i * 3 + 2), 16);
}

function writeIPv4(buf: Buffer, off: number, ip: string, field: string): void {
  if (!isIPv4(ip)) throw new TypeError(`${field}: "${ip}" is not an IPv4 address`);
  const parts = ip.split('.');
  for (let i = 0; i < 4; i++) buf[off + i] = Number(parts[i]);
}

/**
 * Checks that a frame is well-formed Ethernet/IPv4 ARP (length, ethertype, htype, ptype, hlen,
 * plen). Returns what is wrong, or undefined when it is fine.
 */
export function checkArpFrame(frame: Buffer): { reason: MalformedReason; detail: string } | undefined {
  if (frame.length < ARP_FRAME_LEN)
    return { reason: 'short', detail: `${frame.length} bytes, need ${ARP_FRAME_LEN}` };
  const ethertype = frame.readUInt16BE(12);
  if (ethertype !== ETH_P_ARP)
    return { reason: 'ethertype', detail: `ethertype 0x${ethertype.toString(16)}` };
  const htype = frame.readUInt16BE(14);
  if (htype !== ARPHRD_ETHER) return { reason: 'htype', detail: `hardware type ${htype}` };
  const ptype = frame.readUInt16BE(16);
  if (ptype !== ETH_P_IP) return { reason: 'ptype', detail: `protocol type 0x${ptype.toString(16)}` };
  if (frame[18] !== 6) return { reason: 'hlen', detail: `hardware length ${frame[18]}` };
  if (frame[19] !== 4) return { reason: 'plen', detail: `protocol length ${frame[19]}` };
  return undefined;
}

/** Decodes an Ethernet frame holding an Ethernet/IPv4 ARP packet. Trailing padding is ignored. */
export function decodeArpFrame(frame: Buffer): DecodeResult {
  const bad = checkArpFrame(frame);
  if (bad) return { type: 'malformed', ...bad };
  return {
    type: 'arp',
    packet: {
      ethDst: macToString(frame, 0),
      ethSrc: macToString(frame, 6),
      op: frame.readUInt16BE(20),
      sha: macToString(frame, 22),
      spa: ipv4ToString(frame, 28),
      tha: macToString(frame, 32),
      tpa: ipv4ToString(frame, 38),
    },
  };
}

/** Encodes an Ethernet/IPv4 ARP frame, zero-padded to the 60-byte Ethernet minimum. */
export function encodeArpFrame(p: ArpPacket): Buffer {
  const buf = Buffer.alloc(ETH_ZLEN);
  writeMac(buf, 0, p.ethDst, 'ethDst');
  writeMac(buf, 6, p.ethSrc, 'ethSrc');
  buf.writeUInt16BE(ETH_P_ARP, 12);
  buf.writeUInt16BE(ARPHRD_ETHER, 14);
  buf.writeUInt16BE(ETH_P_IP, 16);
  buf[18] = 6;
  buf[19] = 4;
  buf.writeUInt16BE(p.op, 20);
  writeMac(buf, 22, p.sha, 'sha');
  writeIPv4(buf, 28, p.spa, 'spa');
  writeMac(buf, 32, p.tha, 'tha');
  writeIPv4(buf, 38, p.tpa, 'tpa');
  return buf;
}
