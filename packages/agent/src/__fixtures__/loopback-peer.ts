// The BGP adapter's tests: a bgp-ts speaker on loopback (AS 65000) announcing to the adapter
// (AS 64512), and the DesiredPeer the adapter is given for it.
import { Speaker } from '@podnet/bgp';
import type { BgpAdapter } from '../adapters/bgp.js';
import type { DesiredPeer } from '../model.js';

/** A started speaker that accepts the adapter as its passive peer, announcing `routes` (prefix → next hop). */
export async function loopbackPeer(routes: Record<string, string>): Promise<Speaker> {
  const peer = new Speaker({ asn: 65000, routerId: '10.9.0.1', listen: { port: 0, address: '127.0.0.1' } });
  peer.addPeer({ address: '127.0.0.1', asn: 64512, passive: true, holdTime: 9 });
  for (const [prefix, nextHop] of Object.entries(routes)) peer.originate(prefix, { nextHop });
  await peer.start();
  return peer;
}

/** Starts the adapter as node n1 (AS 64512) on loopback. */
export async function startAdapter(adapter: BgpAdapter): Promise<void> {
  await adapter.start({
    name: 'n1',
    address: '127.0.0.1',
    routerId: '10.9.0.2',
    asNumber: 64512,
    listenPort: 0,
  });
}

/** The DesiredPeer that makes `peer` the adapter's ToR. */
export function torPeer(peer: Speaker): DesiredPeer {
  return {
    key: `127.0.0.1:${peer.listenPort}`,
    source: 'tor',
    type: 'global',
    address: '127.0.0.1',
    port: peer.listenPort!,
    remoteAs: 65000,
    localAs: 64512,
    passive: false,
    holdTime: 9,
    keepaliveTime: 3,
    gracefulRestart: { enabled: false, restartTime: 120 },
    routeReflectorClient: false,
    importFilter: [],
    exportFilter: [],
    maxPrefixes: 10_000,
  };
}
