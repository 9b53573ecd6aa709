// The BGP adapter with next-hop reachability: a path whose next hop has no route is not a best
// path (so no route is computed for it) and shows as a NextHopUnreachable condition until the
// kernel has a route to it. A real bgp-ts speaker over loopback TCP announces the path.
import { Speaker } from '@podnet/bgp';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { DesiredPeer } from '../model.js';
import { BgpAdapter } from './bgp.js';

const until = async (what: string, f: () => boolean) => {
  for (let i = 0; i < 500 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!f()) throw new Error(`timed out waiting for ${what}`);
};

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

describe('BgpAdapter with nextHopReachable', () => {
  it('leaves out paths whose next hop has no route, reports each such next hop, and takes them back when told', async () => {
    const peer = new Speaker({ asn: 65000, routerId: '10.9.0.1', listen: { port: 0, address: '127.0.0.1' } });
    peer.addPeer({ address: '127.0.0.1', asn: 64512, passive: true, holdTime: 9 });
    peer.originate('10.50.0.0/26', { nextHop: '10.77.0.5' });
    peer.originate('10.50.0.64/26', { nextHop: '10.77.0.5' });
    peer.originate('10.60.0.0/26', { nextHop: '10.88.0.5' });
    await peer.start();
    cleanup.push(() => peer.stop());
    const routed = new Set(['10.88.0.5']);
    const lines: string[] = [];
    const adapter = new BgpAdapter({
      logger: pino({ level: 'info' }, { write: (l: string) => lines.push(l) }),
      restarting: false,
      nextHopReachable: (a) => routed.has(a),
    });
    await adapter.start({
      name: 'n1',
      address: '127.0.0.1',
      routerId: '10.9.0.2',
      asNumber: 64512,
      listenPort: 0,
    });
    cleanup.push(() => adapter.stop({ graceful: false }));
    const p: DesiredPeer = {
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
    await adapter.addPeer(p);
    await until('the reachable path selected', () => adapter.rib().length === 1);
    expect(adapter.rib()).toEqual([{ prefix: '10.60.0.0/26', nextHops: ['10.88.0.5'], from: '127.0.0.1' }]);
    const c = adapter.unreachableNextHops();
    expect(c).toMatchObject([{ type: 'NextHopUnreachable', subject: '10.77.0.5', blocksReadiness: false }]);
    expect(c[0]!.message).toContain('10.50.0.0/26, 10.50.0.64/26');
    adapter.unreachableNextHops();
    expect(lines.filter((l) => l.includes('next hop has no route in the kernel'))).toHaveLength(1);
    // The kernel gets a route to 10.77.0.5: selected again, and the condition clears.
    routed.add('10.77.0.5');
    adapter.nextHopsChanged();
    expect(
      adapter
        .rib()
        .map((e) => e.prefix)
        .sort(),
    ).toEqual(['10.50.0.0/26', '10.50.0.64/26', '10.60.0.0/26']);
    expect(adapter.unreachableNextHops()).toEqual([]);
    expect(lines.filter((l) => l.includes('next hop has a route again'))).toHaveLength(1);
  });
});
