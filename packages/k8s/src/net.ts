// IP and CIDR helpers for the schemas (validation) and for ipam (block math): thin wrappers over
// @podnet/net, podnet's one address parser (strict: no leading zeros, no zones, no whitespace).
// Addresses are held as bigint so IPv4 and IPv6 use the same arithmetic.
import * as net from '@podnet/net';

export type IpFamily = 4 | 6;

export interface ParsedIp {
  family: IpFamily;
  /** The address as an unsigned integer (32 or 128 bits). */
  value: bigint;
}

export interface ParsedCidr {
  family: IpFamily;
  /** The network address (host bits cleared; with `strict`, the input must have had them clear). */
  network: bigint;
  prefixLength: number;
}

/** Parses an IPv4 or IPv6 address; undefined when it is not one. */
export function parseIp(s: string): ParsedIp | undefined {
  const ip = net.parseIp(s);
  return ip && { family: ip.family, value: ip.value };
}

export const familyBits = net.familyBits;

/** Parses `addr/len`. With `strict`, host bits must be zero (a network, not an interface address). */
export function parseCidr(s: string, opts: { strict?: boolean } = {}): ParsedCidr | undefined {
  const c = net.parseCidr(s, { hostBits: opts.strict ? 'reject' : 'clear' });
  return c && { family: c.family, network: c.addr, prefixLength: c.len };
}

/** Formats an address value; IPv6 in the canonical RFC 5952 form. */
export function formatIp(value: bigint, family: IpFamily): string {
  return net.formatIp({ family, value });
}

export function formatCidr(c: ParsedCidr): string {
  return `${formatIp(c.network, c.family)}/${c.prefixLength}`;
}

const toNet = (c: ParsedCidr): net.Cidr => ({ family: c.family, addr: c.network, len: c.prefixLength });

/** Whether `inner` lies entirely inside `outer` (same family). */
export function cidrContains(outer: ParsedCidr, inner: ParsedCidr): boolean {
  return net.cidrContains(toNet(outer), toNet(inner));
}

/** Whether two CIDRs share any address. */
export function cidrsOverlap(a: ParsedCidr, b: ParsedCidr): boolean {
  return net.cidrsOverlap(toNet(a), toNet(b));
}

export function cidrContainsIp(outer: ParsedCidr, ip: ParsedIp): boolean {
  return net.cidrContains(toNet(outer), ip);
}
