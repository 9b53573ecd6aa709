// Address and prefix helpers shared by the codec and the RIB. Pure functions, no allocation
// beyond the returned value.
import { Afi } from './constants.js';
import { BgpConfigError } from './errors.js';

export type AfiValue = (typeof Afi)[keyof typeof Afi];

/**
 * Parses dotted-quad IPv4 into an unsigned 32-bit number, or returns undefined. Strict like Go's
 * netip: an octet with a leading zero (`010`) is refused, since inet_aton would read it as octal.
 */
export function parseIpv4(s: string): number | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0;
  for (const p of parts) {
    if (!/^(?:0|[1-9]\d{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = v * 256 + n;
  }
  return v;
}

export function formatIpv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** Parses an IPv6 address (with optional embedded IPv4 tail) into 16 bytes, or returns undefined. */
export function parseIpv6(s: string): Uint8Array | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  let head = s;
  let v4tail: number | undefined;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) !== -1) {
    v4tail = parseIpv4(s.slice(lastColon + 1));
    if (v4tail === undefined) return undefined;
    head = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const dbl = head.indexOf('::');
  if (dbl !== -1 && head.indexOf('::', dbl + 1) !== -1) return undefined;
  const parseGroups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  let groups: number[];
  if (dbl === -1) {
    const g = parseGroups(head);
    if (g?.length !== 8) return undefined;
    groups = g;
  } else {
    const a = parseGroups(head.slice(0, dbl));
    const b = parseGroups(head.slice(dbl + 2));
    if (!a || !b || a.length + b.length > 7) return undefined;
    groups = [...a, ...new Array<number>(8 - a.length - b.length).fill(0), ...b];
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = groups[i] ?? 0;
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 255;
  }
  if (v4tail !== undefined) {
    out[12] = v4tail >>> 24;
    out[13] = (v4tail >>> 16) & 255;
    out[14] = (v4tail >>> 8) & 255;
    out[15] = v4tail & 255;
  }
  return out;
}

/**
 * RFC 5952 text form: lowercase, no leading zeros, longest run (>= 2) of zero groups as `::`, and
 * IPv4-mapped addresses as `::ffff:a.b.c.d` (section 5).
 */
export function formatIpv6(b: Uint8Array, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(((b[off + i * 2] ?? 0) << 8) | (b[off + i * 2 + 1] ?? 0));
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff)
    return `::ffff:${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}`;
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (x: number) => x.toString(16);
  if (bestLen < 2) return g.map(hex).join(':');
  return `${g.slice(0, bestStart).map(hex).join(':')}::${g
    .slice(bestStart + bestLen)
    .map(hex)
    .join(':')}`;
}

/** A parsed prefix: family, network bytes (4 or 16, host bits zero) and length. */
export interface ParsedPrefix {
  afi: AfiValue;
  bytes: Uint8Array;
  len: number;
}

/** Parses `a.b.c.d/n` or `x::/n`; host bits must be zero. Throws BgpConfigError naming `field`. */
export function parsePrefix(s: string, field = 'prefix'): ParsedPrefix {
  const slash = s.indexOf('/');
  if (slash === -1) throw new BgpConfigError(field, s, 'expected address/length');
  const addr = s.slice(0, slash);
  const lenStr = s.slice(slash + 1);
  if (!/^(?:0|[1-9]\d{0,2})$/.test(lenStr))
    throw new BgpConfigError(field, s, 'prefix length is not a number without leading zeros');
  const len = Number(lenStr);
  let afi: AfiValue;
  let bytes: Uint8Array;
  const v4 = parseIpv4(addr);
  if (v4 !== undefined) {
    if (len > 32) throw new BgpConfigError(field, s, 'IPv4 prefix length above 32');
    afi = Afi.IPV4;
    bytes = new Uint8Array([v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255]);
  } else {
    const v6 = parseIpv6(addr);
    if (!v6) throw new BgpConfigError(field, s, 'not an IPv4 or IPv6 prefix');
    if (len > 128) throw new BgpConfigError(field, s, 'IPv6 prefix length above 128');
    afi = Afi.IPV6;
    bytes = v6;
  }
  for (let bit = len; bit < bytes.length * 8; bit++) {
    if ((bytes[bit >> 3]! >> (7 - (bit & 7))) & 1) throw new BgpConfigError(field, s, 'host bits are set');
  }
  return { afi, bytes, len };
}

export function formatPrefix(afi: number, bytes: Uint8Array, len: number): string {
  return afi === Afi.IPV4
    ? `${bytes[0] ?? 0}.${bytes[1] ?? 0}.${bytes[2] ?? 0}.${bytes[3] ?? 0}/${len}`
    : `${formatIpv6(bytes)}/${len}`;
}

/** Canonical text of a prefix string (e.g. IPv6 compressed form); throws on bad input. */
export function canonicalPrefix(s: string, field = 'prefix'): string {
  const p = parsePrefix(s, field);
  return formatPrefix(p.afi, p.bytes, p.len);
}

/** Family of an address string, or undefined when it is neither. */
export function addressFamily(s: string): AfiValue | undefined {
  if (parseIpv4(s) !== undefined) return Afi.IPV4;
  if (parseIpv6(s)) return Afi.IPV6;
  return undefined;
}

/**
 * IPv4 prefix as a compact numeric key: 2^len + (network bits), the numbering of a binary trie.
 * Every (address, length) pair gets its own key, and prefixes up to /29 give keys below 2^30,
 * which V8 keeps as small integers (no heap number per key).
 */
export function v4Key(addr: number, len: number): number {
  return 2 ** len + Math.floor(addr / 2 ** (32 - len));
}

export function v4KeyToString(key: number): string {
  let len = 0;
  while (2 ** (len + 1) <= key) len++;
  const addr = (key - 2 ** len) * 2 ** (32 - len);
  return `${formatIpv4(addr)}/${len}`;
}
