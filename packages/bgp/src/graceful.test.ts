// Graceful restart as helper (RFC 4724 §4.2) and as restarting speaker (§4.1), driven by raw
// peers and the fake clock.
import { describe, expect, it } from 'vitest';
import { FakeClock } from './__fixtures__/clock.js';
import { baseAttrs, grCap, mp, stopsSpeaker } from './__fixtures__/raw-session.js';
import { rawPeer, until } from './__fixtures__/rawpeer.js';
import { type PeerConfig, Speaker, type SpeakerOptions } from './speaker.js';
import type { Capability, OpenMessage } from './wire/messages.js';

const track = stopsSpeaker();

const PEER = '10.0.0.1';
const US = '10.0.0.2';
const base = baseAttrs(65001);

function speakerWith(peer: Partial<PeerConfig>, opts: Partial<SpeakerOptions> = {}) {
  const clock = new FakeClock();
  const s = new Speaker({ asn: 65000, routerId: US, clock, ...opts });
  track(s);
  s.addPeer({ address: PEER, asn: 65001, passive: true, holdTime: 9, ...peer });
  return { s, clock };
}

async function session(s: Speaker, caps: Capability[]) {
  const p = rawPeer(s, PEER, US);
  p.open({ caps: [...mp, ...caps] });
  p.keepalive();
  await until('established', () => s.peers()[0]?.state === 'established');
  return p;
}

function announceBoth(p: ReturnType<typeof rawPeer>) {
  p.announce({ withdrawn: [], attrs: [...base, { type: 'next-hop', addr: PEER }], nlri: ['10.244.1.0/26'] });
  p.announce({
    withdrawn: [],
    attrs: [...base, { type: 'mp-reach', afi: 2, safi: 1, nextHops: ['fd00::1'], nlri: ['fd00:10::/64'] }],
    nlri: [],
  });
}

describe('graceful restart helper', () => {
  it.each([
    ['when our graceful restart is off, whatever the peer announces', {}],
    ['when the peer lists no family in its capability', { gracefulRestart: { restartTime: 120 } }],
  ])('drops the routes at once %s', async (_when, opts) => {
    const { s } = speakerWith(opts);
    await s.start();
    const p = await session(s, [grCap(4095, [])]);
    announceBoth(p);
    await until('routes', () => s.locRibSize === 2);
    p.conn.destroy();
    await until('session down', () => s.peers()[0]!.state !== 'established');
    expect(s.locRibSize).toBe(0);
    expect(s.peers()[0]!.staleRoutes).toBe(0);
  });

  it('keeps only the listed families stale, for the restart time capped by maxRestartTime', async () => {
    const { s, clock } = speakerWith({ gracefulRestart: { restartTime: 120 }, maxRestartTime: 60 });
    await s.start();
    const p = await session(s, [grCap(4095, [1])]);
    announceBoth(p);
    await until('routes', () => s.locRibSize === 2);
    p.conn.destroy();
    await until('session down', () => s.peers()[0]!.state !== 'established');
    expect(s.lookup('10.244.1.0/26')?.stale).toBe(true);
    expect(s.lookup('fd00:10::/64')).toBeUndefined();
    clock.advance(59_000);
    expect(s.lookup('10.244.1.0/26')?.stale).toBe(true);
    clock.advance(2_000);
    expect(s.locRibSize).toBe(0);
  });

  it('takes a new connection from an Established peer with graceful restart as its restart, not a collision', async () => {
    const { s } = speakerWith({ gracefulRestart: { restartTime: 120 } });
    await s.start();
    const first = await session(s, [grCap(120, [1, 2])]);
    announceBoth(first);
    await until('routes', () => s.locRibSize === 2);
    const second = rawPeer(s, PEER, US);
    await until('old connection closed', () => first.conn.closed);
    expect(first.received.some((m) => m.type === 'notification')).toBe(false);
    expect(s.lookup('10.244.1.0/26')?.stale).toBe(true);
    second.open({ caps: [...mp, grCap(120, [1, 2])] });
    second.keepalive();
    await until('established again', () => s.peers()[0]!.state === 'established');
    expect(second.received.map((m) => m.type)).toContain('open');
    expect(second.received.some((m) => m.type === 'notification')).toBe(false);
    // The restarted peer announces only the IPv4 route, then End-of-RIB for both families.
    second.announce({
      withdrawn: [],
      attrs: [...base, { type: 'next-hop', addr: PEER }],
      nlri: ['10.244.1.0/26'],
    });
    second.announce({ withdrawn: [], attrs: [], nlri: [] });
    second.announce({
      withdrawn: [],
      attrs: [{ type: 'mp-unreach', afi: 2, safi: 1, withdrawn: [] }],
      nlri: [],
    });
    await until('stale IPv6 route gone', () => s.locRibSize === 1);
    expect(s.lookup('10.244.1.0/26')?.stale).toBe(false);
  });
});

describe('graceful restart as the restarting speaker', () => {
  const grOf = (m: unknown) =>
    (m as OpenMessage).capabilities.find((c) => c.type === 'graceful-restart') as Extract<
      Capability,
      { type: 'graceful-restart' }
    >;

  it('sets the R bit only in the first OPEN after our restart, and F only for the families kept', async () => {
    const { s } = speakerWith(
      { gracefulRestart: { restartTime: 120 } },
      { restarting: true, forwardingPreserved: [1] },
    );
    await s.start();
    const first = await session(s, [grCap(120, [1, 2])]);
    const gr = grOf(first.received.find((m) => m.type === 'open'));
    expect(gr.restarting).toBe(true);
    expect(gr.families).toEqual([
      { afi: 1, safi: 1, forwardingPreserved: true },
      { afi: 2, safi: 1, forwardingPreserved: false },
    ]);
    first.conn.destroy();
    await until('session down', () => s.peers()[0]!.state !== 'established');
    const second = await session(s, [grCap(120, [1, 2])]);
    const again = grOf(second.received.find((m) => m.type === 'open'));
    expect(again.restarting).toBe(false);
    expect(again.families.every((f) => !f.forwardingPreserved)).toBe(true);
  });

  it('sets neither the R bit nor F bits on a first start', async () => {
    const { s } = speakerWith({ gracefulRestart: { restartTime: 120 } });
    await s.start();
    const p = await session(s, [grCap(120, [1, 2])]);
    const gr = grOf(p.received.find((m) => m.type === 'open'));
    expect(gr.restarting).toBe(false);
    expect(gr.families.every((f) => !f.forwardingPreserved)).toBe(true);
  });
});
