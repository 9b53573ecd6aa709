// A liveness detector (BFD) taking a session down: peerUnreachable / peerReachable (RFC 5882 §4.2,
// §4.3), driven by raw peers and the fake clock.
import { describe, expect, it } from 'vitest';
import { FakeClock } from './__fixtures__/clock.js';
import { baseAttrs, grCap, stopsSpeaker } from './__fixtures__/raw-session.js';
import { rawPeer, until } from './__fixtures__/rawpeer.js';
import { type PeerConfig, Speaker } from './speaker.js';
import type { Capability } from './wire/messages.js';

const track = stopsSpeaker();

const PEER = '10.0.0.1';
const US = '10.0.0.2';
const attrs = baseAttrs(65001, PEER);
const gr = grCap(120, [1]);

async function established(peer: Partial<PeerConfig>, caps: Capability[] = []) {
  const clock = new FakeClock();
  const s = new Speaker({ asn: 65000, routerId: US, clock });
  track(s);
  s.addPeer({ address: PEER, asn: 65001, passive: true, holdTime: 9, ...peer });
  await s.start();
  const p = rawPeer(s, PEER, US);
  p.open({ caps: [{ type: 'multiprotocol', afi: 1, safi: 1 }, ...caps] });
  p.keepalive();
  await until('established', () => s.peers()[0]?.state === 'established');
  p.announce({ withdrawn: [], attrs, nlri: ['10.244.1.0/26'] });
  await until('route', () => s.locRibSize === 1);
  return { s, p, clock };
}

describe('liveness detection (BFD) and the BGP session', () => {
  it('takes the session down at once with Cease/BFD Down, withdraws the routes, and waits for reachable', async () => {
    const { s, p } = await established({});
    expect(s.peerUnreachable(PEER, { reason: 'bfd-down' })).toBe(false);
    await until('session down', () => s.peers()[0]!.state !== 'established');
    expect(s.locRibSize).toBe(0);
    await until('NOTIFICATION', () => p.received.some((m) => m.type === 'notification'));
    expect(p.received.find((m) => m.type === 'notification')).toMatchObject({ code: 6, subcode: 10 });

    // While unreachable, a new connection from the peer is refused.
    const again = rawPeer(s, PEER, US);
    again.open();
    await until('refused', () => again.received.some((m) => m.type === 'notification'));
    expect(s.peers()[0]!.state).not.toBe('established');

    s.peerReachable(PEER);
    const back = rawPeer(s, PEER, US);
    back.open();
    back.keepalive();
    await until('established again', () => s.peers()[0]?.state === 'established');
  });

  it('keeps the routes stale when graceful restart was negotiated and the detector says graceful (C bit clear)', async () => {
    const { s } = await established({ gracefulRestart: { restartTime: 120 } }, [gr]);
    expect(s.peerUnreachable(PEER, { reason: 'bfd-down', graceful: true })).toBe(true);
    await until('session down', () => s.peers()[0]!.state !== 'established');
    expect(s.locRibSize).toBe(1);
    expect(s.peers()[0]!.staleRoutes).toBe(1);
  });

  it('withdraws at once despite graceful restart when the detector says the forwarding plane failed (C bit set)', async () => {
    const { s } = await established({ gracefulRestart: { restartTime: 120 } }, [gr]);
    expect(s.peerUnreachable(PEER, { reason: 'bfd-down', graceful: false })).toBe(false);
    await until('session down', () => s.peers()[0]!.state !== 'established');
    expect(s.locRibSize).toBe(0);
  });

  it('lets a restart under way go on when BFD goes Down with the C bit clear (RFC 5882 §4.3)', async () => {
    const { s, p, clock } = await established({ gracefulRestart: { restartTime: 120 } }, [gr]);
    p.conn.destroy();
    await until('restart: routes stale', () => s.peers()[0]!.staleRoutes === 1);
    expect(s.peerUnreachable(PEER, { reason: 'bfd-down', forwardingFailed: false })).toBe(true);
    expect(s.locRibSize).toBe(1);
    clock.advance(119_000);
    expect(s.peers()[0]!.staleRoutes).toBe(1);
    clock.advance(1_000);
    expect(s.locRibSize).toBe(0);
  });

  it('ends a restart under way when BFD goes Down with the C bit set: its forwarding failed too', async () => {
    const { s, p } = await established({ gracefulRestart: { restartTime: 120 } }, [gr]);
    p.conn.destroy();
    await until('restart: routes stale', () => s.peers()[0]!.staleRoutes === 1);
    expect(s.peerUnreachable(PEER, { reason: 'bfd-down', forwardingFailed: true })).toBe(false);
    expect(s.locRibSize).toBe(0);
    expect(s.peers()[0]!.staleRoutes).toBe(0);
  });
});
