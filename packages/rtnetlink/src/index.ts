// rtnetlink-ts: a pure rtnetlink codec and a batching client with namespace handles.
//
// Client (one per network namespace):
//   const nl = await Rtnl.open({ netns: '/var/run/netns/foo' });   // or {} for the caller's namespace
//   nl.routes.list({ table, protocol, type, oif, family })          // dump, filtered in the kernel (strict checking)
//   nl.routes.add / replace / append / del(route)                  // ECMP (multipath), blackhole, scope, metric, v4/v6
//   nl.links.list() / get(name | index) / createVeth({ name, peerName, peerNetnsFd, mtu, mac, peerMac })
//   nl.links.set(name | index, { up, mtu, mac, name, netnsFd }) / del(name | index)
//   nl.addrs.list({ family, index }) / add({ index, address: '10.0.0.1/32' }) / del(...)
//   nl.neigh.list({ family, index, proxy }) / add({ index, dst, lladdr }) / add({ index, dst, proxy: true }) / del(...)
//   nl.batch([{ type: 'route.add', route }, …]) → [{ ok: true } | { ok: false, error }]   // many per sendmsg
//   nl.subscribe(['link', 'route', 'addr', 'neigh'], (ev) => …, onError)  → { close() }
//   nl.close()
// Errors: NetlinkError with `code` NL_ERR_* (see errors.ts), `errnoName` ('EEXIST'…), `extAck` (the
// kernel's message) and `request` (what was asked). Single calls reject; batches report per request.
//
// Codec (pure, no I/O): Writer + encode* functions build messages; decodeDatagram/decodeMessage
// turn bytes into the RtnlMessage union (never throwing: `malformed` and `unknown` variants).
export { type Address, type AddressSpec, decodeAddr, encodeAddr, encodeAddrDump } from './addr.js';
export {
  type BatchOptions,
  type BatchResult,
  describeRequest,
  type EventGroup,
  type Request,
  Rtnl,
  type RtnlEvent,
  type RtnlOptions,
  type Subscription,
} from './client.js';
export { type Attrs, decodeNlError, type NlError, type NlMsg, parseAttrs, splitMessages } from './codec.js';
export * from './constants.js';
export { errnoName, NetlinkError, type NetlinkErrorCode, type NetlinkErrorDetails } from './errors.js';
export { type Family, formatAddr, formatMac, type Prefix, parsePrefix } from './ip.js';
export {
  decodeLink,
  encodeLinkDel,
  encodeLinkDump,
  encodeLinkGet,
  encodeLinkSet,
  encodeVeth,
  type Link,
  type LinkChange,
  type LinkRef,
  type VethOptions,
} from './link.js';
export { decodeDatagram, decodeMessage, type RtnlMessage } from './messages.js';
export { decodeNeigh, encodeNeigh, encodeNeighDump, type Neighbour, type NeighbourSpec } from './neigh.js';
export {
  decodeRoute,
  describeRoute,
  encodeRoute,
  encodeRouteDump,
  type Nexthop,
  type Route,
  type RouteFilter,
  type RouteInfo,
  type RouteOp,
  routeMatches,
} from './route.js';
export {
  checkEntry as checkSysctlEntry,
  netnsSysctl,
  procSysctl,
  type SysctlEntry,
  type SysctlWriter,
} from './sysctl.js';
export { Writer } from './writer.js';
