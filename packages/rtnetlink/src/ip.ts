// IP address text <-> bytes, and CIDR prefixes. Pure; errors name the field and value.
import { isIPv4, isIPv6 } from 'node:net';
import { invalid } from './errors.js';

export type Family = 4 | 6;

/** Family of an address text, or undefined. */
export function familyOf(addr: string): Family | undefined {
  if (isIPv4(addr)) return 4;
  if (isIPv6(addr)) return 6;
  return undefined;
}

/** Writes the address into `out` at `offset`; returns the byte length (4 or 16). */
export function writeAddr(addr: string, out: Buffer, offset: number, field: string): number {
  if (isIPv4(addr)) {
    const parts = addr.split('.');
    for (let i = 0; i < 4; i++) out[offset + i] = Number(parts[i]);
    return 4;
  }
  if (!isIPv6(addr)) throw invalid(field, addr, 'not an IP address');
  let text = addr;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const p = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((p[0]! << 8) | p[1]!).toString(16)}:${((p[2]! << 8) | p[3]!).toString(16)}`;
  }
  const dbl = text.indexOf('::');
  let groups: string[];
  if (dbl >= 0) {
    const head = text.slice(0, dbl).split(':').filter(Boolean);
    const rest = text
      .slice(dbl + 2)
      .split(':')
      .filter(Boolean);
    groups = [...head, ...new Array<string>(8 - head.length - rest.length).fill('0'), ...rest];
  } else {
    groups = text.split(':');
  }
  for (let i = 0; i < 8; i++) out.writeUInt16BE(Number.parseInt(groups[i] ?? '0', 16), offset + 2 * i);
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
  if (b.length !== 16) return Buffer.from(b).toString('hex');
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  // IPv4-mapped
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Formats the 4 or 16 address bytes at `off` of `buf` without making a view for IPv4. */
export function formatAddrAt(buf: Buffer, off: number, len: number): string {
  if (len === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  return formatAddr(buf.subarray(off, off + len));
}

export interface Prefix {
  family: Family;
  addr: string;
  len: number;
}

/** Parses 'a.b.c.d/len', 'x::/len' or a bare address (host prefix). */
export function parsePrefix(text: string, field: string): Prefix {
  if (typeof text !== 'string') throw invalid(field, text, 'must be a CIDR string like 10.0.0.0/24');
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const family = familyOf(addr);
  if (!family) throw invalid(field, text, 'not an IP prefix (want e.g. 10.0.0.0/24 or fd00::/64)');
  const max = family === 4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    len = Number(lenText);
    if (!/^\d{1,3}$/.test(lenText) || len > max)
      throw invalid(field, text, `prefix length must be 0..${max}`);
  }
  return { family, addr, len };
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
