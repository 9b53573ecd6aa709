// Small IPv4/IPv6 helpers: parse, format, containment. Pure.

export interface Cidr {
  family: 4 | 6;
  /** The network address as a bigint (host bits cleared). */
  net: bigint;
  prefixLen: number;
  /** Canonical text, e.g. 10.0.0.0/26. */
  text: string;
}

export function isIPv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

export function isIPv6(s: string): boolean {
  return s.includes(':') && parseIPv6(s) !== undefined;
}

function parseIPv6(s: string): bigint | undefined {
  let text = s;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  const maybeV4 = text.slice(lastColon + 1);
  if (maybeV4.includes('.')) {
    if (!isIPv4(maybeV4)) return undefined;
    const v = ipv4ToInt(maybeV4);
    tail = [v >>> 16, v & 0xffff];
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const groups = halves.length === 2 ? 8 - head.length - rest.length : 0;
  if (groups < 0 || (halves.length === 1 && head.length !== 8)) return undefined;
  const all = [...head, ...Array<string>(groups).fill('0'), ...rest];
  if (all.length !== 8 || !all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const words = all.map((g) => Number.parseInt(g, 16));
  if (tail.length) words.splice(6, 2, ...tail);
  return words.reduce((acc, w) => (acc << 16n) | BigInt(w), 0n);
}

export function ipv4ToInt(s: string): number {
  const p = s.split('.').map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function intToIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function formatIPv6(v: bigint): string {
  const words: number[] = [];
  for (let i = 7; i >= 0; i--) words.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  // Collapse the longest run of zero words (RFC 5952).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** The numeric value of an address (IPv4 or IPv6), or undefined when it is not one. */
export function ipValue(s: string): { family: 4 | 6; value: bigint } | undefined {
  if (isIPv4(s)) return { family: 4, value: BigInt(ipv4ToInt(s)) };
  const v6 = s.includes(':') ? parseIPv6(s) : undefined;
  return v6 === undefined ? undefined : { family: 6, value: v6 };
}

export function formatIp(family: 4 | 6, value: bigint): string {
  return family === 4 ? intToIPv4(Number(value)) : formatIPv6(value);
}

/** Parses `a.b.c.d/n` (or a bare address as a host route); undefined when invalid. */
export function parseCidr(s: string): Cidr | undefined {
  const [addr, len, extra] = s.trim().split('/');
  if (addr === undefined || extra !== undefined) return undefined;
  const ip = ipValue(addr);
  if (!ip) return undefined;
  const bits = ip.family === 4 ? 32 : 128;
  const prefixLen = len === undefined ? bits : /^\d{1,3}$/.test(len) ? Number(len) : Number.NaN;
  if (!(prefixLen >= 0 && prefixLen <= bits)) return undefined;
  const mask = prefixLen === 0 ? 0n : ((1n << BigInt(prefixLen)) - 1n) << BigInt(bits - prefixLen);
  const net = ip.value & mask;
  return { family: ip.family, net, prefixLen, text: `${formatIp(ip.family, net)}/${prefixLen}` };
}

/** True when `inner` (an address or CIDR) lies inside `outer`. */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefixLen < outer.prefixLen) return false;
  const bits = outer.family === 4 ? 32 : 128;
  const shift = BigInt(bits - outer.prefixLen);
  return inner.net >> shift === outer.net >> shift;
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
  const x = ipValue(addressOf(a));
  const y = ipValue(addressOf(b));
  if (!x || !y) return a < b ? -1 : a > b ? 1 : 0;
  if (x.family !== y.family) return x.family - y.family;
  return x.value < y.value ? -1 : x.value > y.value ? 1 : 0;
}
