import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as K from './__fixtures__/kernel.js';
import { type AddressSpec, decodeAddr, encodeAddr } from './addr.js';
import { decodeNlError, parseAttrs, splitMessages } from './codec.js';
import { NLM_F, NLMSG, RTM } from './constants.js';
import { NetlinkError } from './errors.js';
import { formatAddr, parsePrefix } from './ip.js';
import { decodeLink, encodeLinkSet, encodeVeth, type LinkChange, type VethOptions } from './link.js';
import { decodeDatagram, decodeMessage, type RtnlMessage } from './messages.js';
import { decodeNeigh, encodeNeigh, type NeighbourSpec } from './neigh.js';
import { decodeRoute, encodeRoute, type Route, type RouteInfo } from './route.js';
import { Writer } from './writer.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function only(buf: Buffer): RtnlMessage {
  const msgs = decodeDatagram(buf);
  expect(msgs).toHaveLength(1);
  return msgs[0]!;
}

describe('decoding messages captured from the kernel', () => {
  // Expected values are what `ip -json` reported for the same objects at capture time.
  const cases: [string, string, Partial<RtnlMessage>][] = [
    [
      'a scope-link route in table 1000 (RTA_TABLE beyond the u8 header field)',
      K.ROUTE_V4_LINK_TABLE1000,
      {
        type: 'route',
        op: 'new',
        route: {
          family: 4,
          dst: '10.9.9.9/32',
          tos: 0,
          table: 1000,
          protocol: 80,
          scope: 253,
          type: 'unicast',
          flags: 0,
          oif: 3,
        },
      },
    ],
    [
      'a blackhole route',
      K.ROUTE_V4_BLACKHOLE,
      {
        type: 'route',
        route: {
          family: 4,
          dst: '10.1.0.0/26',
          tos: 0,
          table: 254,
          protocol: 80,
          scope: 0,
          type: 'blackhole',
          flags: 0,
        },
      },
    ],
    [
      'an ECMP route with weighted next hops (RTA_MULTIPATH)',
      K.ROUTE_V4_MULTIPATH,
      {
        type: 'route',
        route: {
          family: 4,
          dst: '10.2.0.0/24',
          tos: 0,
          table: 254,
          protocol: 80,
          scope: 0,
          type: 'unicast',
          flags: 0,
          metric: 5,
          multipath: [
            { gateway: '10.9.0.2', oif: 3, weight: 1 },
            { gateway: '10.9.0.3', oif: 3, weight: 2 },
          ],
        },
      },
    ],
    [
      'an IPv6 route via a gateway (unknown RTA_CACHEINFO/RTA_PREF skipped)',
      K.ROUTE_V6_GATEWAY,
      {
        type: 'route',
        route: {
          family: 6,
          dst: 'fd01::/64',
          tos: 0,
          table: 254,
          protocol: 80,
          scope: 0,
          type: 'unicast',
          flags: 0,
          gateway: 'fd00::2',
          oif: 3,
          metric: 1024,
        },
      },
    ],
    [
      'a veth link',
      K.LINK_VETH,
      {
        type: 'link',
        op: 'new',
        link: {
          index: 3,
          name: 'v0',
          linkType: 1,
          flags: 0x11043,
          up: true,
          mtu: 1400,
          mac: 'ee:ee:ee:ee:ee:ee',
          kind: 'veth',
          operstate: 'up',
          link: 2,
          txqlen: 1000,
        },
      },
    ],
    [
      'an IPv4 address',
      K.ADDR_V4,
      {
        type: 'addr',
        addr: {
          family: 4,
          index: 3,
          address: '10.9.0.1/24',
          scope: 0,
          flags: 0x80,
          label: 'v0',
          broadcast: undefined,
        },
      },
    ],
    [
      'an IPv6 address added with nodad',
      K.ADDR_V6_NODAD,
      { type: 'addr', addr: { family: 6, index: 3, address: 'fd00::1/64', scope: 0, flags: 0x82 } },
    ],
    [
      'a permanent neighbour',
      K.NEIGH_PERMANENT,
      {
        type: 'neigh',
        neigh: {
          family: 4,
          index: 3,
          dst: '10.9.0.2',
          lladdr: '02:00:00:00:00:02',
          state: 0x80,
          flags: 0,
          proxy: false,
        },
      },
    ],
    [
      'a proxy neighbour entry',
      K.NEIGH_PROXY,
      { type: 'neigh', neigh: { family: 4, index: 3, dst: '10.9.0.77', state: 0, flags: 0x08, proxy: true } },
    ],
  ];

  it.each(cases)('decodes %s', (_name, fixture, expected) => {
    const m = only(hex(fixture));
    const { route, link, addr, neigh, ...rest } = expected as Record<string, unknown>;
    expect(m).toMatchObject(rest);
    const body = (m as unknown as Record<string, unknown>)[String(expected.type)];
    expect(body).toEqual(
      Object.fromEntries(
        Object.entries((route ?? link ?? addr ?? neigh) as object).filter(([, v]) => v !== undefined),
      ),
    );
  });
});

