// Throwing forms for configuration and API input: a NetError names the field, the value and why.
import { type AddrPort, type ParseAddrPortOptions, parseAddrPortResult } from './addrport.js';
import { NetError } from './errors.js';
import {
  type Cidr,
  type IpAddr,
  type ParseCidrOptions,
  type Parsed,
  type ParseIpOptions,
  parseCidrResult,
  parseIpResult,
} from './ip.js';

function must<T>(r: Parsed<T>, field: string, value: string, expected: string): T {
  if (r.ok) return r.value;
  throw new NetError(field, String(value), expected, r.reason);
}

export function mustParseIp(s: string, field: string, opts?: ParseIpOptions): IpAddr {
  return must(parseIpResult(s, opts), field, s, 'an IP address');
}

export function mustParseCidr(s: string, field: string, opts: ParseCidrOptions): Cidr {
  const expected = opts.hostBits === 'reject' ? 'a network CIDR (address/length, host bits zero)' : 'a CIDR';
  return must(parseCidrResult(s, opts), field, s, expected);
}

export function mustParseAddrPort(s: string, field: string, opts: ParseAddrPortOptions): AddrPort {
  const expected =
    opts.port === 'required' ? 'an ip:port or [ipv6]:port' : 'an IP address, ip:port or [ipv6]:port';
  return must(parseAddrPortResult(s, opts), field, s, expected);
}
