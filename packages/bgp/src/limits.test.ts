// What one peer can make the speaker hold: attribute sets only for accepted prefixes, a raw
// attribute cache bounded in bytes, and a default receive limit.
import { describe, expect, it } from 'vitest';
import { stopsSpeaker } from './__fixtures__/raw-session.js';
import { rawPeer, until } from './__fixtures__/rawpeer.js';
import { Speaker } from './speaker.js';
import type { PathAttr } from './wire/attributes.js';

const track = stopsSpeaker();

const attrs = (med: number): PathAttr[] => [
  { type: 'origin', value: 0 },
  { type: 'as-path', segments: [{ type: 'sequence', asns: [65001] }] },
  { type: 'next-hop', addr: '10.0.0.1' },
  { type: 'med', value: med },
];

async function established(
  opts: ConstructorParameters<typeof Speaker>[0],
  peer: Parameters<Speaker['addPeer']>[0],
) {
  const s = new Speaker(opts);
  track(s);
  s.addPeer(peer);
  await s.start();
  const p = rawPeer(s, peer.address, opts.routerId);
  p.open({ asn: peer.asn });
  p.keepalive();
  await until('established', () => s.peers()[0]?.state === 'established');
  return { s, p };
}

describe('attribute sets', () => {
  it('holds no attribute set for 20,000 UPDATEs whose prefixes the import filter rejects', async () => {
    const { s, p } = await established(
      { asn: 65000, routerId: '10.0.0.2', attrCacheBytes: 64 * 1024 },
      {
        address: '10.0.0.1',
        asn: 65001,
        passive: true,
        import: {
          prefixList: [{ prefix: '10.244.0.0/16', le: 32, action: 'accept' }],
          defaultAction: 'reject',
        },
      },
    );
    for (let i = 0; i < 20_000; i++)
      p.announce({ withdrawn: [], attrs: attrs(i), nlri: [`192.168.${i >> 8}.${i & 255}/32`] });
    await until('20,000 UPDATEs read', () => s.peers()[0]!.updatesIn === 20_000);
    expect(s.peers()[0]!.state).toBe('established');
    expect(s.peers()[0]!.prefixesReceived).toBe(0);
    expect(s.attributeSets).toBe(0);
    // Rejected attribute lists are not cached either.
    expect(s.peers()[0]!.attrCacheBytes).toBe(0);

    // The cache of accepted attribute lists stays within its byte budget.
    for (let i = 0; i < 2_000; i++)
      p.announce({
        withdrawn: [],
        attrs: attrs(100_000 + i),
        nlri: [`10.244.${i >> 6}.${(i & 63) << 2}/30`],
      });
    await until('2,000 routes', () => s.locRibSize === 2_000);
    expect(s.attributeSets).toBe(2_000);
    expect(s.peers()[0]!.attrCacheBytes).toBeGreaterThan(32 * 1024);
    expect(s.peers()[0]!.attrCacheBytes).toBeLessThanOrEqual(64 * 1024);
    const all = Array.from({ length: 2_000 }, (_, i) => `10.244.${i >> 6}.${(i & 63) << 2}/30`);
    for (let i = 0; i < all.length; i += 500)
      p.announce({ withdrawn: all.slice(i, i + 500), attrs: [], nlri: [] });
    await until('withdrawn', () => s.locRibSize === 0);
    expect(s.attributeSets).toBe(0);

    // Accepted prefixes intern their set; it goes with the last prefix that uses it.
    p.announce({ withdrawn: [], attrs: attrs(7), nlri: ['10.244.1.0/26', '10.244.2.0/26'] });
    p.announce({ withdrawn: [], attrs: attrs(8), nlri: ['10.244.3.0/26'] });
    await until('three routes', () => s.locRibSize === 3);
    expect(s.attributeSets).toBe(2);
    p.announce({ withdrawn: ['10.244.1.0/26', '10.244.3.0/26'], attrs: [], nlri: [] });
    await until('one route', () => s.locRibSize === 1);
    expect(s.attributeSets).toBe(1);
    p.announce({ withdrawn: ['10.244.2.0/26'], attrs: [], nlri: [] });
    await until('no route', () => s.locRibSize === 0);
    expect(s.attributeSets).toBe(0);
  });

  it('takes the accepted prefixes of an UPDATE that mixes them with rejected ones, and withdraws the rejected', async () => {
    const { s, p } = await established(
      { asn: 65000, routerId: '10.0.0.2' },
      {
        address: '10.0.0.1',
        asn: 65001,
        passive: true,
        import: {
          prefixList: [
            { prefix: '10.244.7.0/24', le: 32, action: 'reject' },
            { prefix: '10.244.0.0/16', ge: 24, le: 32, action: 'accept' },
          ],
          defaultAction: 'reject',
        },
      },
    );
    // Rejected first (outside the list, too short, the rejected /24), the accepted ones last.
    p.announce({
      withdrawn: [],
      attrs: attrs(1),
      nlri: [
        '192.168.0.0/24',
        '10.244.0.0/16',
        '10.244.7.128/25',
        '10.0.0.0/8',
        '10.244.1.0/26',
        '10.244.255.255/32',
      ],
    });
    await until('two routes', () => s.locRibSize === 2);
    expect(
      s
        .locRib()
        .map((r) => r.prefix)
        .sort(),
    ).toEqual(['10.244.1.0/26', '10.244.255.255/32']);
    expect(s.lookup('10.244.1.0/26')!.attrs.med).toBe(1);
    expect(s.attributeSets).toBe(1);
    // An UPDATE whose prefixes are all rejected builds nothing and leaves what was accepted alone.
    p.announce({ withdrawn: [], attrs: attrs(2), nlri: ['10.244.7.0/24', '172.16.0.0/12'] });
    p.announce({ withdrawn: [], attrs: attrs(3), nlri: ['10.244.2.0/24'] });
    await until('three routes', () => s.locRibSize === 3);
    expect(s.attributeSets).toBe(2);
    expect(s.peers()[0]!.prefixesReceived).toBe(3);
  });
});

