import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PathAttr } from './attributes.js';
import { ErrorCode, HeaderSubcode, OpenSubcode, UpdateSubcode } from './constants.js';
import { BgpConfigError, BgpError } from './errors.js';
import { Framer } from './framer.js';
import { addressFamily, canonicalPrefix, formatIpv6, parseIpv6, parsePrefix } from './ip.js';
import {
  type BgpMessage,
  decodeMessage,
  decodeUpdate,
  encodeMessage,
  endOfRib,
  isEndOfRib,
  type UpdateMessage,
} from './messages.js';
import { packAnnounce, packWithdraw } from './pack.js';

const M = 'ffffffffffffffffffffffffffffffff';
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Fixtures written by hand from RFC 4271 §4, RFC 4760, RFC 5492, RFC 6793, RFC 4724.
const fixtures: { name: string; hex: string; msg: BgpMessage }[] = [
  { name: 'KEEPALIVE', hex: `${M} 0013 04`, msg: { type: 'keepalive' } },
  {
    name: 'NOTIFICATION Cease/admin shutdown',
    hex: `${M} 0015 03 06 02`,
    msg: { type: 'notification', code: 6, subcode: 2, data: new Uint8Array(0) },
  },
  {
    name: 'ROUTE-REFRESH IPv6 unicast',
    hex: `${M} 0017 05 0002 00 01`,
    msg: { type: 'route-refresh', afi: 2, safi: 1 },
  },
  {
    name: 'OPEN with MP v4+v6, route refresh, 4-octet AS 4200000000, GR 120 s',
    hex: `${M} 003f 01 04 5ba0 0009 0a000001 22
          02 20 0104 0001 00 01  0104 0002 00 01  0200  4104 fa56ea00  400a 8078 0001 01 80 0002 01 00`,
    msg: {
      type: 'open',
      version: 4,
      myAs: 23456,
      holdTime: 9,
      bgpId: '10.0.0.1',
      capabilities: [
        { type: 'multiprotocol', afi: 1, safi: 1 },
        { type: 'multiprotocol', afi: 2, safi: 1 },
        { type: 'route-refresh' },
        { type: 'four-octet-as', asn: 4200000000 },
        {
          type: 'graceful-restart',
          restarting: true,
          restartTime: 120,
          families: [
            { afi: 1, safi: 1, forwardingPreserved: true },
            { afi: 2, safi: 1, forwardingPreserved: false },
          ],
        },
      ],
    },
  },
  {
    name: 'UPDATE IPv4 with ORIGIN, AS_PATH (4-octet), NEXT_HOP, MED, COMMUNITIES, 2 NLRI, 1 withdrawn',
    hex: `${M} 0048 02 0004 18 c0a801
          0026 40 01 01 00  40 02 0a 02 02 0000fde8 0000fde9  40 03 04 0a000001  80 04 04 00000064
          c0 08 04 fde80001
          18 0a0100  10 0a02`,
    msg: {
      type: 'update',
      withdrawn: ['192.168.1.0/24'],
      attrs: [
        { type: 'origin', value: 0 },
        { type: 'as-path', segments: [{ type: 'sequence', asns: [65000, 65001] }] },
        { type: 'next-hop', addr: '10.0.0.1' },
        { type: 'med', value: 100 },
        { type: 'communities', values: [0xfde80001] },
      ],
      nlri: ['10.1.0.0/24', '10.2.0.0/16'],
    },
  },
  {
    name: 'UPDATE IPv6 MP_REACH with global + link-local next hop',
    hex: `${M} 0058 02 0000 0041 40 01 01 00  40 02 06 02 01 0000fde8
          80 0e 31 0002 01 20 20010db8000000000000000000000001 fe800000000000000000000000000001 00
          20 20010db8  30 20010db80001`,
    msg: {
      type: 'update',
      withdrawn: [],
      attrs: [
        { type: 'origin', value: 0 },
        { type: 'as-path', segments: [{ type: 'sequence', asns: [65000] }] },
        {
          type: 'mp-reach',
          afi: 2,
          safi: 1,
          nextHops: ['2001:db8::1', 'fe80::1'],
          nlri: ['2001:db8::/32', '2001:db8:1::/48'],
        },
      ],
      nlri: [],
    },
  },
  {
    name: 'UPDATE with MP_UNREACH, LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR, ORIGINATOR_ID, CLUSTER_LIST, LARGE_COMMUNITIES, unknown transitive',
    hex: `${M} 0064 02 0000 004d 40 01 01 02  40 02 00  40 05 04 000000c8  40 06 00  c0 07 08 0000fde8 01020304
          80 09 04 0a000009  80 0a 08 01010101 02020202  c0 20 0c 0000fde8 00000001 00000002
          c0 63 02 abcd  80 0f 08 0002 01 20 20010db8`,
    msg: {
      type: 'update',
      withdrawn: [],
      attrs: [
        { type: 'origin', value: 2 },
        { type: 'as-path', segments: [] },
        { type: 'local-pref', value: 200 },
        { type: 'atomic-aggregate' },
        { type: 'aggregator', asn: 65000, addr: '1.2.3.4' },
        { type: 'originator-id', id: '10.0.0.9' },
        { type: 'cluster-list', ids: ['1.1.1.1', '2.2.2.2'] },
        { type: 'large-communities', values: [[65000, 1, 2]] },
        { type: 'unknown', code: 0x63, flags: 0xc0, value: Uint8Array.of(0xab, 0xcd) },
        { type: 'mp-unreach', afi: 2, safi: 1, withdrawn: ['2001:db8::/32'] },
      ],
      nlri: [],
    },
  },
  {
    name: 'OPEN with GR 0 s (no family) and LLGR: IPv4 F bit 86400 s, IPv6 1 s (RFC 9494)',
    hex: `${M} 0039 01 04 fde8 005a 0a000002 1c
          02 1a 0104 0001 00 01  4002 0000  470e 0001 01 80 015180 0002 01 00 000001`,
    msg: {
      type: 'open',
      version: 4,
      myAs: 65000,
      holdTime: 90,
      bgpId: '10.0.0.2',
      capabilities: [
        { type: 'multiprotocol', afi: 1, safi: 1 },
        { type: 'graceful-restart', restarting: false, restartTime: 0, families: [] },
        {
          type: 'long-lived-graceful-restart',
          families: [
            { afi: 1, safi: 1, forwardingPreserved: true, staleTime: 86400 },
            { afi: 2, safi: 1, forwardingPreserved: false, staleTime: 1 },
          ],
        },
      ],
    },
  },
];

