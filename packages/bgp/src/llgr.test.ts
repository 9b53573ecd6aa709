// Long-Lived Graceful Restart (RFC 9494) as the receiving speaker, driven by raw peers and the
// fake clock: routes of a peer gone past its restart time stay as LLGR_STALE for its stale time.
import { describe, expect, it } from 'vitest';
import { FakeClock } from './__fixtures__/clock.js';
import { grCap, mp, stopsSpeaker } from './__fixtures__/raw-session.js';
import { type RawPeer, rawPeer, until } from './__fixtures__/rawpeer.js';
import { type PeerConfig, Speaker } from './speaker.js';
import type { PathAttr } from './wire/attributes.js';
import { BgpConfigError } from './wire/errors.js';
import type { Capability, OpenMessage, UpdateMessage } from './wire/messages.js';

const track = stopsSpeaker();

const US = '10.0.0.100';
const A = '10.0.0.1';
const LLGR_STALE = 0xffff0006;
const NO_LLGR = 0xffff0007;
const llgrCap = (staleTime: number, afis: number[]): Capability => ({
  type: 'long-lived-graceful-restart',
  families: afis.map((afi) => ({ afi, safi: 1, forwardingPreserved: true, staleTime })),
});
const attrs = (asn: number, nextHop: string, communities: number[] = []): PathAttr[] => [
  { type: 'origin', value: 0 },
  { type: 'as-path', segments: [{ type: 'sequence', asns: [asn] }] },
  { type: 'next-hop', addr: nextHop },
  ...(communities.length ? [{ type: 'communities' as const, values: communities }] : []),
];
const GR = { gracefulRestart: { restartTime: 120 } };
const LLGR = { ...GR, longLivedGracefulRestart: { staleTime: 3600 } };

function newSpeaker(peers: Partial<PeerConfig>[]) {
  const clock = new FakeClock();
  const s = new Speaker({ asn: 65000, routerId: US, clock });
  track(s);
  for (const [i, p] of peers.entries())
    s.addPeer({ address: `10.0.0.${i + 1}`, asn: 65001 + i, passive: true, holdTime: 0, ...p });
  return { s, clock };
}

async function session(s: Speaker, addr: string, asn: number, caps: Capability[]): Promise<RawPeer> {
  const p = rawPeer(s, addr, US);
  // Hold time 0: the fake clock runs for minutes while the sessions of the other peers stay up.
  p.open({ asn, holdTime: 0, caps: [...mp, ...caps] });
  p.keepalive();
  await until(
    `${addr} established`,
    () => s.peers().find((x) => x.address === addr)?.state === 'established',
  );
  return p;
}

const communitiesOf = (s: Speaker, prefix: string) => s.lookup(prefix)?.attrs.communities ?? [];
const updates = (p: RawPeer) => p.received.filter((m): m is UpdateMessage => m.type === 'update');

/** A's routes: a plain one, one with NO_LLGR, and an IPv6 one. */
async function announceA(s: Speaker, a: RawPeer) {
  a.announce({ withdrawn: [], attrs: attrs(65001, A), nlri: ['10.244.1.0/26'] });
  a.announce({ withdrawn: [], attrs: attrs(65001, A, [NO_LLGR]), nlri: ['10.244.2.0/26'] });
  a.announce({
    withdrawn: [],
    attrs: [
      { type: 'origin', value: 0 },
      { type: 'as-path', segments: [{ type: 'sequence', asns: [65001] }] },
      { type: 'mp-reach', afi: 2, safi: 1, nextHops: ['fd00::1'], nlri: ['fd00:10::/64'] },
    ],
    nlri: [],
  });
  await until('A routes', () => s.locRibSize === 3);
}

async function kill(s: Speaker, p: RawPeer, addr = A) {
  p.conn.destroy();
  await until('session down', () => s.peers().find((x) => x.address === addr)!.state !== 'established');
}

