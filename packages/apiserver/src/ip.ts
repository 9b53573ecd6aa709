// IP addresses as numbers, for the Service IP and node port allocators. This package has no
// dependencies (its image ships only its dist/), hence node:net and not @podnet/net.
import { BlockList, isIP } from 'node:net';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** The network address (host bits cleared). */
  base: bigint;
  len: number;
  text: string;
}

const bits = (f: Family) => (f === 4 ? 32 : 128);

/** The family of an IP address as Go's net.ParseIP reads it (no zone, no brackets), or 0. */
export function ipFamily(text: string): Family | 0 {
  if (text.includes('%')) return 0;
  return isIP(text) as Family | 0;
}

/** The address as a number; `text` must be a valid address (see ipFamily). */
export function ipToBig(text: string): bigint {
  if (ipFamily(text) === 4) return text.split('.').reduce((n, o) => (n << 8n) | BigInt(Number(o)), 0n);
  let s = text;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = ipToBig(v4[1]!);
    s = `${s.slice(0, v4.index)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = s.split('::');
  const hs = head ? head.split(':') : [];
  const ts = tail ? tail.split(':') : [];
  const groups = tail === undefined ? hs : [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts];
  return groups.reduce((n, g) => (n << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

/** The canonical text of an address (RFC 5952 for IPv6). */
export function bigToIp(n: bigint, family: Family): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
  const g = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** A CIDR (host bits allowed, and cleared), or why it is not one. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  if (slash < 0) return 'no prefix length';
  const addr = text.slice(0, slash);
  const family = ipFamily(addr);
  if (family === 0) return `${JSON.stringify(addr)} is not an IP address`;
  const lenText = text.slice(slash + 1);
  const len = Number(lenText);
  if (!/^(0|[1-9][0-9]*)$/.test(lenText) || len > bits(family))
    return `${JSON.stringify(lenText)} is not a prefix length`;
  const host = (1n << BigInt(bits(family) - len)) - 1n;
  const base = ipToBig(addr) & ~host;
  return { family, base, len, text: `${bigToIp(base, family)}/${len}` };
}

export const cidrSize = (c: Cidr) => 1n << BigInt(bits(c.family) - c.len);

export function cidrContains(c: Cidr, ip: string): boolean {
  const f = ipFamily(ip);
  if (f !== c.family) return false;
  const n = ipToBig(ip);
  return n >= c.base && n < c.base + cidrSize(c);
}

const special = new BlockList();
special.addSubnet('127.0.0.0', 8, 'ipv4');
special.addAddress('::1', 'ipv6');
const linkLocal = new BlockList();
linkLocal.addSubnet('169.254.0.0', 16, 'ipv4');
linkLocal.addSubnet('fe80::', 10, 'ipv6');
const llMulticast = new BlockList();
llMulticast.addSubnet('224.0.0.0', 24, 'ipv4');
llMulticast.addSubnet('ff02::', 16, 'ipv6');

/** ValidateNonSpecialIP: why `ip` (a valid address) may not be an external or endpoint address. */
export function specialIpProblem(ip: string): string | undefined {
  const f = ipFamily(ip);
  const type = f === 4 ? 'ipv4' : 'ipv6';
  if (ipToBig(ip) === 0n) return `may not be unspecified (${f === 4 ? '0.0.0.0' : '::'})`;
  if (special.check(ip, type)) return 'may not be in the loopback range (127.0.0.0/8, ::1/128)';
  if (linkLocal.check(ip, type)) return 'may not be in the link-local range (169.254.0.0/16, fe80::/10)';
  if (llMulticast.check(ip, type))
    return 'may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)';
  return undefined;
}
