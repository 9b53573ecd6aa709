// IP address and prefix helpers: parse, canonicalise (RFC 5952 for IPv6) and compare, with no I/O.
// Kernel dumps and user input spell the same prefix in several ways (`10.0.0.1` vs `10.0.0.1/32`,
// `fd00:0::1` vs `fd00::1`, host bits set); every key in this package goes through `parsePrefix`.
// Thin wrappers over @podnet/net, podnet's one (strict) address parser.
import * as net from '@podnet/net';
import { RoutesError } from './errors.js';

export type Family = 4 | 6;

export interface Prefix {
  family: Family;
  /** The network address as an unsigned integer (host bits cleared). */
  bits: bigint;
  len: number;
  /** Canonical text, e.g. `10.65.0.0/26` or `fd00:10::/122`. */
  text: string;
}

export function formatAddr(family: Family, v: bigint): string {
  return net.formatIp({ family, value: v });
}

/** Parses an address (no prefix length). Returns undefined when it is not an IPv4 or IPv6 address. */
export function parseAddr(s: string): { family: Family; bits: bigint; text: string } | undefined {
  const ip = net.parseIp(s);
  return ip && { family: ip.family, bits: ip.value, text: net.formatIp(ip) };
}

/**
 * Parses `addr/len` (or a bare address as a host prefix) and clears host bits.
 * Throws ROUTES_ERR_INVALID naming `field`, the value and why when it is not a prefix.
 */
export function parsePrefix(s: string, field = 'prefix'): Prefix {
  const r = net.parseCidrResult(s, { hostBits: 'clear', bare: true });
  if (!r.ok)
    throw new RoutesError(
      'ROUTES_ERR_INVALID',
      `${field}: "${s}" is not an IPv4 or IPv6 prefix (${r.reason})`,
    );
  return toPrefix(r.value);
}

export function tryParsePrefix(s: string): Prefix | undefined {
  const c = net.parseCidr(s, { hostBits: 'clear', bare: true });
  return c && toPrefix(c);
}

function toPrefix(c: net.Cidr): Prefix {
  return { family: c.family, bits: c.addr, len: c.len, text: net.formatCidr(c) };
}

/** True when `inner` lies within `outer` (same family, at least as long). */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  return net.cidrContains(
    { family: outer.family, addr: outer.bits, len: outer.len },
    { family: inner.family, addr: inner.bits, len: inner.len },
  );
}

/** Canonical text of an address, or throws ROUTES_ERR_INVALID naming the field. */
export function canonicalAddr(s: string, field = 'address'): string {
  const r = net.parseIpResult(s);
  if (!r.ok)
    throw new RoutesError(
      'ROUTES_ERR_INVALID',
      `${field}: "${s}" is not an IPv4 or IPv6 address (${r.reason})`,
    );
  return net.formatIp(r.value);
}
