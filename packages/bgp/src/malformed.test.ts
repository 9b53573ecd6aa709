// A speaker fed malformed UPDATEs by a raw peer: RFC 7606 actions apply per UPDATE, the process
// keeps running and the RIB keeps exactly what it should.
import { describe, expect, it } from 'vitest';
import { stopsSpeaker } from './__fixtures__/raw-session.js';
import { rawPeer, until } from './__fixtures__/rawpeer.js';
import { Speaker } from './speaker.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const M = 'ffffffffffffffffffffffffffffffff';
function rawUpdate(attrs: string, nlri: string): Buffer {
  const a = hex(attrs);
  const n = hex(nlri);
  const body = Buffer.concat([hex('0000'), Buffer.from([a.length >> 8, a.length & 255]), a, n]);
  return Buffer.concat([hex(M), Buffer.from([(body.length + 19) >> 8, (body.length + 19) & 255, 2]), body]);
}
const good = '40 01 01 00  40 02 06 02 01 0000fde9  40 03 04 0a000001';

const track = stopsSpeaker();

async function connect() {
  const s = new Speaker({ asn: 65000, routerId: '10.0.0.2' });
  track(s);
  s.addPeer({ address: '10.0.0.1', asn: 65001, passive: true, holdTime: 9 });
  await s.start();
  const peer = rawPeer(s, '10.0.0.1', '10.0.0.2');
  peer.open({ asn: 65001, holdTime: 9 });
  peer.keepalive();
  await until('established', () => s.peers()[0]?.state === 'established');
  return { s, send: peer.send, announce: peer.announce, received: peer.received };
}

describe('malformed UPDATEs from a peer', () => {
  it('treat-as-withdraw removes only the prefixes of the bad UPDATE and keeps the session', async () => {
    const { s, send } = await connect();
    send(rawUpdate(good, '18 0a0100  18 0a0200'));
    await until('two routes', () => s.locRibSize === 2);
    send(rawUpdate('40 01 01 05  40 02 00  40 03 04 0a000001', '18 0a0100'));
    await until('10.1.0.0/24 withdrawn', () => !s.lookup('10.1.0.0/24'));
    expect(s.lookup('10.2.0.0/24')).toBeDefined();
    expect(s.peers()[0]!.state).toBe('established');
  });

  it('uses NEXT_HOP for classic NLRI and the MP_REACH next hop for MP NLRI in one UPDATE', async () => {
    const { s, announce } = await connect();
    const base = [
      { type: 'origin' as const, value: 0 },
      { type: 'as-path' as const, segments: [{ type: 'sequence' as const, asns: [65001] }] },
      { type: 'next-hop' as const, addr: '10.0.0.1' },
    ];
    announce({
      withdrawn: [],
      attrs: [
        ...base,
        { type: 'mp-reach', afi: 2, safi: 1, nextHops: ['fd00::1', 'fe80::1'], nlri: ['2001:db8:9::/48'] },
      ],
      nlri: ['10.10.0.0/16'],
    });
    announce({
      withdrawn: [],
      attrs: [
        ...base.slice(0, 2),
        { type: 'mp-reach', afi: 1, safi: 1, nextHops: ['10.0.0.7'], nlri: ['10.11.0.0/16'] },
      ],
      nlri: [],
    });
    await until('three routes', () => s.locRibSize === 3);
    expect(s.lookup('10.10.0.0/16')!.nextHops).toEqual(['10.0.0.1']);
    expect(s.lookup('2001:db8:9::/48')!.nextHops).toEqual(['fd00::1']);
    expect(s.lookup('2001:db8:9::/48')!.attrs.linkLocalNextHop).toBe('fe80::1');
    expect(s.lookup('10.11.0.0/16')!.nextHops).toEqual(['10.0.0.7']);
    announce({
      withdrawn: [],
      attrs: [{ type: 'mp-unreach', afi: 2, safi: 1, withdrawn: ['2001:db8:9::/48'] }],
      nlri: [],
    });
    await until('IPv6 route withdrawn', () => s.locRibSize === 2);
  });

  it('treats NLRI without any path attribute as withdrawn', async () => {
    const { s, send } = await connect();
    send(rawUpdate(good, '18 0a0500  18 0a0600'));
    await until('routes', () => s.locRibSize === 2);
    send(rawUpdate('', '18 0a0500'));
    await until('10.5.0.0/24 withdrawn', () => !s.lookup('10.5.0.0/24'));
    expect(s.lookup('10.6.0.0/24')).toBeDefined();
    expect(s.peers()[0]!.state).toBe('established');
  });

  it('ignores routes whose NEXT_HOP is 0.0.0.0 or multicast', async () => {
    const { s, send } = await connect();
    send(rawUpdate('40 01 01 00  40 02 06 02 01 0000fde9  40 03 04 00000000', '18 0a0700'));
    send(rawUpdate('40 01 01 00  40 02 06 02 01 0000fde9  40 03 04 e0000001', '18 0a0800'));
    send(rawUpdate(good, '18 0a0900'));
    await until('good route', () => !!s.lookup('10.9.0.0/24'));
    expect(s.locRibSize).toBe(1);
  });

  it('attribute-discard installs the route without the bad attribute', async () => {
    const { s, send } = await connect();
    send(rawUpdate(`${good} 40 06 01 00`, '18 0a0300'));
    await until('route', () => !!s.lookup('10.3.0.0/24'));
    expect(s.lookup('10.3.0.0/24')!.attrs.atomicAggregate).toBeUndefined();
    expect(s.peers()[0]!.state).toBe('established');
  });

  it('resets the session with UPDATE/Invalid Network Field and drops the peer routes on bad NLRI', async () => {
    const { s, send, received } = await connect();
    send(rawUpdate(good, '18 0a0400'));
    await until('route', () => !!s.lookup('10.4.0.0/24'));
    send(rawUpdate(good, '21 0a000000 00'));
    await until('NOTIFICATION', () => received.some((m) => m.type === 'notification'));
    expect(received.find((m) => m.type === 'notification')).toMatchObject({ code: 3, subcode: 10 });
    await until('routes dropped', () => s.locRibSize === 0);
    expect(s.peers()[0]!.state).not.toBe('established');
  });

  it('answers garbage after Established with MESSAGE_HEADER/Connection Not Synchronized', async () => {
    const { s, send, received } = await connect();
    send(Buffer.alloc(40, 0x00));
    await until('NOTIFICATION', () => received.some((m) => m.type === 'notification'));
    expect(received.find((m) => m.type === 'notification')).toMatchObject({ code: 1, subcode: 1 });
    expect(s.locRibSize).toBe(0);
  });
});
