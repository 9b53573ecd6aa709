// RFC 4271 §9.1.2.1: a path whose NEXT_HOP cannot be resolved is not a candidate for best path.
// The speaker asks `nextHopReachable`, and selects again when told the answer may have changed.
import { describe, expect, it } from 'vitest';
import { MemNet } from './__fixtures__/memnet.js';
import { memSpeakers } from './__fixtures__/speakers.js';
import { until } from './__fixtures__/until.js';
import type { RibChange } from './speaker.js';

const speakers = memSpeakers();
const mk = speakers.make;

describe('next-hop reachability in best-path selection', () => {
  it('leaves out paths whose next hop is unreachable, and selects again on nextHopsChanged', async () => {
    const net = new MemNet();
    const unreachable = new Set<string>(['10.0.0.1']);
    const r = mk(net, '10.0.0.9', 65000, { nextHopReachable: (a) => !unreachable.has(a) });
    const x = mk(net, '10.0.0.1', 65001);
    const y = mk(net, '10.0.0.2', 65002);
    for (const [s, addr] of [
      [x, '10.0.0.1'],
      [y, '10.0.0.2'],
    ] as const) {
      s.addPeer({ address: '10.0.0.9', asn: 65000, holdTime: 9, connectRetry: 1 });
      r.addPeer({ address: addr, asn: s.asn, holdTime: 9, passive: true });
    }
    const changes: RibChange[] = [];
    r.on('bestpath', (c: RibChange) => changes.push(c));
    x.originate('10.50.0.0/16');
    y.originate('10.50.0.0/16');
    x.originate('10.60.0.0/16');
    await Promise.all([r.start(), x.start(), y.start()]);
    await until(
      'both paths received',
      () => r.adjRibIn('10.0.0.1').length === 2 && r.adjRibIn('10.0.0.2').length === 1,
    );
    // x's next hop has no route: y's path alone, and x's only path is no best path at all.
    expect(r.lookup('10.50.0.0/16')?.nextHops).toEqual(['10.0.0.2']);
    expect(r.lookup('10.60.0.0/16')).toBeUndefined();
    // A route to x appears: both paths again (ECMP), and x's other prefix.
    unreachable.delete('10.0.0.1');
    changes.length = 0;
    r.nextHopsChanged();
    expect(r.lookup('10.50.0.0/16')?.nextHops).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(r.lookup('10.60.0.0/16')?.nextHops).toEqual(['10.0.0.1']);
    expect(changes.map((c) => `${c.type} ${c.prefix}`).sort()).toEqual([
      'added 10.60.0.0/16',
      'changed 10.50.0.0/16',
    ]);
    // Both go: nothing is selected; the paths stay in the Adj-RIB-In for when a route returns.
    unreachable.add('10.0.0.1').add('10.0.0.2');
    r.nextHopsChanged();
    expect(r.locRibSize).toBe(0);
    expect(r.adjRibIn('10.0.0.2')).toHaveLength(1);
  });

  it('selects every path without the hook (the default)', async () => {
    const net = new MemNet();
    const r = mk(net, '10.0.0.9', 65000);
    const x = mk(net, '10.0.0.1', 65001);
    x.addPeer({ address: '10.0.0.9', asn: 65000, holdTime: 9, connectRetry: 1 });
    r.addPeer({ address: '10.0.0.1', asn: 65001, holdTime: 9, passive: true });
    x.originate('10.50.0.0/16');
    await Promise.all([r.start(), x.start()]);
    await until('route at r', () => r.locRibSize === 1);
    r.nextHopsChanged();
    expect(r.lookup('10.50.0.0/16')?.nextHops).toEqual(['10.0.0.1']);
  });
});
