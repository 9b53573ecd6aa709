// IP address and prefix helpers: parse, canonicalise (RFC 5952 for IPv6) and compare, with no I/O.
// Kernel dumps and user input spell the same prefix in several ways (`10.0.0.1` vs `10.0.0.1/32`,
// `fd00:0::1` vs `fd00::1`, host bits set); every key in this package goes through `parsePrefix`.
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

/** Parses dotted-quad IPv4 to an unsigned 32-bit number (plain numbers: this is a hot path). */
function parseV4Number(s: string): number | undefined {
  let v = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return undefined;
    } else if (c === 46) {
      if (digits === 0 || ++dots > 3) return undefined;
      v = v * 256 + octet;
      octet = 0;
      digits = 0;
    } else {
      return undefined;
    }
  }
  if (dots !== 3 || digits === 0) return undefined;
  return v * 256 + octet;
}

const formatV4 = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

function parseV4(s: string): bigint | undefined {
  const n = parseV4Number(s);
  return n === undefined ? undefined : BigInt(n);
}

function parseV6(s: string): bigint | undefined {
  if (s.includes('%')) return undefined;
  let head = s;
  let tailV4: bigint | undefined;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    tailV4 = parseV4(s.slice(lastColon + 1));
    if (tailV4 === undefined) return undefined;
    head = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const dbl = head.split('::');
  if (dbl.length > 2) return undefined;
  const group = (g: string) => (g === '' ? [] : g.split(':'));
  const left = group(dbl[0] ?? '');
  const right = dbl.length === 2 ? group(dbl[1] ?? '') : [];
  const missing = 8 - left.length - right.length;
  if (dbl.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...left, ...Array<string>(dbl.length === 2 ? missing : 0).fill('0'), ...right];
  let v = 0n;
  for (const g of all) {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
    v = (v << 16n) | BigInt(Number.parseInt(g, 16));
  }
  if (tailV4 !== undefined) v = (v & ~0xffffffffn) | tailV4;
  return v;
}

export function formatAddr(family: Family, v: bigint): string {
  if (family === 4) return formatV4(Number(v & 0xffffffffn));
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952 section 4.2: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const l = hex.slice(0, bestStart).join(':');
  const r = hex.slice(bestStart + bestLen).join(':');
  return `${l}::${r}`;
}

/** Parses an address (no prefix length). Returns undefined when it is not an IPv4 or IPv6 address. */
export function parseAddr(s: string): { family: Family; bits: bigint; text: string } | undefined {
  const n = parseV4Number(s);
  if (n !== undefined) return { family: 4, bits: BigInt(n), text: formatV4(n) };
  const v6 = parseV6(s);
  if (v6 !== undefined) return { family: 6, bits: v6, text: formatAddr(6, v6) };
  return undefined;
}

const width = (f: Family) => (f === 4 ? 32 : 128);

function mask(f: Family, len: number): bigint {
  const w = BigInt(width(f));
  return ((1n << w) - 1n) ^ ((1n << (w - BigInt(len))) - 1n);
}

/**
 * Parses `addr/len` (or a bare address as a host prefix) and clears host bits.
 * Throws ROUTES_ERR_INVALID naming `field` and the value when it is not a prefix.
 */
export function parsePrefix(s: string, field = 'prefix'): Prefix {
  const p = tryParsePrefix(s);
  if (!p) throw new RoutesError('ROUTES_ERR_INVALID', `${field}: "${s}" is not an IPv4 or IPv6 prefix`);
  return p;
}

export function tryParsePrefix(s: string): Prefix | undefined {
  const slash = s.indexOf('/');
  const v4 = parseV4Number(slash < 0 ? s : s.slice(0, slash));
  if (v4 !== undefined) {
    let len = 32;
    if (slash >= 0) {
      const lenText = s.slice(slash + 1);
      if (!/^\d{1,2}$/.test(lenText)) return undefined;
      len = Number(lenText);
      if (len > 32) return undefined;
    }
    const net = len === 0 ? 0 : (v4 & ((0xffffffff << (32 - len)) >>> 0)) >>> 0;
    return { family: 4, bits: BigInt(net), len, text: `${formatV4(net)}/${len}` };
  }
  const a = parseAddr(slash < 0 ? s : s.slice(0, slash));
  if (!a) return undefined;
  const lenText = slash < 0 ? String(width(a.family)) : s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText)) return undefined;
  const len = Number(lenText);
  if (len > width(a.family)) return undefined;
  const bits = a.bits & mask(a.family, len);
  return { family: a.family, bits, len, text: `${formatAddr(a.family, bits)}/${len}` };
}

/** True when `inner` lies within `outer` (same family, at least as long). */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  return (
    outer.family === inner.family &&
    inner.len >= outer.len &&
    (inner.bits & mask(outer.family, outer.len)) === outer.bits
  );
}

/** Canonical text of an address, or throws ROUTES_ERR_INVALID naming the field. */
export function canonicalAddr(s: string, field = 'address'): string {
  const a = parseAddr(s);
  if (!a) throw new RoutesError('ROUTES_ERR_INVALID', `${field}: "${s}" is not an IPv4 or IPv6 address`);
  return a.text;
}
