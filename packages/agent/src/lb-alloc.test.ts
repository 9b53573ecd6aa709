import {
  LB_ANNOTATIONS,
  LB_CLASS,
  LOADBALANCERADDRESS,
  LOADBALANCERPOOL,
  type LoadBalancerAddress,
  type LoadBalancerPool,
  validate,
} from '@podnet/k8s';
import { describe, expect, it } from 'vitest';
import {
  decide,
  type Held,
  HeldIndex,
  type LbService,
  lbService,
  overlapProblems,
  poolSize,
  poolUse,
  poolView,
  type World,
} from './lb-alloc.js';

const pool = (
  name: string,
  spec: Record<string, unknown>,
  created = '2026-01-01T00:00:00Z',
): LoadBalancerPool => validate(LOADBALANCERPOOL, { metadata: { name, creationTimestamp: created }, spec });

const svc = (
  name: string,
  spec: Record<string, unknown> = {},
  annotations: Record<string, string> = {},
): LbService =>
  lbService({
    metadata: { namespace: 'default', name, uid: `uid-${name}`, annotations },
    spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }], ...spec },
  });

function world(
  pools: LoadBalancerPool[],
  held: Held[] = [],
  ns: Record<string, Record<string, string>> = {},
): World {
  return {
    pools: pools.map(poolView),
    allocations: new Map(held.map((h) => [h.address, h])),
    namespaceLabels: (n) => ns[n] ?? {},
  };
}

const holding = (address: string, s: LbService, extra: Partial<Held> = {}): Held => ({
  address,
  family: address.includes(':') ? 6 : 4,
  pool: 'a',
  holders: [{ namespace: s.namespace, name: s.name, uid: s.uid, ports: s.ports }],
  ...extra,
});

describe('decide', () => {
  const v4 = pool('a', { addresses: ['192.0.2.0/30'] });
  const v6 = pool('b', { addresses: ['2001:db8::10-2001:db8::11'] });

  it('hands out the first free address of a pool that serves the Service', () => {
    const s = svc('web');
    const taken = holding('192.0.2.0', svc('other'));
    expect(decide(s, [], world([v4], [taken]))).toEqual({
      keep: [],
      take: [{ address: '192.0.2.1', pool: 'a', share: false }],
      release: [],
      problems: [],
    });
  });

  it('skips .0 and .255 with avoidBuggyIPs', () => {
    const p = pool('a', { addresses: ['198.51.100.255-198.51.101.1'], avoidBuggyIPs: true });
    expect(decide(svc('web'), [], world([p])).take).toEqual([
      { address: '198.51.101.1', pool: 'a', share: false },
    ]);
    expect(poolSize(poolView(p))).toBe(1n);
  });

  it('gives one address per family a dual-stack Service asks for, and all or nothing when required', () => {
    const dual = svc('web', { ipFamilies: ['IPv6', 'IPv4'], ipFamilyPolicy: 'RequireDualStack' });
    expect(decide(dual, [], world([v4, v6])).take.map((t) => t.address)).toEqual([
      '2001:db8::10',
      '192.0.2.0',
    ]);
    const onlyV4 = decide(dual, [], world([v4]));
    expect(onlyV4.take).toEqual([]);
    expect(onlyV4.problems).toEqual([
      {
        reason: 'NoAddressAvailable',
        message: 'no IPv6 address available in a LoadBalancerPool that serves this Service',
      },
    ]);
    const prefer = svc('web', { ipFamilies: ['IPv6', 'IPv4'], ipFamilyPolicy: 'PreferDualStack' });
    expect(decide(prefer, [], world([v4])).take.map((t) => t.address)).toEqual(['192.0.2.0']);
  });

  it('honours a requested address when free and reports it when taken or outside every pool', () => {
    const want = svc('web', {}, { [LB_ANNOTATIONS.addresses]: '192.0.2.2' });
    expect(decide(want, [], world([v4])).take).toEqual([{ address: '192.0.2.2', pool: 'a', share: false }]);
    const other = svc('db');
    expect(decide(want, [], world([v4], [holding('192.0.2.2', other)])).problems).toEqual([
      { reason: 'RequestedAddressTaken', message: 'requested address 192.0.2.2 is held by default/db' },
    ]);
    expect(decide(svc('x', { loadBalancerIP: '203.0.113.1' }), [], world([v4])).problems).toEqual([
      {
        reason: 'AddressNotInPool',
        message: 'requested address 203.0.113.1 is in no LoadBalancerPool that serves this Service',
      },
    ]);
    expect(
      decide(svc('y', {}, { [LB_ANNOTATIONS.addresses]: '192.0.2.300' }), [], world([v4])).problems,
    ).toEqual([
      {
        reason: 'InvalidRequest',
        message: `annotation ${LB_ANNOTATIONS.addresses}: "192.0.2.300" is not an IP address`,
      },
    ]);
  });

  it('shares an address between Services with the same key whose ports do not clash', () => {
    const key = { [LB_ANNOTATIONS.sharingKey]: 'k' };
    const a = svc('a', {}, key);
    const h = holding('192.0.2.0', a, { sharingKey: 'k' });
    const b = svc('b', { ports: [{ port: 443, protocol: 'TCP' }] }, key);
    expect(decide(b, [], world([v4], [h])).take).toEqual([{ address: '192.0.2.0', pool: 'a', share: true }]);
    const clash = svc('c', {}, key);
    expect(decide(clash, [], world([v4], [h])).take).toEqual([
      { address: '192.0.2.1', pool: 'a', share: false },
    ]);
    const otherKey = svc(
      'd',
      { ports: [{ port: 443, protocol: 'TCP' }] },
      { [LB_ANNOTATIONS.sharingKey]: 'z' },
    );
    expect(decide(otherKey, [], world([v4], [h])).take[0]?.share).toBe(false);
  });

  it('keeps what a Service holds, and releases it when the Service is no longer podnet LoadBalancer', () => {
    const s = svc('web');
    const h = holding('192.0.2.3', s);
    expect(decide(s, [h], world([v4], [h]))).toMatchObject({ keep: ['192.0.2.3'], take: [], release: [] });
    const other = svc('web', { loadBalancerClass: 'example.com/lb' });
    expect(decide(other, [h], world([v4], [h])).release).toEqual(['192.0.2.3']);
    const cip = svc('web', { type: 'ClusterIP' });
    expect(decide(cip, [h], world([v4], [h])).release).toEqual(['192.0.2.3']);
    expect(decide(svc('web', { loadBalancerClass: LB_CLASS }), [h], world([v4], [h])).keep).toEqual([
      '192.0.2.3',
    ]);
  });

  it('serves only Services and namespaces the pool selects, and autoAssign false only by request', () => {
    const sel = pool('a', {
      addresses: ['192.0.2.0/30'],
      serviceSelector: 'tier=front',
      namespaceSelector: 'env=prod',
    });
    const front = lbService({
      metadata: { namespace: 'shop', name: 'f', uid: 'u', labels: { tier: 'front' } },
      spec: { type: 'LoadBalancer', ports: [{ port: 80 }] },
    });
    expect(decide(front, [], world([sel], [], { shop: { env: 'prod' } })).take).toHaveLength(1);
    expect(decide(front, [], world([sel], [], { shop: { env: 'dev' } })).take).toHaveLength(0);
    const manual = pool('a', { addresses: ['192.0.2.0/30'], autoAssign: false });
    expect(decide(svc('w'), [], world([manual])).take).toHaveLength(0);
    expect(decide(svc('w', { loadBalancerIP: '192.0.2.1' }), [], world([manual])).take).toHaveLength(1);
  });
});