function normalise(m: BgpMessage): unknown {
  return JSON.parse(
    JSON.stringify(m, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)),
  );
}

describe('message codec', () => {
  for (const f of fixtures) {
    it(`decodes and re-encodes ${f.name} byte for byte`, () => {
      const bytes = hex(f.hex);
      expect(bytes.readUInt16BE(16)).toBe(bytes.length);
      const decoded = decodeMessage(bytes);
      expect(normalise(decoded)).toEqual(normalise(f.msg));
      expect(encodeMessage(f.msg).toString('hex')).toBe(bytes.toString('hex'));
    });
  }

  it('keeps LOCAL_PREF from an internal peer and discards it from an external one (RFC 7606 §7.5)', () => {
    const bytes = hex(fixtures[6]!.hex).subarray(19);
    expect(decodeUpdate(bytes, { as4: true }, false).msg.attrs.some((a) => a.type === 'local-pref')).toBe(
      true,
    );
    expect(decodeUpdate(bytes, { as4: true }, true).msg.attrs.some((a) => a.type === 'local-pref')).toBe(
      false,
    );
  });

  it('keeps ORIGINATOR_ID and CLUSTER_LIST from an internal peer and discards them from an external one (RFC 7606 §7.9, §7.10)', () => {
    const bytes = hex(fixtures[6]!.hex).subarray(19);
    const types = (ebgp: boolean) => decodeUpdate(bytes, { as4: true }, ebgp).msg.attrs.map((a) => a.type);
    expect(types(false)).toEqual(expect.arrayContaining(['originator-id', 'cluster-list']));
    expect(types(true)).not.toContain('originator-id');
    expect(types(true)).not.toContain('cluster-list');
    expect(types(true)).toContain('large-communities');
  });

  it('writes 2-octet AS paths with AS_TRANS for a peer without the 4-octet capability', () => {
    const m: UpdateMessage = {
      type: 'update',
      withdrawn: [],
      attrs: [
        { type: 'origin', value: 0 },
        { type: 'as-path', segments: [{ type: 'sequence', asns: [4200000000, 65001] }] },
        { type: 'as4-path', segments: [{ type: 'sequence', asns: [4200000000, 65001] }] },
        { type: 'next-hop', addr: '10.0.0.1' },
      ],
      nlri: ['10.0.0.0/8'],
    };
    const b = encodeMessage(m, { as4: false });
    expect(b.subarray(19).toString('hex')).toContain('40020602025ba0fde9');
    expect(normalise(decodeMessage(b, { as4: false }))).toMatchObject({
      attrs: [
        {},
        { segments: [{ asns: [23456, 65001] }] },
        { segments: [{ asns: [4200000000, 65001] }] },
        {},
      ],
    });
  });

  it('uses RFC 9072 extended optional parameters when capabilities exceed 255 octets', () => {
    const caps = Array.from({ length: 60 }, (_, i) => ({
      type: 'unknown' as const,
      code: 200,
      value: Uint8Array.of(i, i, i),
    }));
    const open: BgpMessage = {
      type: 'open',
      version: 4,
      myAs: 65000,
      holdTime: 90,
      bgpId: '1.1.1.1',
      capabilities: caps,
    };
    const b = encodeMessage(open);
    expect(b[28]).toBe(255);
    expect(b[29]).toBe(255);
    expect(normalise(decodeMessage(b))).toEqual(normalise(open));
  });

  it('recognises End-of-RIB for IPv4 and IPv6', () => {
    const v4 = decodeMessage(encodeMessage(endOfRib(1)));
    const v6 = decodeMessage(encodeMessage(endOfRib(2)));
    expect(v4.type === 'update' && isEndOfRib(v4)).toEqual({ afi: 1, safi: 1 });
    expect(v6.type === 'update' && isEndOfRib(v6)).toEqual({ afi: 2, safi: 1 });
  });
});