describe('encoding requests', () => {
  function encoded(fn: (w: Writer) => void): string {
    const w = new Writer(8);
    fn(w);
    return w.view().toString('hex');
  }

  // The body (after the 16-byte header) must equal what the kernel itself reports for the route.
  it.each([
    [
      'a blackhole route',
      { dst: '10.1.0.0/26', type: 'blackhole', protocol: 80 } satisfies Route,
      K.ROUTE_V4_BLACKHOLE,
    ],
    [
      'an ECMP route',
      {
        dst: '10.2.0.0/24',
        protocol: 80,
        metric: 5,
        multipath: [
          { gateway: '10.9.0.2', oif: 3 },
          { gateway: '10.9.0.3', oif: 3, weight: 2 },
        ],
      } satisfies Route,
      K.ROUTE_V4_MULTIPATH,
    ],
  ])('encodes %s with the rtmsg body the kernel dumps for it', (_name, route, fixture) => {
    const out = encoded((w) => encodeRoute(w, 'add', route, 1, true));
    expect(out.slice(32)).toBe(fixture.slice(32));
    // Header: length, RTM_NEWROUTE, REQUEST|ACK|CREATE|EXCL, seq 1, pid 0.
    expect(out.slice(0, 32)).toBe(`${fixture.slice(0, 8)}1800050601000000${'00000000'}`);
  });

  // Hand-assembled from linux/rtnetlink.h, linux/neighbour.h and linux/if_link.h.
  const hexCases: [string, (w: Writer) => void, string][] = [
    [
      'a route delete that matches the owner protocol and any scope',
      (w) => encodeRoute(w, 'del', { dst: '10.1.0.0/26', protocol: 80 }, 3, true),
      '2c000000 1900 0500 03000000 00000000  021a0000 fe50ff00 00000000  08000f00 fe000000  08000100 0a010000',
    ],
    [
      'a route replace in a table above 255 (RTA_TABLE only, rtm_table unspec)',
      (w) => encodeRoute(w, 'replace', { dst: '10.9.9.9/32', oif: 3, protocol: 80, table: 1000 }, 4, false),
      '34000000 1800 0105 04000000 00000000  02200000 0050fd01 00000000  08000f00 e8030000  08000100 0a090909  08000400 03000000',
    ],
    [
      'an IPv6 default route via a gateway',
      (w) => encodeRoute(w, 'add', { dst: '::/0', gateway: 'fe80::1', oif: 2 }, 5, true),
      '40000000 1800 0506 05000000 00000000  0a000000 fe030001 00000000  08000f00 fe000000' +
        '  14000500 fe800000 00000000 00000000 00000001  08000400 02000000',
    ],
    [
      'a proxy neighbour entry',
      (w) => encodeNeigh(w, 'add', { index: 3, dst: '10.9.0.77', proxy: true }, 7),
      '24000000 1c00 0505 07000000 00000000  02000000 03000000 8000 08 00  08000100 0a09004d',
    ],
    [
      'a permanent neighbour with its MAC',
      (w) => encodeNeigh(w, 'add', { index: 3, dst: '10.9.0.2', lladdr: '02:00:00:00:00:02' }, 8),
      '30000000 1c00 0505 08000000 00000000  02000000 03000000 8000 00 00  08000100 0a090002  0a000200 020000000002 0000',
    ],
    [
      'setting a link up',
      (w) => encodeLinkSet(w, 3, { up: true }, 9),
      '20000000 1000 0500 09000000 00000000  00000000 03000000 01000000 01000000',
    ],
    [
      'an IPv4 address',
      (w) => encodeAddr(w, 'add', { index: 3, address: '10.9.0.1/24' }, 10),
      '28000000 1400 0506 0a000000 00000000  02180000 03000000  08000200 0a090001  08000100 0a090001',
    ],
  ];
  it.each(hexCases)('encodes %s byte for byte', (_name, fn, want) => {
    expect(encoded(fn)).toBe(want.replace(/\s+/g, ''));
  });

  it('encodes a veth whose peer goes into another namespace by fd, nested under IFLA_LINKINFO', () => {
    const w = new Writer(16);
    encodeVeth(
      w,
      { name: 'pn0', peerName: 'eth0', peerNetnsFd: 42, mtu: 1450, peerMac: '02:00:00:00:00:01' },
      11,
    );
    const [m] = splitMessages(w.view()).msgs;
    expect(m).toMatchObject({
      type: RTM.NEWLINK,
      flags: NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.EXCL,
      seq: 11,
    });
    const top = parseAttrs(m!.body, 16) as Buffer[];
    expect(top[3]!.toString()).toBe('pn0\0');
    expect(top[4]!.readUInt32LE(0)).toBe(1450);
    const info = parseAttrs(top[18]!) as Buffer[];
    expect(info[1]!.toString()).toBe('veth\0');
    const data = parseAttrs(info[2]!) as Buffer[];
    const peer = data[1]!;
    expect(peer.readInt32LE(4)).toBe(0); // peer ifinfomsg, index chosen by the kernel
    const peerAttrs = parseAttrs(peer, 16) as Buffer[];
    expect(peerAttrs[3]!.toString()).toBe('eth0\0');
    expect(peerAttrs[28]!.readUInt32LE(0)).toBe(42); // IFLA_NET_NS_FD
    expect(peerAttrs[1]!.toString('hex')).toBe('020000000001');
  });

  const invalid: [string, (w: Writer) => void, RegExp][] = [
    [
      'a destination that is not a prefix',
      (w) => encodeRoute(w, 'add', { dst: '10.0.0/8' }, 1, true),
      /route\.add\.dst.*10\.0\.0\/8/,
    ],
    [
      'a prefix length above 32',
      (w) => encodeRoute(w, 'add', { dst: '10.0.0.0/33' }, 1, true),
      /prefix length must be 0\.\.32/,
    ],
    [
      'an unknown route type',
      (w) => encodeRoute(w, 'add', { dst: '10.0.0.0/8', type: 'bogus' as 'local' }, 1, true),
      /route\.add\.type/,
    ],
    [
      'a protocol above 255',
      (w) => encodeRoute(w, 'add', { dst: '10.0.0.0/8', protocol: 300 }, 1, true),
      /route\.add\.protocol.*300/,
    ],
    [
      'a gateway that is not an address',
      (w) => encodeRoute(w, 'add', { dst: '10.0.0.0/8', gateway: 'x' }, 1, true),
      /route\.add\.gateway/,
    ],
    [
      'a gateway with a zone (the interface is oif, never part of the address)',
      (w) => encodeRoute(w, 'add', { dst: '::/0', gateway: 'fe80::1%eth0', oif: 2 }, 1, true),
      /route\.add\.gateway.*fe80::1%eth0/,
    ],
    [
      'a destination with a leading zero in an octet',
      (w) => encodeRoute(w, 'add', { dst: '010.0.0.0/8' }, 1, true),
      /route\.add\.dst.*leading zero/,
    ],
    [
      'a next-hop weight of 0',
      (w) =>
        encodeRoute(
          w,
          'add',
          { dst: '10.0.0.0/8', multipath: [{ gateway: '10.0.0.1', weight: 0 }] },
          1,
          true,
        ),
      /multipath\[0\]\.weight/,
    ],
    [
      'an interface name of 16 bytes',
      (w) => encodeVeth(w, { name: 'a'.repeat(16), peerName: 'b' }, 1),
      /veth\.name/,
    ],
    ['a malformed MAC', (w) => encodeLinkSet(w, 3, { mac: '02:00:00' }, 1), /link\.mac/],
    [
      'a neighbour without an IP',
      (w) => encodeNeigh(w, 'add', { index: 3, dst: 'nope' }, 1),
      /neigh\.add\.dst/,
    ],
    [
      'a veth without options',
      (w) => encodeVeth(w, undefined as unknown as VethOptions, 1),
      /veth: must be an object/,
    ],
    [
      'a link change that is not an object',
      (w) => encodeLinkSet(w, 3, null as unknown as LinkChange, 1),
      /link\.change/,
    ],
    [
      'an address that is not an object',
      (w) => encodeAddr(w, 'del', 'x' as unknown as AddressSpec, 1),
      /addr\.del/,
    ],
    [
      'a neighbour that is not an object',
      (w) => encodeNeigh(w, 'add', 7 as unknown as NeighbourSpec, 1),
      /neigh\.add/,
    ],
    [
      'an address on index 0',
      (w) => encodeAddr(w, 'add', { index: 0, address: '10.0.0.1/32' }, 1),
      /addr\.add\.index/,
    ],
  ];
  it.each(invalid)('rejects %s with NL_ERR_INVALID naming the field, writing nothing', (_name, fn, msg) => {
    const w = new Writer(8);
    w.u32(0xdeadbeef);
    let err: unknown;
    try {
      fn(w);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetlinkError);
    expect((err as NetlinkError).code).toBe('NL_ERR_INVALID');
    expect((err as NetlinkError).message).toMatch(msg);
    expect(w.length).toBe(4);
  });
});

