import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REPLY_FROM_HOST, REQUEST_FOR_GATEWAY } from './__fixtures__/frames.js';
import { type ArpPacket, decodeArpFrame, ETH_ZLEN, encodeArpFrame, type MalformedReason } from './frame.js';

describe('decodeArpFrame', () => {
  it('decodes a captured request', () => {
    expect(decodeArpFrame(REQUEST_FOR_GATEWAY)).toEqual({
      type: 'arp',
      packet: {
        ethDst: 'ff:ff:ff:ff:ff:ff',
        ethSrc: '0a:58:0a:41:00:07',
        op: 1,
        sha: '0a:58:0a:41:00:07',
        spa: '10.65.0.7',
        tha: '00:00:00:00:00:00',
        tpa: '169.254.1.1',
      },
    });
  });

  it('ignores Ethernet padding after the ARP payload', () => {
    const padded = Buffer.concat([REQUEST_FOR_GATEWAY, Buffer.alloc(18)]);
    expect(decodeArpFrame(padded)).toEqual(decodeArpFrame(REQUEST_FOR_GATEWAY));
  });

  const corrupt = (off: number, bytes: number[]) => {
    const b = Buffer.from(REQUEST_FOR_GATEWAY);
    Buffer.from(bytes).copy(b, off);
    return b;
  };
  it.each<[string, Buffer, MalformedReason]>([
    ['an empty frame', Buffer.alloc(0), 'short'],
    ['a frame cut inside the Ethernet header', REQUEST_FOR_GATEWAY.subarray(0, 13), 'short'],
    ['a frame cut one byte before the target address ends', REQUEST_FOR_GATEWAY.subarray(0, 41), 'short'],
    ['an IPv4 frame', corrupt(12, [0x08, 0x00]), 'ethertype'],
    ['hardware type IEEE 802 (6)', corrupt(14, [0x00, 0x06]), 'htype'],
    ['protocol type IPv6', corrupt(16, [0x86, 0xdd]), 'ptype'],
    ['hardware length 8', corrupt(18, [8]), 'hlen'],
    ['protocol length 16', corrupt(19, [16]), 'plen'],
  ])('reports %s as malformed (%s)', (_name, frame, reason) => {
    const d = decodeArpFrame(frame);
    expect(d.type).toBe('malformed');
    if (d.type === 'malformed') expect(d.reason).toBe(reason);
  });

  it('never throws, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const d = decodeArpFrame(Buffer.from(bytes));
        expect(['arp', 'malformed']).toContain(d.type);
      }),
    );
  });
});

describe('encodeArpFrame', () => {
  it('encodes the reply byte for byte', () => {
    const reply: ArpPacket = {
      ethDst: '0a:58:0a:41:00:07',
      ethSrc: 'ee:ee:ee:ee:ee:ee',
      op: 2,
      sha: 'ee:ee:ee:ee:ee:ee',
      spa: '169.254.1.1',
      tha: '0a:58:0a:41:00:07',
      tpa: '10.65.0.7',
    };
    expect(encodeArpFrame(reply).toString('hex')).toBe(REPLY_FROM_HOST.toString('hex'));
    expect(encodeArpFrame(reply)).toHaveLength(ETH_ZLEN);
  });

  it('names the field of a bad address', () => {
    const p = decodeArpFrame(REQUEST_FOR_GATEWAY);
    if (p.type !== 'arp') throw new Error('fixture');
    expect(() => encodeArpFrame({ ...p.packet, sha: 'ee:ee' })).toThrow('sha: "ee:ee" is not a MAC address');
    expect(() => encodeArpFrame({ ...p.packet, tpa: '10.0.0.256' })).toThrow('tpa: "10.0.0.256"');
  });

  it('round-trips every packet', () => {
    const mac = fc
      .uint8Array({ minLength: 6, maxLength: 6 })
      .map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'));
    const arb = fc.record({
      ethDst: mac,
      ethSrc: mac,
      op: fc.integer({ min: 0, max: 0xffff }),
      sha: mac,
      spa: fc.ipV4(),
      tha: mac,
      tpa: fc.ipV4(),
    });
    fc.assert(
      fc.property(arb, (p) => {
        expect(decodeArpFrame(encodeArpFrame(p))).toEqual({ type: 'arp', packet: p });
      }),
    );
  });
});
