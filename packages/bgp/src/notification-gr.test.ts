// RFC 8538 (Notification Message support for BGP Graceful Restart): with the N bit at both ends, a
// Hold Timer expiry or a NOTIFICATION keeps the peer's routes stale as a restart does, and only a
// Cease/Hard Reset ends the session hard. Raw peers and the fake clock.
import { describe, expect, it } from 'vitest';
import { FakeClock } from './__fixtures__/clock.js';
import { baseAttrs, grCap, stopsSpeaker } from './__fixtures__/raw-session.js';
import { rawPeer, until } from './__fixtures__/rawpeer.js';
import { Speaker } from './speaker.js';
import { type Capability, decodeMessage, encodeMessage } from './wire/messages.js';

const track = stopsSpeaker();

const PEER = '10.0.0.1';
const US = '10.0.0.2';
const attrs = baseAttrs(65001, PEER);
const gr = (notification: boolean): Capability => grCap(120, [1], notification);

async function established(ours: boolean, theirs: boolean) {
  const clock = new FakeClock();
  const s = new Speaker({ asn: 65000, routerId: US, clock });
  track(s);
  s.addPeer({
    address: PEER,
    asn: 65001,
    passive: true,
    holdTime: 9,
    gracefulRestart: { restartTime: 120, notification: ours },
  });
  await s.start();
  const p = rawPeer(s, PEER, US);
  p.open({ caps: [{ type: 'multiprotocol', afi: 1, safi: 1 }, gr(theirs)] });
  p.keepalive();
  await until('established', () => s.peers()[0]?.state === 'established');
  p.announce({ withdrawn: [], attrs, nlri: ['10.244.1.0/26'] });
  await until('route', () => s.locRibSize === 1);
  return { s, p, clock };
}

const notifications = (p: ReturnType<typeof rawPeer>) =>
  p.received.filter((m) => m.type === 'notification') as {
    code: number;
    subcode: number;
    data: Uint8Array;
  }[];

describe('RFC 8538: graceful restart after a NOTIFICATION or a Hold Timer expiry', () => {
  it('encodes and decodes the N bit of the Graceful Restart capability', () => {
    const open = encodeMessage({
      type: 'open',
      version: 4,
      myAs: 65000,
      holdTime: 9,
      bgpId: US,
      capabilities: [gr(true)],
    });
    // The capability's flags/restart time field: N (0x4000) | 120.
    expect(open.includes(Buffer.from([0x40, 0x06, 0x40, 0x78]))).toBe(true);
    const back = decodeMessage(open);
    expect(back.type === 'open' && back.capabilities).toContainEqual(gr(true));
  });

  it('keeps the routes stale for the restart time when the hold timer expires and both sent N', async () => {
    const { s, p, clock } = await established(true, true);
    clock.advance(10_000);
    await until('session down', () => s.peers()[0]!.state !== 'established');
    await until('NOTIFICATION', () => notifications(p).length > 0);
    expect(notifications(p)[0]).toMatchObject({ code: 4, subcode: 0 });
    expect(s.locRibSize).toBe(1);
    expect(s.peers()[0]!.staleRoutes).toBe(1);
    clock.advance(120_000);
    expect(s.locRibSize).toBe(0);
  });

  it.each([
    ['the peer did not send N', true, false],
    ['we did not send N', false, true],
  ])('withdraws at once on a hold timer expiry when %s', async (_w, ours, theirs) => {
    const { s, clock } = await established(ours, theirs);
    clock.advance(10_000);
    await until('session down', () => s.peers()[0]!.state !== 'established');
    expect(s.locRibSize).toBe(0);
  });

  it('keeps them on a NOTIFICATION received, but not on a Cease/Hard Reset', async () => {
    const first = await established(true, true);
    first.p.send(encodeMessage({ type: 'notification', code: 6, subcode: 4, data: new Uint8Array(0) }));
    await until('down', () => first.s.peers()[0]!.state !== 'established');
    expect(first.s.peers()[0]!.staleRoutes).toBe(1);
    await first.s.stop();
    const second = await established(true, true);
    second.p.send(encodeMessage({ type: 'notification', code: 6, subcode: 9, data: Buffer.from([6, 2]) }));
    await until('down', () => second.s.peers()[0]!.state !== 'established');
    expect(second.s.locRibSize).toBe(0);
    expect(second.s.peers()[0]!.staleRoutes).toBe(0);
  });

  it('sends Peer De-configured inside a Hard Reset when both sent N, and plain without', async () => {
    const withN = await established(true, true);
    withN.s.removePeer(PEER);
    await until('NOTIFICATION', () => notifications(withN.p).length > 0);
    const n = notifications(withN.p)[0]!;
    expect({ code: n.code, subcode: n.subcode, data: [...n.data] }).toEqual({
      code: 6,
      subcode: 9,
      data: [6, 3],
    });
    await withN.s.stop();
    const without = await established(true, false);
    without.s.removePeer(PEER);
    await until('NOTIFICATION', () => notifications(without.p).length > 0);
    expect(notifications(without.p)[0]).toMatchObject({ code: 6, subcode: 3 });
  });
});