describe('attributes from an external peer', () => {
  it('discards ORIGINATOR_ID and CLUSTER_LIST from an eBGP peer and never passes them on', async () => {
    // ORIGINATOR_ID = our router ID would make the route look like a reflection loop if kept.
    const { s, p } = await established(
      { asn: 65000, routerId: '10.0.0.2', clusterId: '10.0.0.2' },
      { address: '10.0.0.1', asn: 65001, passive: true },
    );
    p.announce({
      withdrawn: [],
      attrs: [
        ...attrs(1),
        { type: 'originator-id', id: '10.0.0.2' },
        { type: 'cluster-list', ids: ['10.0.0.2'] },
      ],
      nlri: ['10.244.1.0/26'],
    });
    await until('route', () => s.locRibSize === 1);
    const r = s.lookup('10.244.1.0/26')!;
    expect(r.attrs.originatorId).toBeUndefined();
    expect(r.attrs.clusterList).toBeUndefined();
  });
});

describe('receive limit', () => {
  it('applies the default limit to a peer without maxPrefixes: Cease 6/1, a log line and a counter', async () => {
    const warned: unknown[] = [];
    const logger = {
      debug() {},
      info() {},
      warn(o: unknown) {
        warned.push(o);
      },
      error() {},
      child() {
        return logger;
      },
    };
    const { s, p } = await established(
      { asn: 65000, routerId: '10.0.0.2', defaultMaxPrefixes: 100, logger },
      { address: '10.0.0.1', asn: 65001, passive: true },
    );
    const events: unknown[] = [];
    s.on('max-prefixes', (e) => events.push(e));
    expect(s.peers()[0]!.maxPrefixes).toBe(100);
    const nlri = Array.from({ length: 101 }, (_, i) => `10.244.${i}.0/24`);
    p.announce({ withdrawn: [], attrs: attrs(1), nlri: nlri.slice(0, 100) });
    await until('100 routes', () => s.locRibSize === 100);
    expect(p.received.some((m) => m.type === 'notification')).toBe(false);
    p.announce({ withdrawn: [], attrs: attrs(1), nlri: nlri.slice(100) });
    await until('NOTIFICATION', () => p.received.some((m) => m.type === 'notification'));
    // RFC 4486: data = AFI, SAFI, the limit.
    expect(p.received.find((m) => m.type === 'notification')).toMatchObject({
      code: 6,
      subcode: 1,
      data: Uint8Array.of(0, 1, 1, 0, 0, 0, 100),
    });
    await until('routes dropped', () => s.locRibSize === 0);
    expect(s.peers()[0]!.maxPrefixesExceeded).toBe(1);
    expect(events).toEqual([{ key: '10.0.0.1:179', address: '10.0.0.1', port: 179, limit: 100 }]);
    expect(warned).toContainEqual(
      expect.objectContaining({ event: 'max-prefixes', peer: '10.0.0.1:179', limit: 100 }),
    );
  });
});