describe('malformed input', () => {
  const blackhole = hex(K.ROUTE_V4_BLACKHOLE);
  const withLen = (b: Buffer, len: number) => {
    const c = Buffer.from(b);
    c.writeUInt32LE(len, 0);
    return c;
  };
  const attrLen = (b: Buffer, off: number, len: number) => {
    const c = Buffer.from(b);
    c.writeUInt16LE(len, off);
    return c;
  };
  const cases: [string, Buffer, RegExp][] = [
    [
      'a datagram shorter than a header',
      blackhole.subarray(0, 10),
      /truncated nlmsghdr at offset 0: 10 of 16/,
    ],
    ['nlmsg_len below the header size', withLen(blackhole, 8), /bad nlmsg_len 8/],
    [
      'nlmsg_len beyond the datagram',
      withLen(blackhole, 200),
      /bad nlmsg_len 200 at offset 0: only 44 bytes remain/,
    ],
    ['an rtmsg cut short', withLen(blackhole.subarray(0, 24), 24), /truncated rtmsg: 8 of 12/],
    ['an attribute length below 4', attrLen(blackhole, 28, 2), /bad attribute length 2/],
    ['an attribute running past the message', attrLen(blackhole, 36, 40), /bad attribute length 40/],
    [
      'a next hop with a bad length',
      (() => {
        const c = Buffer.from(hex(K.ROUTE_V4_MULTIPATH));
        c.writeUInt16LE(4, 16 + 12 + 8 + 8 + 8 + 4); // first rtnexthop.rtnh_len
        return c;
      })(),
      /bad rtnexthop length 4/,
    ],
    [
      'a route of an unknown family',
      (() => {
        const c = Buffer.from(blackhole);
        c[16] = 99;
        return c;
      })(),
      /family 99/,
    ],
  ];

  it.each(cases)('reports %s as a typed decode error, never throwing', (_name, buf, msg) => {
    const out = decodeDatagram(buf);
    const bad = out.find((m) => m.type === 'malformed');
    expect(bad).toBeDefined();
    if (bad?.type !== 'malformed') throw new Error('unreachable');
    expect(bad.error).toBeInstanceOf(NetlinkError);
    expect(bad.error.code).toBe('NL_ERR_DECODE');
    expect(bad.error.message).toMatch(msg);
  });

  it('reports every truncation of every captured message as malformed, at every offset', () => {
    const all = Object.entries(K).map(([name, h]) => [name, hex(h)] as const);
    for (const [name, full] of all) {
      expect(only(full).type, name).not.toBe('malformed');
      for (let cut = 1; cut < full.length; cut++) {
        const out = decodeDatagram(full.subarray(0, cut));
        expect(
          out.map((m) => m.type),
          `${name} cut at ${cut}`,
        ).toEqual(['malformed']);
      }
    }
  });

  it('keeps the good messages before a broken one', () => {
    const two = Buffer.concat([blackhole, blackhole.subarray(0, 20)]);
    const out = decodeDatagram(two);
    expect(out.map((m) => m.type)).toEqual(['route', 'malformed']);
  });

  it('returns an unknown variant for message types it does not model', () => {
    const c = Buffer.from(blackhole);
    c.writeUInt16LE(0x7777, 4);
    expect(only(c)).toMatchObject({ type: 'unknown', nlType: 0x7777 });
  });

  it('decodes an error with its extended ACK message and a plain ACK', () => {
    // nlmsgerr -101 (ENETUNREACH) for seq 9, capped, with NLMSGERR_ATTR_MSG.
    const msg = Buffer.from('Nexthop has invalid gateway\0');
    const tlv = Buffer.alloc(4 + ((msg.length + 3) & ~3));
    tlv.writeUInt16LE(4 + msg.length, 0);
    tlv.writeUInt16LE(1, 2);
    msg.copy(tlv, 4);
    const body = Buffer.alloc(20);
    body.writeInt32LE(-101, 0);
    body.writeUInt32LE(44, 4);
    body.writeUInt16LE(RTM.NEWROUTE, 8);
    body.writeUInt32LE(9, 12);
    const hdr = Buffer.alloc(16);
    hdr.writeUInt32LE(16 + body.length + tlv.length, 0);
    hdr.writeUInt16LE(NLMSG.ERROR, 4);
    hdr.writeUInt16LE(NLM_F.CAPPED | NLM_F.ACK_TLVS, 6);
    hdr.writeUInt32LE(9, 8);
    const m = only(Buffer.concat([hdr, body, tlv]));
    expect(m).toMatchObject({
      type: 'error',
      reqSeq: 9,
      reqType: RTM.NEWROUTE,
      errno: 101,
      extAck: 'Nexthop has invalid gateway',
    });
    body.writeInt32LE(0, 0);
    hdr.writeUInt32LE(36, 0);
    hdr.writeUInt16LE(NLM_F.CAPPED, 6);
    expect(only(Buffer.concat([hdr, body]))).toMatchObject({ type: 'ack', reqSeq: 9 });
    expect(decodeNlError({ type: 2, flags: 0, seq: 0, pid: 0, body: Buffer.alloc(3) })).toBeInstanceOf(
      NetlinkError,
    );
  });

  it('never throws on any truncation or corruption of a captured message (property)', () => {
    const all = [
      K.ROUTE_V4_MULTIPATH,
      K.ROUTE_V6_GATEWAY,
      K.LINK_VETH,
      K.ADDR_V6_NODAD,
      K.NEIGH_PERMANENT,
    ].map(hex);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: all.length - 1 }),
        fc.nat(),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        (which, cut, flips) => {
          const src = Buffer.from(all[which]!);
          for (const [pos, v] of flips) src[pos % src.length] = v;
          const buf = src.subarray(0, cut % (src.length + 1));
          const out = decodeDatagram(buf);
          for (const m of out) expect(typeof m.type).toBe('string');
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('round trips (property)', () => {
  const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
  const v6 = fc
    .array(fc.nat(0xffff), { minLength: 8, maxLength: 8 })
    .map((g) => formatAddr(Buffer.from(g.flatMap((x) => [x >> 8, x & 255]))));
  const route = fc.oneof(fc.constant(4 as const), fc.constant(6 as const)).chain((family) => {
    const addr = family === 4 ? v4 : v6;
    const max = family === 4 ? 32 : 128;
    return fc
      .record(
        {
          dst: fc.tuple(addr, fc.integer({ min: 1, max })).map(([a, l]) => `${a}/${l}`),
          table: fc.integer({ min: 1, max: 0xffff_ffff }),
          protocol: fc.integer({ min: 1, max: 255 }),
          metric: fc.nat(),
          type: fc.constantFrom(
            'unicast' as const,
            'blackhole' as const,
            'unreachable' as const,
            'prohibit' as const,
          ),
          gateway: addr,
          oif: fc.integer({ min: 1, max: 0x7fff_ffff }),
          multipath: fc.array(
            fc.record(
              {
                gateway: addr,
                oif: fc.integer({ min: 1, max: 0x7fff_ffff }),
                weight: fc.integer({ min: 1, max: 256 }),
              },
              { requiredKeys: ['weight'] },
            ),
            { minLength: 1, maxLength: 4 },
          ),
        },
        { requiredKeys: ['dst', 'table', 'protocol', 'type'] },
      )
      .map((r) => {
        const { gateway, multipath, ...rest } = r;
        return { family, ...rest, ...(multipath ? { multipath } : gateway ? { gateway } : {}) } as Route & {
          family: 4 | 6;
        };
      });
  });

  it('decodeRoute(encodeRoute(r)) gives r back (IPv4 and IPv6, ECMP, any table)', () => {
    fc.assert(
      fc.property(route, (r) => {
        const w = new Writer(8);
        encodeRoute(w, 'replace', r, 1, true);
        const [m] = splitMessages(w.view()).msgs;
        const back = decodeRoute(m!.body) as RouteInfo;
        expect(back).not.toBeInstanceOf(Error);
        // The kernel keeps the prefix as given; canonical address text on both sides.
        const p = parsePrefix(r.dst, 'dst');
        const { family, ...want } = r;
        expect(back.family).toBe(family);
        expect(back).toMatchObject({ ...want, dst: `${formatAddr(addrHex(p.addr))}/${p.len}` });
      }),
      { numRuns: 500 },
    );
  });

  it('decodes what it encodes for addresses, neighbours and link changes', () => {
    const w = new Writer(8);
    encodeAddr(w, 'add', { index: 7, address: 'fd00::1/64', label: undefined }, 1);
    expect(decodeAddr(splitMessages(w.view()).msgs[0]!.body)).toEqual({
      family: 6,
      index: 7,
      address: 'fd00::1/64',
      scope: 0,
      flags: 0,
    });
    w.reset();
    encodeNeigh(w, 'add', { index: 7, dst: 'fd00::2', lladdr: 'ee:ee:ee:ee:ee:ee' }, 2);
    expect(decodeNeigh(splitMessages(w.view()).msgs[0]!.body)).toEqual({
      family: 6,
      index: 7,
      dst: 'fd00::2',
      lladdr: 'ee:ee:ee:ee:ee:ee',
      state: 0x80,
      flags: 0,
      proxy: false,
    });
    w.reset();
    encodeLinkSet(w, 7, { up: false, mtu: 1500, name: 'pn1', mac: 'ee:ee:ee:ee:ee:ee' }, 3);
    const msg = splitMessages(w.view()).msgs[0]!;
    expect(decodeMessage(msg)).toMatchObject({
      type: 'link',
      link: { index: 7, name: 'pn1', mtu: 1500, mac: 'ee:ee:ee:ee:ee:ee', up: false },
    });
    expect(decodeLink(msg.body)).not.toBeInstanceOf(Error);
  });
});

function addrHex(addr: string): Buffer {
  const b = Buffer.alloc(16);
  const w = new Writer(32);
  w.attrAddr(1, addr, 'addr');
  const len = w.view().readUInt16LE(0) - 4;
  w.view().copy(b, 0, 4, 4 + len);
  return b.subarray(0, len);
}
