// Small IPv4/IPv6 helpers: parse, format, containment. Pure. Thin wrappers over @podnet/net,
// podnet's one (strict) address parser: no leading zeros, no zones, no whitespace.
import {
  formatIpv4,
  cidrContains as netCidrContains,
  compareIp as netCompareIp,
  formatCidr as netFormatCidr,
  formatIp as netFormatIp,
  parseCidr as netParseCidr,
  parseAddrPort,
  parseIp,
  parseIpv4Number,
} from '@podnet/net';

export interface Cidr {
  family: 4 | 6;
  /** The network address as a bigint (host bits cleared). */
  net: bigint;
  prefixLen: number;
  /** Canonical text, e.g. 10.0.0.0/26. */
  text: string;
}

export function isIPv4(s: string): boolean {
  return parseIpv4Number(s) !== undefined;
}

export function isIPv6(s: string): boolean {
  return parseIp(s)?.family === 6;
}

/** IPv4 text to an unsigned 32-bit number; NaN when it is not an IPv4 address. */
export function ipv4ToInt(s: string): number {
  return parseIpv4Number(s) ?? Number.NaN;
}

export function intToIPv4(n: number): string {
  return formatIpv4(n);
}

/** The numeric value of an address (IPv4 or IPv6), or undefined when it is not one. */
export function ipValue(s: string): { family: 4 | 6; value: bigint } | undefined {
  const ip = parseIp(s);
  return ip && { family: ip.family, value: ip.value };
}

export function formatIp(family: 4 | 6, value: bigint): string {
  return netFormatIp({ family, value });
}

/** Parses `a.b.c.d/n` (or a bare address as a host route), host bits cleared; undefined when invalid. */
export function parseCidr(s: string): Cidr | undefined {
  const c = netParseCidr(s, { hostBits: 'clear', bare: true });
  return c && { family: c.family, net: c.addr, prefixLen: c.len, text: netFormatCidr(c) };
}

/** True when `inner` (an address or CIDR) lies inside `outer`. */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return netCidrContains(
    { family: outer.family, addr: outer.net, len: outer.prefixLen },
    { family: inner.family, addr: inner.net, len: inner.prefixLen },
  );
}

/** Host route text for an address: 10.0.0.5 → 10.0.0.5/32, fd00::5 → fd00::5/128. */
export function hostCidr(ip: string): string | undefined {
  const c = parseCidr(ip);
  return c && (c.family === 4 ? c.prefixLen === 32 : c.prefixLen === 128) ? c.text : undefined;
}

/** Strips a /prefix from `10.0.0.1/24`. */
export function addressOf(s: string): string {
  return s.split('/')[0]!;
}

/** Orders addresses numerically (IPv4 before IPv6). */
export function compareIp(a: string, b: string): number {
  const x = parseIp(addressOf(a));
  const y = parseIp(addressOf(b));
  if (!x || !y) return a < b ? -1 : a > b ? 1 : 0;
  return netCompareIp(x, y);
}

/** Splits `a.b.c.d`, `a.b.c.d:port`, `[v6]:port` or a bare v6 address; the address in canonical text. */
export function splitAddrPort(text: string): { address: string; port?: number } | undefined {
  const p = parseAddrPort(text, { port: 'optional' });
  if (!p) return undefined;
  const address = netFormatIp(p.ip);
  return p.port === undefined ? { address } : { address, port: p.port };
}