describe('malformed messages', () => {
  const bad: { name: string; hex: string; code: number; subcode: number }[] = [
    {
      name: 'marker not all ones',
      hex: `ff${M.slice(2, 30)}00 0013 04`,
      code: 1,
      subcode: HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED,
    },
    { name: 'length below 19', hex: `${M} 0012 04`, code: 1, subcode: HeaderSubcode.BAD_MESSAGE_LENGTH },
    { name: 'length above 4096', hex: `${M} 1001 04`, code: 1, subcode: HeaderSubcode.BAD_MESSAGE_LENGTH },
    {
      name: 'KEEPALIVE with a body',
      hex: `${M} 0014 04 00`,
      code: 1,
      subcode: HeaderSubcode.BAD_MESSAGE_LENGTH,
    },
    { name: 'unknown message type', hex: `${M} 0013 09`, code: 1, subcode: HeaderSubcode.BAD_MESSAGE_TYPE },
    {
      name: 'OPEN version 3',
      hex: `${M} 001d 01 03 fde8 005a 01010101 00`,
      code: 2,
      subcode: OpenSubcode.UNSUPPORTED_VERSION,
    },
    {
      name: 'OPEN with optional parameter type 1',
      hex: `${M} 0020 01 04 fde8 005a 01010101 03 01 01 00`,
      code: 2,
      subcode: OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER,
    },
    {
      name: 'OPEN with a long-lived graceful restart capability of 6 octets (not a multiple of 7)',
      hex: `${M} 0027 01 04 fde8 005a 01010101 0a 02 08 47 06 0001 01 80 0000 00`,
      code: 2,
      subcode: 0,
    },
    {
      name: 'OPEN optional length overruns',
      hex: `${M} 001d 01 04 fde8 005a 01010101 05`,
      code: 2,
      subcode: 0,
    },
    {
      name: 'UPDATE withdrawn length overruns',
      hex: `${M} 0017 02 0010 0000`,
      code: 3,
      subcode: UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
    },
    {
      name: 'UPDATE attribute length overruns',
      hex: `${M} 0017 02 0000 0010`,
      code: 3,
      subcode: UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
    },
    {
      name: 'UPDATE NLRI prefix length 33',
      hex: `${M} 0019 02 0000 0000 21 0a`,
      code: 3,
      subcode: UpdateSubcode.INVALID_NETWORK_FIELD,
    },
    {
      name: 'UPDATE NLRI truncated',
      hex: `${M} 0019 02 0000 0000 18 0a`,
      code: 3,
      subcode: UpdateSubcode.INVALID_NETWORK_FIELD,
    },
    {
      name: 'UPDATE MP_REACH twice',
      hex: `${M} 0027 02 0000 0010 80 0e 05 0003 01 00 00  80 0e 05 0003 01 00 00`,
      code: 3,
      subcode: UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
    },
    {
      name: 'UPDATE unrecognised well-known attribute',
      hex: `${M} 001a 02 0000 0003 40 63 00`,
      code: 3,
      subcode: UpdateSubcode.UNRECOGNIZED_WELLKNOWN_ATTRIBUTE,
    },
  ];
  for (const b of bad) {
    it(`rejects ${b.name} with NOTIFICATION ${b.code}/${b.subcode}`, () => {
      let err: unknown;
      try {
        decodeMessage(hex(b.hex));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BgpError);
      expect((err as BgpError).code).toBe(b.code);
      expect((err as BgpError).subcode).toBe(b.subcode);
    });
  }

  const base = '40 01 01 00  40 02 06 02 01 0000fde8  40 03 04 0a000001';
  const ladder: { name: string; attrs: string; nlri?: string; action: string; keeps?: string }[] = [
    {
      name: 'ORIGIN value 3',
      attrs: '40 01 01 03  40 02 00  40 03 04 0a000001',
      action: 'treat-as-withdraw',
    },
    {
      name: 'AS_PATH segment overrun',
      attrs: '40 01 01 00  40 02 04 02 05 0000  40 03 04 0a000001',
      action: 'treat-as-withdraw',
    },
    {
      name: 'NEXT_HOP length 5',
      attrs: '40 01 01 00  40 02 00  40 03 05 0a00000100',
      action: 'treat-as-withdraw',
    },
    { name: 'missing NEXT_HOP', attrs: '40 01 01 00  40 02 00', action: 'treat-as-withdraw' },
    { name: 'missing ORIGIN', attrs: '40 02 00  40 03 04 0a000001', action: 'treat-as-withdraw' },
    { name: 'MED with well-known flags', attrs: `${base} 40 04 04 00000001`, action: 'treat-as-withdraw' },
    { name: 'COMMUNITIES length 3', attrs: `${base} c0 08 03 000001`, action: 'treat-as-withdraw' },
    {
      name: 'ATOMIC_AGGREGATE length 1',
      attrs: `${base} 40 06 01 00`,
      action: 'attribute-discard',
      keeps: 'next-hop',
    },
    {
      name: 'AGGREGATOR length 3',
      attrs: `${base} c0 07 03 000000`,
      action: 'attribute-discard',
      keeps: 'next-hop',
    },
    { name: 'ORIGIN twice', attrs: `${base} 40 01 01 01`, action: 'attribute-discard', keeps: 'next-hop' },
    { name: 'attribute overruns the list', attrs: `${base} c0 08 08 0000`, action: 'treat-as-withdraw' },
    { name: 'nothing wrong', attrs: base, action: 'none', keeps: 'next-hop' },
  ];
  for (const c of ladder) {
    it(`applies ${c.action} for ${c.name} (RFC 7606)`, () => {
      const a = hex(c.attrs);
      const body = Buffer.concat([
        hex('0000'),
        Buffer.from([a.length >> 8, a.length & 255]),
        a,
        hex('18 0a0000'),
      ]);
      const d = decodeUpdate(body, { as4: true });
      expect(d.action).toBe(c.action);
      expect(d.msg.nlri).toEqual(['10.0.0.0/24']);
      if (c.keeps) expect(d.msg.attrs.some((x) => x.type === c.keeps)).toBe(true);
    });
  }

  it('never throws anything but BgpError on random bytes behind a valid header', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.uint8Array({ maxLength: 200 }), (t, body) => {
        const f = Buffer.concat([
          hex(M),
          Buffer.from([(body.length + 19) >> 8, (body.length + 19) & 255, t]),
          body,
        ]);
        try {
          decodeMessage(f);
          if (t === 2) decodeUpdate(body, { as4: true });
        } catch (e) {
          if (!(e instanceof BgpError)) throw e;
          expect(e.code).toBeGreaterThanOrEqual(ErrorCode.MESSAGE_HEADER);
          expect([
            ErrorCode.MESSAGE_HEADER,
            ErrorCode.OPEN_MESSAGE,
            ErrorCode.UPDATE_MESSAGE,
            ErrorCode.ROUTE_REFRESH,
          ]).toContain(e.code);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('framer', () => {
  const stream = Buffer.concat(fixtures.map((f) => hex(f.hex)));
  it('emits every message whole when the stream is split at every offset', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const fr = new Framer();
      const got: string[] = [];
      const on = (f: Buffer) => got.push(f.toString('hex'));
      fr.push(stream.subarray(0, cut), on);
      fr.push(stream.subarray(cut), on);
      expect(got).toEqual(fixtures.map((f) => hex(f.hex).toString('hex')));
      expect(fr.pending).toBe(0);
    }
  });

  it('emits every message whole when fed one octet at a time', () => {
    const fr = new Framer();
    const got: string[] = [];
    for (let i = 0; i < stream.length; i++)
      fr.push(stream.subarray(i, i + 1), (f) => got.push(f.toString('hex')));
    expect(got.length).toBe(fixtures.length);
  });

  it('rejects a bad length as soon as the header is in, before the body arrives', () => {
    const fr = new Framer();
    expect(() => fr.push(hex(`${M} 2000 02`), () => {})).toThrow(/BAD_MESSAGE_LENGTH/);
  });
});

describe('update packing', () => {
  const attrs: PathAttr[] = [
    { type: 'origin', value: 0 },
    { type: 'as-path', segments: [{ type: 'sequence', asns: [65000, 65001, 65002] }] },
    { type: 'next-hop', addr: '10.0.0.1' },
  ];
  const many = Array.from({ length: 5000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
  it('packs 5000 IPv4 prefixes into UPDATEs of at most 4096 octets that decode back to the same list', () => {
    const msgs = packAnnounce(1, many, attrs, { as4: true });
    expect(msgs.length).toBeLessThan(10);
    const back: string[] = [];
    for (const m of msgs) {
      expect(m.length).toBeLessThanOrEqual(4096);
      const d = decodeMessage(m);
      if (d.type !== 'update') throw new Error('not an update');
      back.push(...d.nlri);
    }
    expect(back).toEqual(many);
  });
  it('packs IPv6 announcements into MP_REACH and withdrawals into MP_UNREACH', () => {
    const v6 = Array.from({ length: 1000 }, (_, i) => `2001:db8:${(i + 1).toString(16)}::/48`);
    const msgs = packAnnounce(2, v6, attrs, { as4: true }, ['2001:db8::1', 'fe80::1']);
    const back: string[] = [];
    for (const m of msgs) {
      expect(m.length).toBeLessThanOrEqual(4096);
      const d = decodeMessage(m);
      if (d.type !== 'update') throw new Error('not an update');
      const mp = d.attrs.find((a) => a.type === 'mp-reach');
      if (mp?.type !== 'mp-reach') throw new Error('no MP_REACH');
      expect(mp.nextHops).toEqual(['2001:db8::1', 'fe80::1']);
      expect(d.attrs.some((a) => a.type === 'next-hop')).toBe(false);
      back.push(...mp.nlri);
    }
    expect(back).toEqual(v6);
    const wd = packWithdraw(2, v6).flatMap((m) => {
      const d = decodeMessage(m);
      return d.type === 'update' ? d.attrs.flatMap((a) => (a.type === 'mp-unreach' ? a.withdrawn : [])) : [];
    });
    expect(wd).toEqual(v6);
    const wd4 = packWithdraw(1, many).flatMap((m) => {
      const d = decodeMessage(m);
      return d.type === 'update' ? d.withdrawn : [];
    });
    expect(wd4).toEqual(many);
  });
});

describe('properties', () => {
  const v4prefix = fc
    .tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }))
    .map(([a, l]) => {
      const masked = l === 0 ? 0 : (a & (0xffffffff << (32 - l))) >>> 0;
      return `${masked >>> 24}.${(masked >>> 16) & 255}.${(masked >>> 8) & 255}.${masked & 255}/${l}`;
    });
  const ipv4 = fc
    .integer({ min: 0, max: 0xffffffff })
    .map((a) => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`);
  const u32 = fc.integer({ min: 0, max: 0xffffffff });
  const attr: fc.Arbitrary<PathAttr> = fc.oneof(
    fc.integer({ min: 0, max: 2 }).map((value) => ({ type: 'origin' as const, value })),
    fc.array(fc.array(u32, { minLength: 1, maxLength: 10 }), { maxLength: 3 }).map((s) => ({
      type: 'as-path' as const,
      segments: s.map((asns) => ({ type: 'sequence' as const, asns })),
    })),
    ipv4.map((addr) => ({ type: 'next-hop' as const, addr })),
    u32.map((value) => ({ type: 'med' as const, value })),
    fc.array(u32, { maxLength: 80 }).map((values) => ({ type: 'communities' as const, values })),
    fc
      .array(fc.tuple(u32, u32, u32), { minLength: 1, maxLength: 30 })
      .map((values) => ({ type: 'large-communities' as const, values })),
    fc.array(ipv4, { maxLength: 5 }).map((ids) => ({ type: 'cluster-list' as const, ids })),
  );
  it('decode(encode(update)) returns the same update', () => {
    fc.assert(
      fc.property(
        fc.array(v4prefix, { maxLength: 50 }),
        fc.uniqueArray(attr, { selector: (a) => a.type, maxLength: 7 }),
        fc.array(v4prefix, { maxLength: 50 }),
        (withdrawn, attrs, nlri) => {
          const m: UpdateMessage = { type: 'update', withdrawn, attrs, nlri };
          const d = decodeUpdate(encodeMessage(m).subarray(19), { as4: true }, false);
          expect(d.msg).toEqual(m);
        },
      ),
      { numRuns: 500 },
    );
  });
  it('formats IPv6 addresses canonically and parses them back', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
        expect(parseIpv6(formatIpv6(b))).toEqual(b);
      }),
    );
  });
});

describe('address text (strict, as @podnet/net: test/src/address-agreement.test.ts)', () => {
  it.each(['010.0.0.1', '10.0.0.01', '::ffff:010.0.0.1', '10.0.0.1 ', 'fe80::1%eth0', '1:2:3:4:5:6:7:8::'])(
    'refuses the address %j',
    (s) => {
      expect(addressFamily(s)).toBeUndefined();
    },
  );

  it.each(['010.0.0.0/8', '10.0.0.0/08', 'fd00::/064', '10.0.0.0/+8'])('refuses the prefix %j', (s) => {
    expect(() => parsePrefix(s, 'importFilter')).toThrow(BgpConfigError);
  });

  it('writes IPv4-mapped IPv6 as ::ffff:a.b.c.d (RFC 5952 section 5)', () => {
    expect(formatIpv6(parseIpv6('::FFFF:a00:1')!)).toBe('::ffff:10.0.0.1');
    expect(canonicalPrefix('::ffff:0:0/96')).toBe('::ffff:0.0.0.0/96');
    expect(formatIpv6(parseIpv6('::a00:1')!)).toBe('::a00:1');
  });
});
