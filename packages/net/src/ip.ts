// IPv4 and IPv6 addresses and CIDR prefixes: parse (strict), canonical text, bytes, containment.
// Pure, no I/O. The grammar is Go's net/netip and kube-apiserver's strict validation:
// - IPv4 is exactly four decimal octets 0..255 with no leading zeros (`010.0.0.1` is refused:
//   inet_aton reads it as octal 8.0.0.1, other parsers as 10.0.0.1);
// - IPv6 is RFC 4291 section 2.2 text: 1..4 hex digits per group (either case), at most one `::`
//   standing for at least one group, an optional dotted IPv4 tail as the last 32 bits;
// - a zone (`fe80::1%eth0`) only when the caller asks for it, never on IPv4 or in a CIDR;
// - a prefix length is decimal with no leading zeros (`/08` is refused), 0..32 or 0..128;
// - nothing else: no whitespace, no signs, no hex or octal IPv4, no brackets.
// Canonical text is RFC 5952: lower case, no leading zeros, the longest run of two or more zero
// groups (the first on a tie) as `::`, and IPv4-mapped addresses as `::ffff:a.b.c.d` (section 5).

export type Family = 4 | 6;

export interface IpAddr {
  readonly family: Family;
  /** The address as an unsigned integer of 32 or 128 bits. */
  readonly value: bigint;
  /** The IPv6 zone (`eth0` of `fe80::1%eth0`), only when parsed with `{ zone: true }`. */
  readonly zone?: string;
}

export interface Cidr {
  readonly family: Family;
  /** The address part as an unsigned integer; its host bits are zero unless parsed with `hostBits: 'keep'`. */
  readonly addr: bigint;
  /** The prefix length, 0..32 or 0..128. */
  readonly len: number;
}

/** A parse result that says why the text was refused. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface ParseIpOptions {
  /** Accept an IPv6 zone (`fe80::1%eth0`). Off by default: a zone is refused. */
  zone?: boolean;
}

/**
 * What to do with host bits set under the prefix length (`10.0.0.5/24`):
 * - `reject`: the text must name a network (IPPool cidr, prefix filters);
 * - `clear`: read it as its network (`10.0.0.0/24`), e.g. a route destination;
 * - `keep`: an interface address with its subnet (`10.0.0.5/24` stays so).
 */
export type HostBits = 'reject' | 'clear' | 'keep';

export interface ParseCidrOptions {
  hostBits: HostBits;
  /** Read an address without `/len` as a host prefix (/32 or /128). Off by default: `/len` is required. */
  bare?: boolean;
}

export const familyBits = (family: Family): 32 | 128 => (family === 4 ? 32 : 128);

const ALL4 = 0xffffffffn;
const ALL6 = (1n << 128n) - 1n;

/** The network mask of a prefix length, as an unsigned integer of the family's width. */
export function maskOf(family: Family, len: number): bigint {
  const all = family === 4 ? ALL4 : ALL6;
  return all ^ (all >> BigInt(len));
}

// ---------------------------------------------------------------------------------------------
// Scanners over s[from, to): a number or bigint, or the reason as a string.

function unexpected(s: string, i: number): string {
  return `unexpected character ${JSON.stringify(s[i])} at ${i}`;
}

function scanV4(s: string, from: number, to: number): number | string {
  let v = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return 'leading zero in an IPv4 octet';
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return 'IPv4 octet above 255';
    } else if (c === 46) {
      if (digits === 0) return 'empty IPv4 octet';
      if (++dots > 3) return 'more than four IPv4 octets';
      v = v * 256 + octet;
      octet = 0;
      digits = 0;
    } else {
      return unexpected(s, i);
    }
  }
  if (digits === 0) return from === to ? 'empty' : 'empty IPv4 octet';
  if (dots !== 3) return 'fewer than four IPv4 octets';
  return v * 256 + octet;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

