// IP address text <-> bytes, and CIDR prefixes. Pure; errors name the field and value.
// Address text goes through @podnet/net, podnet's one (strict) parser: no leading zeros, no
// zones (a zone is an interface, which netlink carries as an ifindex, never in the address).
import * as net from '@podnet/net';
import { invalid } from './errors.js';

export type Family = 4 | 6;

/** Family of an address text, or undefined. */
export function familyOf(addr: string): Family | undefined {
  if (net.parseIpv4Number(addr) !== undefined) return 4;
  return net.parseIp(addr)?.family;
}

/** Writes the address into `out` at `offset`; returns the byte length (4 or 16). */
export function writeAddr(addr: string, out: Buffer, offset: number, field: string): number {
  const v4 = net.parseIpv4Number(addr);
  if (v4 !== undefined) {
    out.writeUInt32BE(v4, offset);
    return 4;
  }
  const r = net.parseIpResult(addr);
  if (!r.ok) throw invalid(field, addr, `not an IP address (${r.reason})`);
  out.set(net.ipToBytes(r.value), offset);
  return 16;
}

export function addrBytes(addr: string, field: string): Buffer {
  const b = Buffer.alloc(16);
  const n = writeAddr(addr, b, 0, field);
  return b.subarray(0, n);
}

/** Formats 4 or 16 bytes as address text (IPv6 in RFC 5952 form, as `ip` prints it). */
export function formatAddr(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const ip = net.ipFromBytes(b);
  return ip ? net.formatIp(ip) : Buffer.from(b).toString('hex');
}

/** Formats the 4 or 16 address bytes at `off` of `buf` without making a view for IPv4. */
export function formatAddrAt(buf: Buffer, off: number, len: number): string {
  if (len === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  return formatAddr(buf.subarray(off, off + len));
}

export interface Prefix {
  family: Family;
  /** The address part in canonical text, host bits as given (an interface address keeps them). */
  addr: string;
  len: number;
}

/** Parses 'a.b.c.d/len', 'x::/len' or a bare address (host prefix). */
export function parsePrefix(text: string, field: string): Prefix {
  if (typeof text !== 'string') throw invalid(field, text, 'must be a CIDR string like 10.0.0.0/24');
  const r = net.parseCidrResult(text, { hostBits: 'keep', bare: true });
  if (!r.ok) {
    const slash = text.indexOf('/');
    const family = slash < 0 ? undefined : net.parseIp(text.slice(0, slash))?.family;
    if (family)
      throw invalid(field, text, `prefix length must be 0..${net.familyBits(family)} (${r.reason})`);
    throw invalid(field, text, `not an IP prefix (${r.reason}; want e.g. 10.0.0.0/24 or fd00::/64)`);
  }
  const c = r.value;
  return { family: c.family, addr: net.formatIp({ family: c.family, value: c.addr }), len: c.len };
}

/** MAC text 'aa:bb:cc:dd:ee:ff' → 6 bytes. */
export function macBytes(mac: string, field: string): Buffer {
  if (typeof mac !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) {
    throw invalid(field, mac, 'not a MAC address (want aa:bb:cc:dd:ee:ff)');
  }
  return Buffer.from(mac.replaceAll(':', ''), 'hex');
}

/** Link-layer address bytes → 'aa:bb:…' (lower case, as `ip` prints it). */
export function formatMac(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) {
    if (i) s += ':';
    s += b[i]!.toString(16).padStart(2, '0');
  }
  return s;
}
