import { describe, expect, it } from 'vitest';
import { MemNet } from './__fixtures__/memnet.js';
import { memSpeakers } from './__fixtures__/speakers.js';
import { until } from './__fixtures__/until.js';
import type { RouteAttrs } from './rib/attrs.js';
import { compilePolicy, prefixAllowed } from './rib/policy.js';
import { PrefixMap } from './rib/prefix-map.js';
import { type AttrSet, comparePaths, type PathSource } from './rib/rib.js';
import { type PeerConfig, type RibChange, Speaker } from './speaker.js';
import { BgpConfigError } from './wire/errors.js';

const speakers = memSpeakers();
const mk = speakers.make;

function link(
  a: Speaker,
  aAddr: string,
  b: Speaker,
  bAddr: string,
  ca: Partial<PeerConfig> = {},
  cb: Partial<PeerConfig> = {},
) {
  a.addPeer({ address: bAddr, asn: b.asn, holdTime: 9, connectRetry: 1, ...ca });
  b.addPeer({ address: aAddr, asn: a.asn, holdTime: 9, passive: true, ...cb });
}

const established = (s: Speaker, addr: string) =>
  s.peers().find((p) => p.address === addr)?.state === 'established';

describe('speaker over an in-memory network', () => {
  it('exchanges IPv4 and IPv6 routes over eBGP with next-hop-self and AS prepend', async () => {
    const net = new MemNet();
    const a = mk(net, '10.0.0.1', 65001);
    const b = mk(net, '10.0.0.2', 65002);
    link(a, '10.0.0.1', b, '10.0.0.2', { nextHopIpv6: '2001:db8::1' });
    a.originate('10.244.1.0/26', { communities: ['65001:7'] });
    a.originate('2001:db8:1::/64');
    await Promise.all([a.start(), b.start()]);
    await until('routes at b', () => b.locRibSize === 2);
    const v4 = b.lookup('10.244.1.0/26')!;
    expect(v4.nextHops).toEqual(['10.0.0.1']);
    expect(v4.attrs.asPath).toEqual([{ type: 'sequence', asns: [65001] }]);
    expect(v4.attrs.communities).toEqual(['65001:7']);
    expect(b.lookup('2001:db8:1::/64')!.nextHops).toEqual(['2001:db8::1']);
    a.withdraw('10.244.1.0/26');
    await until('withdrawal at b', () => b.locRibSize === 1);
    expect(b.peers()[0]).toMatchObject({ state: 'established', type: 'ebgp', prefixesReceived: 1 });
    expect(a.peers()[0]).toMatchObject({ prefixesAdvertised: 1 });
  });

  it('sends a table larger than one flush slice whole, End-of-RIB after its last route, export list applied', async () => {
    const net = new MemNet();
    const a = mk(net, '10.0.0.1', 65001);
    const b = mk(net, '10.0.0.2', 65002);
    link(a, '10.0.0.1', b, '10.0.0.2', {
      export: {
        prefixList: [
          { prefix: '10.99.0.0/16', ge: 16, le: 32, action: 'reject' },
          { prefix: '10.0.0.0/8', ge: 8, le: 32, action: 'accept' },
        ],
        defaultAction: 'reject',
      },
    });
    // 45,000 /32s in 10.64.0.0/10 (more than two slices), one /8, and three the list rejects.
    for (let i = 0; i < 45_000; i++) a.originate(`10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
    a.originate('10.0.0.0/8');
    for (const p of ['10.99.1.0/24', '172.16.0.0/12', '0.0.0.0/0']) a.originate(p);
    let atEor: number | undefined;
    b.on('end-of-rib', () => {
      atEor ??= b.locRibSize;
    });
    await Promise.all([a.start(), b.start()]);
    await until('End-of-RIB at b', () => atEor !== undefined, 60_000);
    expect(atEor).toBe(45_001);
    expect(b.lookup('10.64.0.0/32')).toBeDefined();
    expect(b.lookup('10.64.175.199/32')).toBeDefined();
    expect(b.lookup('10.0.0.0/8')).toBeDefined();
    for (const p of ['10.99.1.0/24', '172.16.0.0/12', '0.0.0.0/0']) expect(b.lookup(p)).toBeUndefined();
  });

  it('emits bestpath events with the ECMP next-hop set', async () => {
    const net = new MemNet();
    const r = mk(net, '10.0.0.9', 65000);
    const x = mk(net, '10.0.0.1', 65001);
    const y = mk(net, '10.0.0.2', 65002);
    link(x, '10.0.0.1', r, '10.0.0.9');
    link(y, '10.0.0.2', r, '10.0.0.9');
    const changes: RibChange[] = [];
    r.on('bestpath', (c: RibChange) => changes.push(c));
    x.originate('10.50.0.0/16');
    y.originate('10.50.0.0/16');
    await Promise.all([r.start(), x.start(), y.start()]);
    await until('ECMP pair', () => (r.lookup('10.50.0.0/16')?.nextHops.length ?? 0) === 2);
    expect(r.lookup('10.50.0.0/16')!.nextHops.sort()).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(changes.at(-1)).toMatchObject({ prefix: '10.50.0.0/16', type: 'changed' });
    y.withdraw('10.50.0.0/16');
    await until('single path', () => r.lookup('10.50.0.0/16')?.nextHops.length === 1);
    x.withdraw('10.50.0.0/16');
    await until('removed event', () => changes.at(-1)?.type === 'removed');
  });

  it('reflects routes between route-reflector clients with ORIGINATOR_ID and CLUSTER_LIST, and not between non-clients', async () => {
    const net = new MemNet();
    const rr = mk(net, '10.0.0.100', 65000, { clusterId: '1.1.1.1' });
    const c1 = mk(net, '10.0.0.1', 65000);
    const c2 = mk(net, '10.0.0.2', 65000);
    const n1 = mk(net, '10.0.0.3', 65000);
    const n2 = mk(net, '10.0.0.4', 65000);
    link(c1, '10.0.0.1', rr, '10.0.0.100', {}, { routeReflectorClient: true });
    link(c2, '10.0.0.2', rr, '10.0.0.100', {}, { routeReflectorClient: true });
    link(n1, '10.0.0.3', rr, '10.0.0.100');
    link(n2, '10.0.0.4', rr, '10.0.0.100');
    c1.originate('10.1.0.0/24', { nextHop: '10.0.0.1' });
    n1.originate('10.3.0.0/24', { nextHop: '10.0.0.3' });
    await Promise.all([rr, c1, c2, n1, n2].map((s) => s.start()));
    await until('client route at c2 and n2', () => !!c2.lookup('10.1.0.0/24') && !!n2.lookup('10.1.0.0/24'));
    const r = c2.lookup('10.1.0.0/24')!;
    expect(r.nextHops).toEqual(['10.0.0.1']);
    expect(r.attrs.originatorId).toBe('10.0.0.1');
    expect(r.attrs.clusterList).toEqual(['1.1.1.1']);
    await until(
      'non-client route at clients',
      () => !!c1.lookup('10.3.0.0/24') && !!c2.lookup('10.3.0.0/24'),
    );
    await new Promise((res) => setTimeout(res, 100));
    expect(n2.lookup('10.3.0.0/24')).toBeUndefined(); // non-client to non-client: not reflected
    expect(c1.lookup('10.1.0.0/24')?.from).toBe('local'); // not sent back to its originator
  });

  it('drops routes whose AS_PATH contains our AS (loop prevention)', async () => {
    const net = new MemNet();
    const a = mk(net, '10.0.0.1', 65001);
    const b = mk(net, '10.0.0.2', 65002);
    link(a, '10.0.0.1', b, '10.0.0.2');
    a.originate('10.9.0.0/16', { asPath: [{ type: 'sequence', asns: [65002] }] });
    a.originate('10.8.0.0/16');
    await Promise.all([a.start(), b.start()]);
    await until('good route', () => !!b.lookup('10.8.0.0/16'));
    expect(b.lookup('10.9.0.0/16')).toBeUndefined();
  });

  it('tears the session down with Cease/Maximum Number of Prefixes Reached above maxPrefixes', async () => {
    const net = new MemNet();
    const a = mk(net, '10.0.0.1', 65001);
    const b = mk(net, '10.0.0.2', 65002);
    link(a, '10.0.0.1', b, '10.0.0.2', {}, { maxPrefixes: 5 });
    for (let i = 0; i < 10; i++) a.originate(`10.0.${i}.0/24`);
    await Promise.all([a.start(), b.start()]);
    await until('max-prefix cease', () => (a.peers()[0]!.lastError ?? '').includes('CEASE/MAX_PREFIXES'));
    expect(b.locRibSize).toBe(0);
  });

  it('keeps a gracefully restarting peer routes as stale until End-of-RIB (helper mode)', async () => {
    const net = new MemNet();
    const a = mk(net, '10.0.0.1', 65001);
    const b = mk(net, '10.0.0.2', 65002);
    link(
      a,
      '10.0.0.1',
      b,
      '10.0.0.2',
      { gracefulRestart: { restartTime: 30 } },
      { gracefulRestart: { restartTime: 30 } },
    );
    a.originate('10.1.0.0/24');
    a.originate('10.2.0.0/24');
    await Promise.all([a.start(), b.start()]);
    await until('routes', () => b.locRibSize === 2);
    await a.stop({ graceful: true });
    speakers.forget(a);
    await until('b sees the session go', () => !established(b, '10.0.0.1'));
    expect(b.locRibSize).toBe(2);
    expect(b.lookup('10.1.0.0/24')!.stale).toBe(true);
    // The restarted speaker announces only one of the two.
    const a2 = mk(net, '10.0.0.1', 65001, { restarting: true });
    a2.addPeer({
      address: '10.0.0.2',
      asn: 65002,
      holdTime: 9,
      connectRetry: 1,
      gracefulRestart: { restartTime: 30 },
    });
    a2.originate('10.1.0.0/24');
    await a2.start();
    await until('stale route gone after End-of-RIB', () => b.locRibSize === 1);
    expect(b.lookup('10.1.0.0/24')!.stale).toBe(false);
  });

  it('removes a peer without touching the other sessions, and applies export prefix lists', async () => {
    const net = new MemNet();
    const r = mk(net, '10.0.0.9', 65000);
    const x = mk(net, '10.0.0.1', 65001);
    const y = mk(net, '10.0.0.2', 65002);
    link(r, '10.0.0.9', x, '10.0.0.1', {
      export: { prefixList: [{ prefix: '10.244.0.0/16', ge: 24, le: 26, action: 'accept' }] },
    });
    link(r, '10.0.0.9', y, '10.0.0.2');
    r.originate('10.244.1.0/26');
    r.originate('10.244.0.0/16');
    r.originate('192.168.0.0/24');
    await Promise.all([r.start(), x.start(), y.start()]);
    await until('routes', () => x.locRibSize === 1 && y.locRibSize === 3);
    expect(x.lookup('10.244.1.0/26')).toBeDefined();
    const ySince = r.peers().find((p) => p.address === '10.0.0.2')!.since;
    r.removePeer('10.0.0.1');
    await until('x sees the session go', () => !established(x, '10.0.0.9'));
    expect(x.peers()[0]!.lastError).toContain('PEER_DECONFIGURED');
    expect(r.peers().map((p) => p.address)).toEqual(['10.0.0.2']);
    expect(r.peers()[0]!.since).toBe(ySince);
    expect(established(r, '10.0.0.2')).toBe(true);
  });

  it('exports only what it originates to a peer whose export policy says originatedOnly, prefix list applied on top', async () => {
    const net = new MemNet();
    const r = mk(net, '10.0.0.9', 65000);
    const x = mk(net, '10.0.0.1', 65001);
    const tor = mk(net, '10.0.0.2', 65002);
    link(r, '10.0.0.9', x, '10.0.0.1');
    link(r, '10.0.0.9', tor, '10.0.0.2', {
      export: {
        originatedOnly: true,
        prefixList: [{ prefix: '10.99.0.0/16', ge: 16, le: 32, action: 'reject' }],
        defaultAction: 'accept',
      },
    });
    x.originate('10.1.0.0/24');
    // Originated by both: r's own path is its best, so the ToR gets it (from r, as r's route).
    x.originate('10.5.0.0/24');
    r.originate('10.5.0.0/24');
    r.originate('10.2.0.0/24');
    r.originate('10.99.1.0/24');
    await Promise.all([r.start(), x.start(), tor.start()]);
    await until('r learns x', () => !!r.lookup('10.1.0.0/24'));
    await until('ToR has r routes', () => tor.locRibSize === 2);
    expect(tor.lookup('10.2.0.0/24')!.attrs.asPath).toEqual([{ type: 'sequence', asns: [65000] }]);
    expect(tor.lookup('10.5.0.0/24')!.attrs.asPath).toEqual([{ type: 'sequence', asns: [65000] }]);
    expect(tor.lookup('10.1.0.0/24')).toBeUndefined();
    expect(tor.lookup('10.99.1.0/24')).toBeUndefined();
    // r stops originating 10.5.0.0/24: its best is now x's, learned, and leaves the ToR.
    r.withdraw('10.5.0.0/24');
    await until('learned path withdrawn from the ToR', () => !tor.lookup('10.5.0.0/24'));
    expect(r.lookup('10.5.0.0/24')!.nextHops).toEqual(['10.0.0.1']);
    expect(tor.locRibSize).toBe(1);
  });

  it('ends up with one session per pair when both sides connect at once (collision resolution)', async () => {
    const net = new MemNet();
    const a = mk(net, '10.0.0.1', 65001);
    const b = mk(net, '10.0.0.2', 65002);
    a.addPeer({ address: '10.0.0.2', asn: 65002, holdTime: 9, connectRetry: 1 });
    b.addPeer({ address: '10.0.0.1', asn: 65001, holdTime: 9, connectRetry: 1 });
    a.originate('10.1.0.0/24');
    b.originate('10.2.0.0/24');
    await Promise.all([a.start(), b.start()]);
    await until('both established with routes', () => !!a.lookup('10.2.0.0/24') && !!b.lookup('10.1.0.0/24'));
    await new Promise((r) => setTimeout(r, 300));
    expect(established(a, '10.0.0.2') && established(b, '10.0.0.1')).toBe(true);
    expect(a.peers()[0]!.lastError ?? '').not.toContain('HOLD');
  });

  it('passes unknown optional transitive attributes on with the Partial bit, and honours NO_EXPORT', async () => {
    const net = new MemNet();
    const a = mk(net, '10.0.0.1', 65001);
    const b = mk(net, '10.0.0.2', 65001);
    const c = mk(net, '10.0.0.3', 65003);
    link(a, '10.0.0.1', b, '10.0.0.2');
    link(b, '10.0.0.2', c, '10.0.0.3');
    a.originate('10.7.0.0/16', { unknown: [{ code: 99, flags: 0xc0, value: Uint8Array.of(1, 2, 3) }] });
    a.originate('10.8.0.0/16', { communities: ['no-export'] });
    await Promise.all([a.start(), b.start(), c.start()]);
    await until('unknown attribute route at c', () => !!c.lookup('10.7.0.0/16'));
    const at = c.lookup('10.7.0.0/16')!;
    expect(at.attrs.unknown).toEqual([{ code: 99, flags: 0xe0, value: Uint8Array.of(1, 2, 3) }]);
    expect(at.attrs.asPath).toEqual([{ type: 'sequence', asns: [65001] }]);
    // NO_EXPORT: kept inside the AS (a -> b is iBGP), never sent to the external peer c.
    await until('NO_EXPORT route at b', () => !!b.lookup('10.8.0.0/16'));
    expect(b.lookup('10.8.0.0/16')?.attrs.communities).toEqual(['65535:65281']);
    await new Promise((r) => setTimeout(r, 200));
    expect(c.lookup('10.8.0.0/16')).toBeUndefined();
  });

  it('applies a new import policy through ROUTE-REFRESH without resetting the session', async () => {
    const net = new MemNet();
    const a = mk(net, '10.0.0.1', 65001);
    const b = mk(net, '10.0.0.2', 65002);
    link(a, '10.0.0.1', b, '10.0.0.2');
    a.originate('10.1.0.0/24');
    a.originate('10.2.0.0/24');
    await Promise.all([a.start(), b.start()]);
    await until('both routes at b', () => b.locRibSize === 2);
    const since = b.peers()[0]!.since;
    const base = { address: '10.0.0.1', asn: 65001, holdTime: 9, passive: true };
    b.updatePeer({
      ...base,
      import: { prefixList: [{ prefix: '10.2.0.0/24', action: 'reject' }], defaultAction: 'accept' },
    });
    await until('10.2.0.0/24 filtered', () => !b.lookup('10.2.0.0/24'));
    expect(b.lookup('10.1.0.0/24')).toBeDefined();
    b.updatePeer({ ...base, import: { localPref: 250 } });
    await until(
      '10.2.0.0/24 back with the new LOCAL_PREF',
      () => b.lookup('10.2.0.0/24')?.attrs.localPref === 250,
    );
    expect(b.peers()[0]).toMatchObject({ state: 'established', since });
  });

  it('rejects bad peer configuration with an error naming the field and value', () => {
    const s = new Speaker({ asn: 65000, routerId: '1.1.1.1' });
    const bad: [Partial<PeerConfig>, string][] = [
      [{ address: 'nope' }, 'address'],
      [{ asn: 0 }, 'asn'],
      [{ holdTime: 2 }, 'holdTime'],
      [
        { import: { prefixList: [{ prefix: '10.0.0.0/8', ge: 4, action: 'accept' }] } },
        'import.prefixList[0].ge',
      ],
      [
        { export: { prefixList: [{ prefix: '10.0.0.1/8', action: 'accept' }] } },
        'export.prefixList[0].prefix',
      ],
      [{ import: { originatedOnly: true } }, 'import.originatedOnly'],
    ];
    for (const [c, field] of bad) {
      let err: unknown;
      try {
        s.addPeer({ address: '10.0.0.1', asn: 65001, ...c } as PeerConfig);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BgpConfigError);
      expect((err as BgpConfigError).field).toBe(field);
    }
    expect(() => new Speaker({ asn: 65000, routerId: '0.0.0.0' })).toThrow(/routerId/);
    expect(() => s.originate('10.0.0.0/33')).toThrow(/prefix/);
    expect(() => s.originate('10.0.0.0/8', { communities: ['65536:1'] })).toThrow(/attrs\.communities\[0\]/);
    expect(() => s.originate('10.0.0.0/8', { largeCommunities: ['1:2'] })).toThrow(
      /attrs\.largeCommunities\[0\]/,
    );
  });
});

describe('decision process', () => {
  const src = (over: Partial<PathSource> = {}): PathSource => ({
    id: 1,
    kind: 'peer',
    address: '10.0.0.1',
    addressOrder: '4010.000.000.001',
    ebgp: true,
    routerId: '1.1.1.1',
    routeReflectorClient: false,
    up: true,
    adjIn: new PrefixMap(),
    ...over,
  });
  const set = (over: Partial<AttrSet> = {}, attrs: Partial<RouteAttrs> = {}): AttrSet => ({
    id: 1,
    attrs: { origin: 'igp', asPath: [], ...attrs },
    key: '',
    refs: 1,
    interned: true,
    pathLen: 1,
    originCode: 0,
    med: 0,
    localPref: 100,
    nbrAs: 65001,
    llgrStale: false,
    ...over,
  });
  const rows: [string, PathSource, AttrSet, PathSource, AttrSet][] = [
    ['higher LOCAL_PREF', src(), set({ localPref: 200 }), src(), set({ pathLen: 0 })],
    ['shorter AS_PATH', src(), set({ pathLen: 1 }), src(), set({ pathLen: 2 })],
    ['lower ORIGIN', src(), set({ originCode: 0 }), src(), set({ originCode: 2 })],
    ['lower MED from the same neighbour AS', src(), set({ med: 5 }), src(), set({ med: 10 })],
    ['eBGP over iBGP', src({ ebgp: true }), set(), src({ ebgp: false }), set()],
    ['lower router ID', src({ routerId: '1.1.1.1' }), set(), src({ routerId: '2.2.2.2' }), set()],
    [
      'ORIGINATOR_ID in place of router ID',
      src({ routerId: '9.9.9.9' }),
      set({}, { originatorId: '1.0.0.1' }),
      src({ routerId: '2.2.2.2' }),
      set(),
    ],
    [
      'shorter CLUSTER_LIST',
      src(),
      set({}, { clusterList: ['1.1.1.1'] }),
      src(),
      set({}, { clusterList: ['1.1.1.1', '2.2.2.2'] }),
    ],
    [
      'lower peer address',
      src({ addressOrder: '4010.000.000.001' }),
      set(),
      src({ addressOrder: '4010.000.000.002' }),
      set(),
    ],
    ['locally originated', src({ kind: 'local' }), set({ localPref: 0 }), src(), set({ localPref: 500 })],
    [
      'no LLGR_STALE (RFC 9494), however much better the stale one is otherwise',
      src({ ebgp: false, routerId: '9.9.9.9' }),
      set({ localPref: 0, pathLen: 9 }),
      src({ ebgp: true }),
      set({ localPref: 500, pathLen: 0, llgrStale: true }),
    ],
  ];
  for (const [name, a, as, b, bs] of rows) {
    it(`prefers the path with ${name}`, () => {
      expect(comparePaths(a, as, b, bs)).toBeLessThan(0);
      expect(comparePaths(b, bs, a, as)).toBeGreaterThan(0);
    });
  }
  it('ignores MED between different neighbour ASes', () => {
    expect(
      comparePaths(
        src(),
        set({ med: 50, nbrAs: 1 }),
        src({ routerId: '2.2.2.2' }),
        set({ med: 5, nbrAs: 2 }),
      ),
    ).toBeLessThan(0);
  });
});

describe('prefix lists', () => {
  const p = compilePolicy(
    {
      prefixList: [
        { prefix: '10.244.0.0/16', ge: 24, le: 26, action: 'accept' },
        { prefix: '10.0.0.0/8', le: 32, action: 'reject' },
        { prefix: '2001:db8::/32', ge: 48, action: 'accept' },
      ],
      defaultAction: 'accept',
    },
    'import',
  );
  const cases: [string, boolean][] = [
    ['10.244.1.0/26', true],
    ['10.244.0.0/16', false],
    ['10.244.1.128/27', false],
    ['10.1.0.0/16', false],
    ['192.168.0.0/24', true],
    ['2001:db8:1::/48', true],
    ['2001:db8::/32', true], // no rule matches: the default action
  ];
  for (const [prefix, ok] of cases)
    it(`${ok ? 'accepts' : 'rejects'} ${prefix}`, () => expect(prefixAllowed(p, prefix)).toBe(ok));
});