describe('pools', () => {
  it('refuses the younger of two overlapping pools, naming the field and value', () => {
    const old = pool('old', { addresses: ['192.0.2.0/24'] }, '2026-01-01T00:00:00Z');
    const young = pool(
      'young',
      { addresses: ['2001:db8::/64', '192.0.2.128-192.0.2.130'] },
      '2026-02-01T00:00:00Z',
    );
    const fine = pool('fine', { addresses: ['198.51.100.0/24'] }, '2026-03-01T00:00:00Z');
    expect([...overlapProblems([young, fine, old])]).toEqual([
      [
        'young',
        {
          reason: 'Overlap',
          message:
            'spec.addresses[1]: "192.0.2.128-192.0.2.130" overlaps LoadBalancerPool "old" (spec.addresses[0]: "192.0.2.0/24")',
        },
      ],
    ]);
  });

  it('counts addresses in use and free', () => {
    const p = poolView(pool('a', { addresses: ['192.0.2.0/30', '2001:db8::/126'] }));
    const s = svc('web');
    expect(poolUse(p, new Map([['192.0.2.1', holding('192.0.2.1', s)]]))).toEqual({ inUse: 1, free: 7n });
  });

  it('rejects an entry that is neither a CIDR nor a range, naming it', () => {
    expect(() => pool('bad', { addresses: ['192.0.2.9-192.0.2.1'] })).toThrow(
      /spec\.addresses\.0.*"192\.0\.2\.9-192\.0\.2\.1": the first address is after the last/,
    );
  });
});

describe('HeldIndex', () => {
  const address = (name: string, ip: string, holders: string[], rv = '1'): LoadBalancerAddress =>
    validate(LOADBALANCERADDRESS, {
      metadata: { name, resourceVersion: rv },
      spec: {
        address: ip,
        pool: 'a',
        services: holders.map((h) => ({ namespace: 'default', name: h, uid: `uid-${h}`, ports: ['TCP/80'] })),
      },
    });

  it('indexes each object by address and by every Service holding it, and forgets what it replaced', () => {
    const ix = new HeldIndex();
    ix.set('one', address('one', '198.18.0.1', ['web']));
    ix.set('two', address('two', '198.18.0.2', ['web', 'api']));
    expect([...ix.byAddress.keys()].sort()).toEqual(['198.18.0.1', '198.18.0.2']);
    expect(
      ix
        .heldBy('default/web')
        .map((h) => h.address)
        .sort(),
    ).toEqual(['198.18.0.1', '198.18.0.2']);
    expect(ix.heldBy('default/api').map((h) => h.address)).toEqual(['198.18.0.2']);
    // A newer version without api: api holds nothing any more, web still both.
    ix.set('two', address('two', '198.18.0.2', ['web'], '2'));
    expect(ix.heldBy('default/api')).toEqual([]);
    expect(ix.heldBy('default/web')).toHaveLength(2);
    expect(ix.get('two')?.metadata.resourceVersion).toBe('2');
    ix.set('one', undefined);
    expect(ix.get('one')).toBeUndefined();
    expect([...ix.byAddress.keys()]).toEqual(['198.18.0.2']);
    expect(ix.heldBy('default/web').map((h) => h.address)).toEqual(['198.18.0.2']);
    expect(ix.objects().map((o) => o.metadata.name)).toEqual(['two']);
    ix.clear();
    expect(ix.byAddress.size).toBe(0);
    expect(ix.heldBy('default/web')).toEqual([]);
  });

  it('writes addresses in canonical form', () => {
    const ix = new HeldIndex();
    ix.set('v6', address('v6', '2001:DB8:0:0::7', ['web']));
    expect([...ix.byAddress.keys()]).toEqual(['2001:db8::7']);
  });
});
