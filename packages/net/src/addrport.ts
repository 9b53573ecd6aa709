// `address:port` text, the one grammar for peer addresses (BGPPeer.peerIP) and listen addresses
// given as literals. Like Go's netip.ParseAddrPort, with the port optional when the caller says so:
// - `a.b.c.d` and `a.b.c.d:port`;
// - `[v6]:port` (brackets only around IPv6, and only with a port);
// - a bare IPv6 address (`fd00::1`): two or more colons without brackets never carry a port;
// - the port is decimal 1..65535 with no leading zeros.
import { type IpAddr, type Parsed, parseIpResult } from './ip.js';

export interface AddrPort {
  readonly ip: IpAddr;
  readonly port?: number;
}

export interface ParseAddrPortOptions {
  /** `required`: `a.b.c.d` or `fd00::1` alone is refused. */
  port: 'optional' | 'required';
  /** Accept an IPv6 zone (`[fe80::1%eth0]:179`). Off by default. */
  zone?: boolean;
}

function scanPort(s: string): number | string {
  if (!/^[1-9][0-9]{0,4}$/.test(s)) return `port ${JSON.stringify(s)} is not a number 1..65535`;
  const n = Number(s);
  return n > 65535 ? `port ${n} above 65535` : n;
}

/** Splits and parses `ip`, `ip:port` or `[ipv6]:port`, and says why when it cannot. */
export function parseAddrPortResult(s: string, opts: ParseAddrPortOptions): Parsed<AddrPort> {
  if (typeof s !== 'string') return { ok: false, reason: 'not a string' };
  const ipOpts = { zone: opts.zone ?? false };
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) return { ok: false, reason: 'no closing ]' };
    if (s[close + 1] !== ':') return { ok: false, reason: 'brackets without a :port' };
    const ip = parseIpResult(s.slice(1, close), ipOpts);
    if (!ip.ok) return ip;
    if (ip.value.family !== 6) return { ok: false, reason: 'brackets around an IPv4 address' };
    const port = scanPort(s.slice(close + 2));
    if (typeof port === 'string') return { ok: false, reason: port };
    return { ok: true, value: { ip: ip.value, port } };
  }
  const first = s.indexOf(':');
  if (first >= 0 && first === s.lastIndexOf(':')) {
    const ip = parseIpResult(s.slice(0, first), ipOpts);
    if (!ip.ok) return ip;
    const port = scanPort(s.slice(first + 1));
    if (typeof port === 'string') return { ok: false, reason: port };
    return { ok: true, value: { ip: ip.value, port } };
  }
  const ip = parseIpResult(s, ipOpts);
  if (!ip.ok) return ip;
  if (opts.port === 'required')
    return { ok: false, reason: ip.value.family === 6 ? 'no port (write [v6]:port)' : 'no :port' };
  return { ok: true, value: { ip: ip.value } };
}

/** Splits and parses `ip`, `ip:port` or `[ipv6]:port`; undefined when it is not one. */
export function parseAddrPort(s: string, opts: ParseAddrPortOptions): AddrPort | undefined {
  const r = parseAddrPortResult(s, opts);
  return r.ok ? r.value : undefined;
}
