import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { computeDesired } from './desired.js';
import { type DiffOptions, diffRoutes, resolveDesired, routeMatches } from './diff.js';
import {
  type DesiredRoute,
  type KernelRoute,
  type LinkInfo,
  PODNET_PROTO,
  RT_SCOPE,
  RTPROT,
  slotKey,
} from './model.js';

const links: LinkInfo[] = [
  { ifname: 'eth0', ifindex: 2, up: true },
  { ifname: 'pna', ifindex: 10, up: true },
  { ifname: 'pnb', ifindex: 11, up: true },
  { ifname: 'pndown', ifindex: 12, up: false },
];

const local = (ip: string, ifindex: number, protocol = PODNET_PROTO): KernelRoute => ({
  family: 4,
  table: 254,
  dst: `${ip}/32`,
  metric: 0,
  protocol,
  kind: 'unicast',
  scope: RT_SCOPE.link,
  nexthops: [{ oif: ifindex }],
});
const via = (dst: string, gws: string[], protocol = PODNET_PROTO): KernelRoute => ({
  family: 4,
  table: 254,
  dst,
  metric: 0,
  protocol,
  kind: 'unicast',
  scope: RT_SCOPE.universe,
  nexthops: gws.map((gateway) => ({ gateway, oif: 2 })),
});
const blackhole = (dst: string, protocol = PODNET_PROTO): KernelRoute => ({
  family: 4,
  table: 254,
  dst,
  metric: 0,
  protocol,
  kind: 'blackhole',
  scope: RT_SCOPE.universe,
  nexthops: [],
});

const want = computeDesired({
  localPods: [
    { ifname: 'pna', ips: ['10.0.0.1'] },
    { ifname: 'pnb', ips: ['10.0.0.2'] },
  ],
  ownedBlocks: ['10.0.0.0/26'],
  remote: [{ prefix: '10.0.1.0/26', nextHops: ['172.20.0.2', '172.20.0.3'] }],
}).routes;

const summary = (ops: ReturnType<typeof diffRoutes>['ops']) =>
  ops.map((o) => `${o.type} ${o.route.dst}${o.type === 'delete' ? ` (${o.reason})` : ''}`);

