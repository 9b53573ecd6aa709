// @podnet/net: the one address parser of podnet's packages (bgp-ts keeps its own and is held to
// agree with this one by a property test in test/). See README.md for the grammar.
export { type AddrPort, type ParseAddrPortOptions, parseAddrPort, parseAddrPortResult } from './addrport.js';
export { NET_ERR_INVALID, NetError } from './errors.js';
export { POD_IF_PREFIX, podInterfaceName } from './ifname.js';
export {
  type Cidr,
  cidrContains,
  cidrsOverlap,
  compareIp,
  type Family,
  familyBits,
  formatCidr,
  formatIp,
  formatIpv4,
  type HostBits,
  type IpAddr,
  ipFromBytes,
  ipToBytes,
  isIPv4,
  isIPv6,
  maskOf,
  type ParseCidrOptions,
  type Parsed,
  type ParseIpOptions,
  parseCidr,
  parseCidrResult,
  parseIp,
  parseIpResult,
  parseIpv4Number,
} from './ip.js';
export { mustParseAddrPort, mustParseCidr, mustParseIp } from './must.js';