function scanV6(s: string, from: number, to: number): bigint | string {
  if (from === to) return 'empty';
  const groups: number[] = [];
  let ellipsis = -1;
  let i = from;
  if (s.charCodeAt(i) === 58) {
    if (s.charCodeAt(i + 1) !== 58 || i + 1 >= to) return 'leading single colon';
    ellipsis = 0;
    i += 2;
  }
  while (i < to) {
    if (groups.length >= 8) return 'more than eight groups';
    const start = i;
    let acc = 0;
    for (let h = hexValue(s.charCodeAt(i)); i < to && h >= 0; h = hexValue(s.charCodeAt(++i))) {
      if (i - start < 4) acc = acc * 16 + h;
    }
    if (i < to && s.charCodeAt(i) === 46) {
      // A dotted IPv4 tail is the last two groups (RFC 4291 section 2.2, form 3).
      if (groups.length > 6) return 'embedded IPv4 address after the seventh group';
      const v4 = scanV4(s, start, to);
      if (typeof v4 === 'string') return `embedded IPv4 address: ${v4}`;
      groups.push(Math.floor(v4 / 65536), v4 % 65536);
      i = to;
      break;
    }
    if (i === start) return s.charCodeAt(i) === 58 ? 'more than one :: or an empty group' : unexpected(s, i);
    if (i - start > 4) return 'group of more than four hex digits';
    groups.push(acc);
    if (i === to) break;
    if (s.charCodeAt(i) !== 58) return unexpected(s, i);
    i++;
    if (i < to && s.charCodeAt(i) === 58) {
      if (ellipsis >= 0) return 'more than one ::';
      ellipsis = groups.length;
      i++;
    } else if (i === to) {
      return 'trailing single colon';
    }
  }
  if (ellipsis < 0 && groups.length !== 8) return 'fewer than eight groups and no ::';
  if (ellipsis >= 0 && groups.length > 7) return ':: stands for no group';
  let v = 0n;
  const fill = 8 - groups.length;
  for (let g = 0, k = 0; g < 8; g++) {
    const word = ellipsis >= 0 && g >= ellipsis && g < ellipsis + fill ? 0 : groups[k++]!;
    v = (v << 16n) | BigInt(word);
  }
  return v;
}

