import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REPLY_FROM_HOST, REQUEST_FOR_GATEWAY } from './__fixtures__/frames.js';
import {
  type ArpInterface,
  buildReply,
  DECISION_BYTES,
  decide,
  decidePrepared,
  decisionMask,
  type IgnoreReason,
  PACKET_TYPE,
  prepareInterface,
} from './decide.js';
import { ARPOP, type ArpPacket, decodeArpFrame, encodeArpFrame } from './frame.js';

const pod: ArpInterface = {
  ifname: 'pn0123456789a',
  ifindex: 7,
  podIPs: ['10.65.0.7'],
  hostMac: 'ee:ee:ee:ee:ee:ee',
};
const inbound = { ifindex: 7, pktType: PACKET_TYPE.broadcast };
const request: ArpPacket = {
  ethDst: 'ff:ff:ff:ff:ff:ff',
  ethSrc: '0a:58:0a:41:00:07',
  op: ARPOP.request,
  sha: '0a:58:0a:41:00:07',
  spa: '10.65.0.7',
  tha: '00:00:00:00:00:00',
  tpa: '169.254.1.1',
};
const frame = (p: Partial<ArpPacket>) => encodeArpFrame({ ...request, ...p });

describe('decide', () => {
  it("answers the pod's request for its gateway with the host MAC", () => {
    const d = decide(REQUEST_FOR_GATEWAY, inbound, pod);
    expect(d.type).toBe('reply');
    if (d.type === 'reply') expect(d.frame.toString('hex')).toBe(REPLY_FROM_HOST.toString('hex'));
  });

  it.each([
    ['another pod on the node', '10.65.0.8'],
    ['a pod on another node', '10.65.3.9'],
    ['an address outside the cluster', '8.8.8.8'],
  ])('answers a request for %s (%s) with the host MAC too', (_name, tpa) => {
    const d = decide(
      frame({ tpa, ethDst: '0a:58:0a:41:00:01' }),
      { ifindex: 7, pktType: PACKET_TYPE.host },
      pod,
    );
    expect(d.type).toBe('reply');
    if (d.type !== 'reply') return;
    expect(decodeArpFrame(d.frame)).toEqual({
      type: 'arp',
      packet: {
        ethDst: request.sha,
        ethSrc: pod.hostMac,
        op: ARPOP.reply,
        sha: pod.hostMac,
        spa: tpa,
        tha: request.sha,
        tpa: request.spa,
      },
    });
  });

  it.each<[string, Buffer, { ifindex: number; pktType: number }, ArpInterface, IgnoreReason]>([
    [
      'a frame from another interface',
      REQUEST_FOR_GATEWAY,
      { ifindex: 8, pktType: 1 },
      pod,
      'other-interface',
    ],
    [
      'our own outgoing reply',
      REPLY_FROM_HOST,
      { ifindex: 7, pktType: PACKET_TYPE.outgoing },
      pod,
      'outgoing',
    ],
    ['a reply', frame({ op: ARPOP.reply }), inbound, pod, 'not-request'],
    ['an unknown opcode (RARP request, 3)', frame({ op: 3 }), inbound, pod, 'not-request'],
    ['a gratuitous ARP request', frame({ tpa: '10.65.0.7' }), inbound, pod, 'gratuitous'],
    ['an RFC 5227 probe', frame({ spa: '0.0.0.0', tpa: '10.65.0.9' }), inbound, pod, 'probe'],
    [
      "a request for the pod's own address from a second pod address",
      frame({ spa: '10.65.0.70', tpa: '10.65.0.7' }),
      inbound,
      { ...pod, podIPs: ['10.65.0.7', '10.65.0.70'] },
      'own-address',
    ],
    [
      'a request from an address that is not the pod',
      frame({ spa: '10.99.0.1' }),
      inbound,
      pod,
      'foreign-sender',
    ],
  ])('ignores %s', (_name, f, meta, iface, reason) => {
    expect(decide(f, meta, iface)).toMatchObject({ type: 'ignore', reason });
  });

  it('answers any sender while the pod addresses are not known yet', () => {
    expect(decide(frame({ spa: '10.99.0.1' }), inbound, { ...pod, podIPs: [] }).type).toBe('reply');
  });

  it('reports a malformed frame instead of throwing', () => {
    expect(decide(REQUEST_FOR_GATEWAY.subarray(0, 30), inbound, pod)).toMatchObject({
      type: 'malformed',
      reason: 'short',
    });
  });
});

describe('decide properties', () => {
  it('replies byte for byte as the packet-level buildReply does, and only to requests from the pod', () => {
    const mac = fc
      .uint8Array({ minLength: 6, maxLength: 6 })
      .map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'));
    fc.assert(
      fc.property(mac, fc.ipV4(), fc.ipV4(), fc.ipV4(), mac, (sha, spa, tpa, own, hostMac) => {
        const req = { ...request, ethSrc: sha, sha, spa, tpa };
        const iface = { ...pod, podIPs: [own], hostMac };
        const d = decide(encodeArpFrame(req), inbound, iface);
        const shouldReply = spa !== '0.0.0.0' && spa !== tpa && tpa !== own && spa === own;
        expect(d.type).toBe(shouldReply ? 'reply' : 'ignore');
        if (d.type === 'reply') expect(d.frame.equals(buildReply(req, hostMac))).toBe(true);
      }),
    );
  });
});

