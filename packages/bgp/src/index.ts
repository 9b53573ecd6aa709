/**
 * bgp-ts: a standalone BGP-4 speaker (no Kubernetes, no netlink).
 *
 * The node agent uses the {@link Speaker}:
 *
 * ```ts
 * const bgp = new Speaker({ asn: 64512, routerId: '10.0.0.1', listen: { port: 179 }, logger });
 * bgp.on('bestpath', (c: RibChange) => ...);   // added / changed / removed, with ECMP next hops
 * bgp.addPeer({ address: '10.0.0.254', asn: 65000, holdTime: 9, gracefulRestart: { restartTime: 120 } });
 * await bgp.start();
 * bgp.originate('10.244.1.0/26', { nextHop: '10.0.0.1' });
 * bgp.withdraw('10.244.1.0/26');
 * bgp.peers();                                  // state + counters for podnetctl
 * await bgp.stop({ graceful: true });           // peers with GR keep our routes
 * ```
 *
 * Contracts:
 * - `addPeer/updatePeer/removePeer` act on one session only; bad config throws
 *   {@link BgpConfigError} naming the field and value.
 * - Prefixes are strings (`10.0.0.0/24`, `2001:db8::/64`); IPv6 prefixes come back in RFC 5952 form.
 * - `originate(prefix, attrs)`: `attrs.nextHop` is the next hop we advertise (for IPv6 over an IPv4
 *   session, give it or set the peer's `nextHopIpv6`); without it, the session's local address is used.
 * - `'bestpath'` fires for every Loc-RIB change (locally originated routes included, `from: 'local'`).
 * - Peers are keyed by address and port ({@link peerKey}): `removePeer(address, port?)`.
 * - `'peer'` fires on every session state change: `{ key, address, port, from, to, reason }`.
 * - `'end-of-rib'` fires when a peer sends End-of-RIB: `{ key, address, port, afi }`.
 * - `'max-prefixes'` fires when a peer goes over its receive limit: `{ key, address, port, limit }`.
 * - `'bestpath'` only reports changes; call `locRib()` for the current table when subscribing late.
 * - `md5Password` needs @podnet/native (loaded on first use); keys on the listening socket are kept
 *   in step with `addPeer/updatePeer/removePeer`.
 * - `stop({ graceful: true })` closes sessions that negotiated Graceful Restart without a
 *   NOTIFICATION (peers keep our routes as stale); start the next instance with `restarting: true`.
 *   Others get Cease/Administrative Shutdown.
 */

export type { Logger } from './logger.js';
export type { RouteAttrs } from './rib/attrs.js';
export type { Policy, PrefixRule } from './rib/policy.js';
export type { FsmAction, FsmEvent, FsmState, Transition } from './session/fsm.js';
export { transition } from './session/fsm.js';
export type { Clock, Conn, Negotiated, Transport } from './session/session.js';
export { Session } from './session/session.js';
export {
  DEFAULT_ATTR_CACHE_BYTES,
  DEFAULT_MAX_PREFIXES,
  DEFAULT_REFUSALS_PER_MINUTE,
  type PeerConfig,
  type PeerStatus,
  peerKey,
  type RibChange,
  type RibEntry,
  Speaker,
  type SpeakerOptions,
} from './speaker.js';
export { BgpConfigError, BgpError } from './wire/errors.js';
export * as wire from './wire/index.js';