/** Prefix length text: decimal, no leading zeros, at most `max`. */
function scanLen(s: string, from: number, max: number): number | string {
  if (from === s.length) return 'empty prefix length';
  let n = 0;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return `prefix length: ${unexpected(s, i)}`;
    if (i > from && n === 0) return 'leading zero in the prefix length';
    n = n * 10 + (c - 48);
    if (n > max) return `prefix length above ${max}`;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** IPv4 dotted quad to an unsigned 32-bit number (no bigint: for hot paths), or undefined. */
export function parseIpv4Number(s: string): number | undefined {
  const v = scanV4(s, 0, s.length);
  return typeof v === 'number' ? v : undefined;
}

/** Parses an IPv4 or IPv6 address and says why when it is not one. */
export function parseIpResult(s: string, opts: ParseIpOptions = {}): Parsed<IpAddr> {
  if (typeof s !== 'string') return { ok: false, reason: 'not a string' };
  let end = s.length;
  const pct = s.indexOf('%');
  let zone: string | undefined;
  if (pct >= 0) {
    if (!opts.zone) return { ok: false, reason: 'a zone (%…) is not allowed here' };
    zone = s.slice(pct + 1);
    if (zone === '' || /[\s%/[\]]/.test(zone)) return { ok: false, reason: 'bad zone' };
    end = pct;
  }
  if (s.lastIndexOf(':', end - 1) >= 0) {
    const v = scanV6(s, 0, end);
    if (typeof v === 'string') return { ok: false, reason: v };
    return { ok: true, value: zone === undefined ? { family: 6, value: v } : { family: 6, value: v, zone } };
  }
  if (zone !== undefined) return { ok: false, reason: 'a zone is only allowed on IPv6' };
  const v = scanV4(s, 0, end);
  if (typeof v === 'string') return { ok: false, reason: v };
  return { ok: true, value: { family: 4, value: BigInt(v) } };
}

/** Parses an IPv4 or IPv6 address; undefined when it is not one. */
export function parseIp(s: string, opts?: ParseIpOptions): IpAddr | undefined {
  const r = parseIpResult(s, opts);
  return r.ok ? r.value : undefined;
}

/** Parses `addr/len` (or a bare address with `bare: true`) and says why when it is not a CIDR. */
export function parseCidrResult(s: string, opts: ParseCidrOptions): Parsed<Cidr> {
  if (typeof s !== 'string') return { ok: false, reason: 'not a string' };
  const slash = s.indexOf('/');
  if (slash < 0 && !opts.bare) return { ok: false, reason: 'no /prefix-length' };
  const addrText = slash < 0 ? s : s.slice(0, slash);
  if (addrText.indexOf(':') < 0) return parseV4CidrResult(s, addrText, slash, opts.hostBits);
  const ip = parseIpResult(addrText);
  if (!ip.ok) return ip;
  const { family, value } = ip.value;
  const width = familyBits(family);
  let len: number = width;
  if (slash >= 0) {
    const l = scanLen(s, slash + 1, width);
    if (typeof l === 'string') return { ok: false, reason: l };
    len = l;
  }
  const mask = maskOf(family, len);
  if ((value & ~mask) !== 0n) {
    if (opts.hostBits === 'reject')
      return {
        ok: false,
        reason: `host bits set (the network is ${formatCidr({ family, addr: value & mask, len })})`,
      };
    if (opts.hostBits === 'clear') return { ok: true, value: { family, addr: value & mask, len } };
  }
  return { ok: true, value: { family, addr: value, len } };
}

/** The IPv4 case of parseCidrResult in plain numbers (route dumps parse many of these). */
function parseV4CidrResult(s: string, addrText: string, slash: number, hostBits: HostBits): Parsed<Cidr> {
  if (addrText.indexOf('%') >= 0) return { ok: false, reason: 'a zone is only allowed on IPv6' };
  const v = scanV4(addrText, 0, addrText.length);
  if (typeof v === 'string') return { ok: false, reason: v };
  let len = 32;
  if (slash >= 0) {
    const l = scanLen(s, slash + 1, 32);
    if (typeof l === 'string') return { ok: false, reason: l };
    len = l;
  }
  const host = len === 32 ? 0 : 2 ** (32 - len) - 1;
  const network = v - (v % (host + 1));
  if (network !== v) {
    if (hostBits === 'reject') {
      const net = formatCidr({ family: 4, addr: BigInt(network), len });
      return { ok: false, reason: `host bits set (the network is ${net})` };
    }
    if (hostBits === 'clear') return { ok: true, value: { family: 4, addr: BigInt(network), len } };
  }
  return { ok: true, value: { family: 4, addr: BigInt(v), len } };
}

/** Parses a CIDR with the given host-bits policy; undefined when it is not one. */
export function parseCidr(s: string, opts: ParseCidrOptions): Cidr | undefined {
  const r = parseCidrResult(s, opts);
  return r.ok ? r.value : undefined;
}

export const isIPv4 = (s: string): boolean => parseIpv4Number(s) !== undefined;
export const isIPv6 = (s: string): boolean => parseIp(s)?.family === 6;

// ---------------------------------------------------------------------------------------------
// Text and bytes

export function formatIpv4(n: number): string {
  return `${Math.floor(n / 16777216) % 256}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function formatV6(v: bigint): string {
  if (v >> 32n === 0xffffn) return `::ffff:${formatIpv4(Number(v & ALL4))}`;
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 1;
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
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Canonical text of an address (RFC 5952 for IPv6, with its zone when it has one). */
export function formatIp(ip: { family: Family; value: bigint; zone?: string | undefined }): string {
  const text = ip.family === 4 ? formatIpv4(Number(ip.value)) : formatV6(ip.value & ALL6);
  return ip.zone === undefined ? text : `${text}%${ip.zone}`;
}

/** Canonical text of a CIDR: the address part as parsed (see `hostBits`) and the length. */
export function formatCidr(c: Cidr): string {
  return `${formatIp({ family: c.family, value: c.addr })}/${c.len}`;
}

/** The address as 4 or 16 network-order bytes. */
export function ipToBytes(ip: { family: Family; value: bigint }): Uint8Array {
  const n = ip.family === 4 ? 4 : 16;
  const out = new Uint8Array(n);
  let v = ip.value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** 4 or 16 network-order bytes as an address; undefined for any other length. */
export function ipFromBytes(b: Uint8Array): IpAddr | undefined {
  if (b.length !== 4 && b.length !== 16) return undefined;
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return { family: b.length === 4 ? 4 : 6, value: v };
}

// ---------------------------------------------------------------------------------------------
// Arithmetic

const asCidr = (x: Cidr | IpAddr): Cidr =>
  'len' in x ? x : { family: x.family, addr: x.value, len: familyBits(x.family) };

/** Whether `inner` (a CIDR or an address) lies entirely inside `outer`; never across families. */
export function cidrContains(outer: Cidr, inner: Cidr | IpAddr): boolean {
  const c = asCidr(inner);
  if (outer.family !== c.family || c.len < outer.len) return false;
  const m = maskOf(outer.family, outer.len);
  return (c.addr & m) === (outer.addr & m);
}

/** Whether two CIDRs share any address. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}

/** Orders addresses: IPv4 before IPv6, then numerically. */
export function compareIp(a: IpAddr, b: IpAddr): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}