describe('long-lived graceful restart (receiving speaker)', () => {
  it('keeps routes as LLGR_STALE past the restart time for the stale time; NO_LLGR routes go', async () => {
    const { s, clock } = newSpeaker([LLGR]);
    await s.start();
    const a = await session(s, A, 65001, [grCap(60, [1, 2]), llgrCap(1000, [1, 2])]);
    await announceA(s, a);
    await kill(s, a);
    expect(s.lookup('10.244.1.0/26')?.stale).toBe(true);
    expect(communitiesOf(s, '10.244.1.0/26')).not.toContain('65535:6');
    clock.advance(59_000);
    expect(s.locRibSize).toBe(3);
    clock.advance(2_000);
    // Restart time over: long-lived stale, marked; the NO_LLGR route is gone.
    expect(communitiesOf(s, '10.244.1.0/26')).toContain('65535:6');
    expect(communitiesOf(s, 'fd00:10::/64')).toContain('65535:6');
    expect(s.lookup('10.244.2.0/26')).toBeUndefined();
    clock.advance(998_000);
    expect(s.lookup('10.244.1.0/26')?.stale).toBe(true);
    expect(s.locRibSize).toBe(2);
    clock.advance(2_000);
    expect(s.locRibSize).toBe(0);
    expect(s.peers()[0]!.staleRoutes).toBe(0);
  });

  it('caps the peer stale time with maxLongLivedStaleTime', async () => {
    const { s, clock } = newSpeaker([{ ...LLGR, maxLongLivedStaleTime: 100 }]);
    await s.start();
    const a = await session(s, A, 65001, [grCap(60, [1, 2]), llgrCap(100_000, [1, 2])]);
    await announceA(s, a);
    await kill(s, a);
    clock.advance(61_000);
    expect(s.locRibSize).toBe(2);
    clock.advance(98_000);
    expect(s.locRibSize).toBe(2);
    clock.advance(2_000);
    expect(s.locRibSize).toBe(0);
  });

  it.each([
    ['we do not send the capability', GR, [grCap(60, [1, 2]), llgrCap(1000, [1, 2])]],
    ['the peer does not send it', LLGR, [grCap(60, [1, 2])]],
    ['the peer sends it without graceful restart', LLGR, [llgrCap(1000, [1, 2])]],
  ])('removes the routes at the restart time when %s', async (_when, cfg, caps) => {
    const { s, clock } = newSpeaker([cfg]);
    await s.start();
    const a = await session(s, A, 65001, caps);
    await announceA(s, a);
    await kill(s, a);
    clock.advance(61_000);
    expect(s.locRibSize).toBe(0);
  });

  it('goes long-lived stale at once when graceful restart does not keep a family (restart time 0, or not listed)', async () => {
    const { s, clock } = newSpeaker([LLGR]);
    await s.start();
    const a = await session(s, A, 65001, [grCap(0, [1, 2]), llgrCap(1000, [1, 2])]);
    await announceA(s, a);
    await kill(s, a);
    expect(communitiesOf(s, '10.244.1.0/26')).toContain('65535:6');
    expect(s.lookup('10.244.2.0/26')).toBeUndefined();
    clock.advance(1_001_000);
    expect(s.locRibSize).toBe(0);

    const b = await session(s, A, 65001, [grCap(60, [2]), llgrCap(1000, [1])]);
    await announceA(s, b);
    await kill(s, b);
    // IPv4: not in the GR capability, so long-lived at once; IPv6: GR for 60 s, no LLGR after.
    expect(communitiesOf(s, '10.244.1.0/26')).toContain('65535:6');
    expect(communitiesOf(s, 'fd00:10::/64')).not.toContain('65535:6');
    clock.advance(61_000);
    expect(s.lookup('fd00:10::/64')).toBeUndefined();
    expect(s.lookup('10.244.1.0/26')?.stale).toBe(true);
  });

  it('End-of-RIB from the returning peer clears the LLGR_STALE routes it did not re-send', async () => {
    const { s, clock } = newSpeaker([LLGR]);
    await s.start();
    const a = await session(s, A, 65001, [grCap(60, [1, 2]), llgrCap(1000, [1, 2])]);
    await announceA(s, a);
    await kill(s, a);
    clock.advance(61_000);
    expect(s.locRibSize).toBe(2);
    const back = await session(s, A, 65001, [grCap(60, [1, 2]), llgrCap(1000, [1, 2])]);
    back.announce({ withdrawn: [], attrs: attrs(65001, A), nlri: ['10.244.1.0/26'] });
    back.announce({ withdrawn: [], attrs: [], nlri: [] });
    back.announce({
      withdrawn: [],
      attrs: [{ type: 'mp-unreach', afi: 2, safi: 1, withdrawn: [] }],
      nlri: [],
    });
    await until('IPv6 stale route gone', () => s.lookup('fd00:10::/64') === undefined);
    expect(s.lookup('10.244.1.0/26')?.stale).toBe(false);
    expect(communitiesOf(s, '10.244.1.0/26')).not.toContain('65535:6');
    expect(s.peers()[0]!.staleRoutes).toBe(0);
  });

  it('prefers any other path, and re-advertises LLGR_STALE routes only to peers with LLGR (with the community)', async () => {
    // A dies; B has LLGR, C does not. Then C announces a worse path for the same prefix.
    const { s, clock } = newSpeaker([LLGR, LLGR, GR]);
    await s.start();
    const a = await session(s, A, 65001, [grCap(60, [1, 2]), llgrCap(1000, [1, 2])]);
    const b = await session(s, '10.0.0.2', 65002, [grCap(60, [1, 2]), llgrCap(1000, [1, 2])]);
    const c = await session(s, '10.0.0.3', 65003, [grCap(60, [1, 2])]);
    await announceA(s, a);
    const has = (p: RawPeer, prefix: string, pred: (u: UpdateMessage) => boolean = () => true) =>
      updates(p).some((u) => u.nlri.includes(prefix) && pred(u));
    await until('B and C get the route', () => has(b, '10.244.1.0/26') && has(c, '10.244.1.0/26'));
    await kill(s, a);
    clock.advance(61_000);
    const stale = (u: UpdateMessage) =>
      u.attrs.some((x) => x.type === 'communities' && x.values.includes(LLGR_STALE));
    await until('B gets it again with LLGR_STALE', () => has(b, '10.244.1.0/26', stale));
    await until('C gets a withdrawal', () => updates(c).some((u) => u.withdrawn.includes('10.244.1.0/26')));
    expect(s.adjRibOut('10.0.0.3').map((r) => r.prefix)).not.toContain('10.244.1.0/26');
    // A longer AS path, but not stale: it wins.
    c.announce({
      withdrawn: [],
      attrs: [
        { type: 'origin', value: 2 },
        { type: 'as-path', segments: [{ type: 'sequence', asns: [65003, 1, 2, 3] }] },
        { type: 'next-hop', addr: '10.0.0.3' },
      ],
      nlri: ['10.244.1.0/26'],
    });
    await until('C path is best', () => s.lookup('10.244.1.0/26')?.from === '10.0.0.3');
    await until('B gets the fresh path without LLGR_STALE', () =>
      s
        .adjRibOut('10.0.0.2')
        .some((r) => r.prefix === '10.244.1.0/26' && !r.attrs.communities?.includes('65535:6')),
    );
  });

  it('sends the capability with its stale time for every family only when configured, beside graceful restart', async () => {
    const capOf = (p: RawPeer) =>
      (p.received.find((m) => m.type === 'open') as OpenMessage).capabilities.find(
        (c) => c.type === 'long-lived-graceful-restart',
      );
    const { s } = newSpeaker([
      { gracefulRestart: { restartTime: 0 }, longLivedGracefulRestart: { staleTime: 86400 } },
      GR,
    ]);
    await s.start();
    const a = await session(s, A, 65001, [grCap(60, [1, 2])]);
    expect(capOf(a)).toEqual({
      type: 'long-lived-graceful-restart',
      families: [
        { afi: 1, safi: 1, forwardingPreserved: false, staleTime: 86400 },
        { afi: 2, safi: 1, forwardingPreserved: false, staleTime: 86400 },
      ],
    });
    const b = await session(s, '10.0.0.2', 65002, [grCap(60, [1, 2])]);
    expect(capOf(b)).toBeUndefined();
  });

  it.each([
    [{ longLivedGracefulRestart: { staleTime: 60 } }, 'longLivedGracefulRestart'],
    [{ ...GR, longLivedGracefulRestart: { staleTime: 0 } }, 'longLivedGracefulRestart.staleTime'],
    [{ ...GR, longLivedGracefulRestart: { staleTime: 0x1000000 } }, 'longLivedGracefulRestart.staleTime'],
    [{ ...LLGR, maxLongLivedStaleTime: -1 }, 'maxLongLivedStaleTime'],
    [{ gracefulRestart: { restartTime: 0 } }, 'gracefulRestart.restartTime'],
  ])('rejects %j naming %s', (cfg, field) => {
    const s = new Speaker({ asn: 65000, routerId: US });
    try {
      s.addPeer({ address: A, asn: 65001, ...cfg });
      expect.unreachable('addPeer accepted it');
    } catch (e) {
      expect(e).toBeInstanceOf(BgpConfigError);
      expect((e as BgpConfigError).field).toBe(field);
    }
  });
});