describe('diffRoutes', () => {
  it.each<[string, KernelRoute[], DiffOptions, string[], number]>([
    [
      'adds everything to an empty table',
      [],
      {},
      ['add 10.0.0.0/26', 'add 10.0.0.1/32', 'add 10.0.0.2/32', 'add 10.0.1.0/26'],
      0,
    ],
    [
      'does nothing when the kernel already matches',
      [
        local('10.0.0.1', 10),
        local('10.0.0.2', 11),
        blackhole('10.0.0.0/26'),
        via('10.0.1.0/26', ['172.20.0.3', '172.20.0.2']),
      ],
      {},
      [],
      4,
    ],
    [
      'replaces an owned route whose next hops changed',
      [
        local('10.0.0.1', 10),
        local('10.0.0.2', 11),
        blackhole('10.0.0.0/26'),
        via('10.0.1.0/26', ['172.20.0.2']),
      ],
      {},
      ['replace 10.0.1.0/26'],
      3,
    ],
    [
      'replaces an owned pod route that points at the wrong interface',
      [
        local('10.0.0.1', 11),
        local('10.0.0.2', 11),
        blackhole('10.0.0.0/26'),
        via('10.0.1.0/26', ['172.20.0.2', '172.20.0.3']),
      ],
      {},
      ['replace 10.0.0.1/32'],
      3,
    ],
    [
      'deletes owned routes that are no longer desired',
      [
        local('10.0.0.1', 10),
        local('10.0.0.2', 11),
        blackhole('10.0.0.0/26'),
        via('10.0.1.0/26', ['172.20.0.2', '172.20.0.3']),
        via('10.0.9.0/26', ['172.20.0.9']),
      ],
      {},
      ['delete 10.0.9.0/26 (not-desired)'],
      4,
    ],
    [
      'leaves foreign routes alone, also on pod interfaces, by default',
      [
        local('10.0.0.1', 10),
        local('10.0.0.2', 11),
        blackhole('10.0.0.0/26'),
        via('10.0.1.0/26', ['172.20.0.2', '172.20.0.3']),
        via('192.168.0.0/16', ['172.20.0.1'], RTPROT.static),
        local('10.0.0.50', 10, RTPROT.boot),
      ],
      {},
      [],
      4,
    ],
    [
      'removes foreign routes on pod interfaces when configured to, but not kernel ones',
      [
        local('10.0.0.1', 10),
        local('10.0.0.2', 11),
        blackhole('10.0.0.0/26'),
        via('10.0.1.0/26', ['172.20.0.2', '172.20.0.3']),
        via('192.168.0.0/16', ['172.20.0.1'], RTPROT.static),
        local('10.0.0.50', 10, RTPROT.boot),
        local('10.0.0.51', 10, RTPROT.kernel),
      ],
      { removeForeignOnPodIfaces: true },
      ['delete 10.0.0.50/32 (foreign-on-pod-interface)'],
      4,
    ],
    [
      "adopts the CNI plugin's identical route on the pod interface",
      [
        local('10.0.0.1', 10, RTPROT.boot),
        local('10.0.0.2', 11),
        blackhole('10.0.0.0/26'),
        via('10.0.1.0/26', ['172.20.0.2', '172.20.0.3']),
      ],
      {},
      ['replace 10.0.0.1/32'],
      3,
    ],
  ])('%s', (_name, actual, opts, ops, unchanged) => {
    const d = diffRoutes(want, actual, links, opts);
    expect(summary(d.ops)).toEqual(ops);
    expect(d.unchanged).toBe(unchanged);
    expect(d.conflicts).toEqual([]);
  });

  it('reports a foreign route on a desired destination as a conflict and leaves it alone', () => {
    const foreign = via('10.0.1.0/26', ['172.20.0.99'], RTPROT.static);
    const d = diffRoutes(want, [foreign], links);
    expect(summary(d.ops)).toEqual(['add 10.0.0.0/26', 'add 10.0.0.1/32', 'add 10.0.0.2/32']);
    expect(d.conflicts).toEqual([{ desired: want.find((r) => r.dst === '10.0.1.0/26'), foreign }]);
  });

  it('does not adopt a foreign route on another pod interface unless told to remove foreign routes', () => {
    const foreign = local('10.0.0.1', 11, RTPROT.boot);
    expect(diffRoutes(want, [foreign], links).conflicts).toHaveLength(1);
    const d = diffRoutes(want, [foreign], links, { removeForeignOnPodIfaces: true });
    expect(d.conflicts).toHaveLength(0);
    expect(d.ops.find((o) => o.route.dst === '10.0.0.1/32')).toMatchObject({
      type: 'replace',
      adopted: true,
    });
  });

  it('holds routes whose interface is missing or down as pending, and keeps their owned kernel route', () => {
    const routes = computeDesired({
      localPods: [
        { ifname: 'pnlater', ips: ['10.0.0.9'] },
        { ifname: 'pndown', ips: ['10.0.0.10'] },
      ],
    }).routes;
    const d = diffRoutes(routes, [local('10.0.0.10', 12)], links);
    expect(d.ops).toEqual([]);
    expect(d.pending.map((p) => `${p.route.dst} ${p.reason}`).sort()).toEqual([
      '10.0.0.10/32 interface-down',
      '10.0.0.9/32 interface-missing',
    ]);
  });

  it('puts every add and replace before any delete', () => {
    const d = diffRoutes(
      want,
      [via('10.0.9.0/26', ['172.20.0.9']), via('10.0.1.0/26', ['172.20.0.2'])],
      links,
    );
    const firstDelete = d.ops.findIndex((o) => o.type === 'delete');
    expect(firstDelete).toBe(d.ops.length - 1);
  });
});

describe('routeMatches', () => {
  it('ignores the scope of IPv6 routes, which the kernel always reports as universe', () => {
    const want = { ...local('0.0.0.0', 10), family: 6 as const, dst: 'fd00::6/128', metric: 1024 };
    expect(routeMatches(want, { ...want, scope: RT_SCOPE.universe })).toBe(true);
    const want4 = local('10.0.0.1', 10);
    expect(routeMatches(want4, { ...want4, scope: RT_SCOPE.universe })).toBe(false);
  });

  it('ignores the order of ECMP next hops and the interface the kernel resolved a gateway to', () => {
    const r = resolveDesired(want.find((x) => x.type === 'via')!, new Map());
    if (r.type !== 'ready') throw new Error('expected ready');
    expect(routeMatches(r.route, via('10.0.1.0/26', ['172.20.0.3', '172.20.0.2']))).toBe(true);
    expect(routeMatches(r.route, via('10.0.1.0/26', ['172.20.0.3']))).toBe(false);
    expect(routeMatches(r.route, via('10.0.1.0/26', ['172.20.0.3', '172.20.0.2'], RTPROT.static))).toBe(
      false,
    );
  });
});

