// The BGP adapter with next-hop reachability: a path whose next hop has no route is not a best
// path (so no route is computed for it) and shows as a NextHopUnreachable condition until the
// kernel has a route to it. A real bgp-ts speaker over loopback TCP announces the path.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loopbackPeer, startAdapter, torPeer } from '../__fixtures__/loopback-peer.js';
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
    const peer = await loopbackPeer({
      '10.50.0.0/26': '10.77.0.5',
      '10.50.0.64/26': '10.77.0.5',
      '10.60.0.0/26': '10.88.0.5',
    });
    cleanup.push(() => peer.stop());
    const routed = new Set(['10.88.0.5']);
    const lines: string[] = [];
    const adapter = new BgpAdapter({
      logger: pino({ level: 'info' }, { write: (l: string) => lines.push(l) }),
      restarting: false,
      nextHopReachable: (a) => routed.has(a),
    });
    await startAdapter(adapter);
    cleanup.push(() => adapter.stop({ graceful: false }));
    await adapter.addPeer(torPeer(peer));
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