describe('decidePrepared (the responder hot path)', () => {
  it('rewrites one reply frame per interface, each reply exactly what buildReply makes for its request', () => {
    const mac = fc
      .uint8Array({ minLength: 6, maxLength: 6 })
      .map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'));
    const p = prepareInterface({ ...pod, podIPs: [] }); // answers any sender
    const frames = new Set<Buffer>();
    fc.assert(
      fc.property(mac, fc.ipV4(), fc.ipV4(), (sha, spa, tpa) => {
        fc.pre(spa !== '0.0.0.0' && spa !== tpa);
        const req = { ...request, ethSrc: sha, sha, spa, tpa };
        const d = decidePrepared(encodeArpFrame(req), inbound, p);
        expect(d.type).toBe('reply');
        if (d.type !== 'reply') return;
        frames.add(d.frame);
        expect(d.frame.equals(buildReply(req, pod.hostMac))).toBe(true);
      }),
    );
    expect(frames.size).toBe(1);
  });

  it('decides as decide does for every kind of frame, with no reply frame for ignored ones', () => {
    const p = prepareInterface(pod);
    for (const f of [
      REQUEST_FOR_GATEWAY,
      REPLY_FROM_HOST,
      frame({ spa: '0.0.0.0' }),
      frame({ tpa: '10.65.0.7' }),
      frame({ spa: '10.99.0.1' }),
      REQUEST_FOR_GATEWAY.subarray(0, 30),
    ]) {
      expect(decidePrepared(f, inbound, p)).toEqual(decide(f, inbound, pod));
    }
    expect(decidePrepared(REQUEST_FOR_GATEWAY, { ifindex: 8, pktType: 1 }, p)).toEqual({
      type: 'ignore',
      reason: 'other-interface',
    });
  });

  it("keeps its bytes in buffers of their own, not in views of Node's 64 KiB pool", () => {
    // A prepared interface lives as long as the pod: a pooled 6-byte MAC kept a pool block each.
    const p = prepareInterface(pod);
    expect(p.hostMac.toString('hex')).toBe(pod.hostMac.replace(/:/g, ''));
    expect(p.hostMac.buffer.byteLength).toBe(6);
    expect(p.reply.buffer.byteLength).toBe(p.reply.length);
  });
});

describe('DECISION_BYTES (the reply cache key)', () => {
  const macs = fc.constantFrom('0a:58:0a:41:00:07', 'ee:ee:ee:ee:ee:ee', '02:00:00:00:00:01');
  const ips = fc.constantFrom('10.65.0.7', '10.65.0.8', '169.254.1.1', '0.0.0.0', '10.99.0.1');
  /** Frames near the decision's edges: ARP with a few field values each, sometimes damaged. */
  const arpFrame = fc
    .record({
      ethSrc: macs,
      op: fc.constantFrom(1, 2, 3),
      sha: macs,
      spa: ips,
      tha: macs,
      tpa: ips,
      damage: fc.option(fc.tuple(fc.integer({ min: 12, max: 41 }), fc.integer({ min: 0, max: 255 }))),
      extra: fc.integer({ min: 0, max: 18 }),
    })
    .map(({ damage, extra, ...fields }) => {
      const f = Buffer.concat([
        encodeArpFrame({ ...request, ...fields }).subarray(0, 42),
        Buffer.alloc(extra),
      ]);
      if (damage) f[damage[0]] = damage[1];
      return f;
    });
  const meta = fc.record({ ifindex: fc.constantFrom(7, 8), pktType: fc.integer({ min: 0, max: 4 }) });
  const iface = fc.record({
    ifname: fc.constant('pn0123456789a'),
    ifindex: fc.constant(7),
    podIPs: fc.subarray(['10.65.0.7', '10.65.0.8', '169.254.1.1']),
    hostMac: fc.constantFrom('ee:ee:ee:ee:ee:ee', '02:aa:bb:cc:dd:ee'),
  });

  it('gives the same decision and reply bytes to frames that differ only outside them', () => {
    const mask = decisionMask();
    fc.assert(
      fc.property(
        arpFrame,
        fc.uint8Array({ minLength: 60, maxLength: 60 }),
        fc.integer({ min: 42, max: 60 }),
        meta,
        iface,
        (f, noise, len, m, i) => {
          // Same bytes where the mask is set, anything else elsewhere, any length from 42 bytes.
          const g = Buffer.from(noise.subarray(0, len));
          for (let k = 0; k < mask.length; k++) if (mask[k]) g[k] = f[k]!;
          const a = decide(f, m, i);
          const b = decide(g, m, i);
          expect(b).toEqual(a);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('covers every field the decision reads and ends at the end of an Ethernet/IPv4 ARP frame', () => {
    expect(DECISION_BYTES).toEqual([
      [6, 32],
      [38, 42],
    ]);
    const mask = decisionMask();
    expect(mask.length).toBe(42);
    expect(mask.subarray(0, 6).every((x) => x === 0)).toBe(true); // Ethernet destination
    expect(mask.subarray(32, 38).every((x) => x === 0)).toBe(true); // tha
  });
});