// A model of one routing table: at most one route per (table, dst, metric) slot.
function applyOps(actual: KernelRoute[], ops: ReturnType<typeof diffRoutes>['ops']): KernelRoute[] {
  const table = new Map(actual.map((r) => [slotKey(r), r]));
  for (const op of ops) {
    if (op.type === 'delete') table.delete(slotKey(op.route));
    else table.set(slotKey(op.route), op.route);
  }
  return [...table.values()];
}

const arbIp = fc.integer({ min: 0, max: 40 }).map((n) => `10.0.0.${n}`);
const arbBlock = fc.integer({ min: 0, max: 8 }).map((n) => `10.0.${n}.0/26`);
const arbGw = fc.integer({ min: 1, max: 4 }).map((n) => `172.20.0.${n}`);
const arbIface = fc.constantFrom('pna', 'pnb', 'pndown', 'pnmissing');
const arbInputs = fc.record({
  localPods: fc.array(fc.record({ ifname: arbIface, ips: fc.array(arbIp, { maxLength: 2 }) }), {
    maxLength: 5,
  }),
  ownedBlocks: fc.array(arbBlock, { maxLength: 3 }),
  remote: fc.array(
    fc.record({
      prefix: fc.oneof(arbBlock, arbIp),
      nextHops: fc.array(arbGw, { minLength: 1, maxLength: 3 }),
    }),
    {
      maxLength: 5,
    },
  ),
});
const arbKernelRoute: fc.Arbitrary<KernelRoute> = fc
  .tuple(
    fc.oneof(arbIp, arbBlock),
    fc.constantFrom(PODNET_PROTO, PODNET_PROTO, RTPROT.boot, RTPROT.static, RTPROT.kernel),
    fc.constantFrom<'local' | 'via' | 'blackhole'>('local', 'via', 'blackhole'),
    fc.constantFrom(10, 11, 2),
    fc.array(arbGw, { minLength: 1, maxLength: 2 }),
  )
  .map(([dst, protocol, kind, oif, gws]) => {
    const d = dst.includes('/') ? dst : `${dst}/32`;
    if (kind === 'local') return { ...local('0.0.0.0', oif, protocol), dst: d };
    if (kind === 'blackhole') return blackhole(d, protocol);
    return via(d, [...new Set(gws)], protocol);
  });
const arbActual = fc.uniqueArray(arbKernelRoute, { selector: (r) => slotKey(r), maxLength: 12 });

describe('diffRoutes properties', () => {
  it('applying the diff yields the desired owned routes and never touches a foreign route', () => {
    fc.assert(
      fc.property(arbInputs, arbActual, fc.boolean(), (inputs, actual, removeForeign) => {
        const desired = computeDesired(inputs).routes;
        const d = diffRoutes(desired, actual, links, { removeForeignOnPodIfaces: removeForeign });
        const after = applyOps(actual, d.ops);
        const afterBySlot = new Map(after.map((r) => [slotKey(r), r]));
        const linkByName = new Map(links.map((l) => [l.ifname, l]));
        const desiredSlots = new Set(desired.map(slotKey));
        const conflictSlots = new Set(d.conflicts.map((c) => slotKey(c.foreign)));

        for (const r of desired) {
          const res = resolveDesired(r, linkByName);
          if (res.type === 'pending' || conflictSlots.has(slotKey(r))) continue;
          const got = afterBySlot.get(slotKey(r));
          expect(got && routeMatches(res.route, got)).toBe(true);
        }
        for (const a of actual) {
          if (a.protocol === PODNET_PROTO) continue;
          const podOnly = a.kind === 'unicast' && a.nexthops.every((h) => h.oif === 10 || h.oif === 11);
          const mayGo =
            podOnly && a.protocol !== RTPROT.kernel && (removeForeign || desiredSlots.has(slotKey(a)));
          if (!mayGo) expect(afterBySlot.get(slotKey(a))).toBe(a);
        }
        for (const r of after) {
          if (r.protocol === PODNET_PROTO) expect(desiredSlots.has(slotKey(r))).toBe(true);
        }
        // Applying once converges: a second diff has nothing left to do.
        expect(diffRoutes(desired, after, links, { removeForeignOnPodIfaces: removeForeign }).ops).toEqual(
          [],
        );
      }),
      { numRuns: 500 },
    );
  });

  it('never produces two operations for one destination', () => {
    fc.assert(
      fc.property(arbInputs, arbActual, (inputs, actual) => {
        const d = diffRoutes(computeDesired(inputs).routes, actual, links, {
          removeForeignOnPodIfaces: true,
        });
        const keys = d.ops.map((o) => slotKey(o.route));
        expect(new Set(keys).size).toBe(keys.length);
      }),
    );
  });
});

export type { DesiredRoute };
