import { IPPOOL, type IPPool, safeValidate } from '@podnet/k8s';
import { describe, expect, it } from 'vitest';
import { nodeAnnotationProblems, peerConditions, poolConditions, usablePools } from './conditions.js';
import { TokenBucket } from './events.js';

function pool(name: string, cidr: string, createdAt: string, extra: Record<string, unknown> = {}) {
  const r = safeValidate(IPPOOL, {
    metadata: { name, creationTimestamp: createdAt },
    spec: { cidr, ...extra },
  });
  if (!r.ok) throw r.error;
  return r.value as IPPool;
}

describe('poolConditions', () => {
  it('gives Ready=True to valid pools, Overlap to a newer overlapping one, InvalidSpec naming the field and value', () => {
    const raw = { metadata: { name: 'broken' }, spec: { cidr: '10.9.0.1/16' } };
    const r = safeValidate(IPPOOL, raw);
    if (r.ok) throw new Error('expected invalid');
    const c = poolConditions(
      [
        pool('default', '10.244.0.0/16', '2026-01-01T00:00:00Z'),
        pool('half', '10.244.128.0/17', '2026-01-02T00:00:00Z', { disabled: true }),
        pool('off', '10.250.0.0/16', '2026-01-02T00:00:00Z', { disabled: true }),
      ],
      [{ key: 'broken', raw, error: r.error }],
    );
    expect(Object.fromEntries(c)).toEqual({
      default: { status: 'True', reason: 'Valid', message: 'valid; in use' },
      off: { status: 'True', reason: 'Valid', message: 'valid; disabled: no new allocations' },
      half: {
        status: 'False',
        reason: 'Overlap',
        message:
          'IPPool half spec.cidr 10.244.128.0/17 overlaps IPPool default (10.244.0.0/16), which is older; set aside',
      },
      broken: {
        status: 'False',
        reason: 'InvalidSpec',
        message:
          'spec.cidr: "10.9.0.1/16" is not a valid network CIDR (address/prefix with host bits zero): host bits set (the network is 10.9.0.0/16)',
      },
    });
  });

  it('reports isolated together with natOutgoing as ConflictingFields naming both fields; the pool stays in use', () => {
    const both = pool('both', '10.7.0.0/16', '2026-01-01T00:00:00Z', { isolated: true, natOutgoing: true });
    const c = poolConditions(
      [both, pool('iso', '10.8.0.0/16', '2026-01-01T00:00:00Z', { isolated: true })],
      [],
    );
    expect(c.get('both')).toEqual({
      status: 'False',
      reason: 'ConflictingFields',
      message: expect.stringMatching(
        /spec\.isolated: true and spec\.natOutgoing: true .*treated as isolated/,
      ),
    });
    expect(c.get('iso')).toEqual({ status: 'True', reason: 'Valid', message: 'valid; in use' });
    expect(usablePools([both]).map((p) => p.metadata.name)).toEqual(['both']);
  });

  it('lets the latest, invalid version of a pool win over the older valid one the informer keeps', () => {
    const raw = { metadata: { name: 'p' }, spec: { cidr: 'nope' } };
    const r = safeValidate(IPPOOL, raw);
    if (r.ok) throw new Error('expected invalid');
    const c = poolConditions(
      [pool('p', '10.1.0.0/16', '2026-01-01T00:00:00Z')],
      [{ key: 'p', raw, error: r.error }],
    );
    expect(c.get('p')?.reason).toBe('InvalidSpec');
    expect(
      peerConditions([], [{ key: 'x', raw: { metadata: { name: 'x' } }, error: new Error('bad') }]).get('x'),
    ).toEqual({ status: 'False', reason: 'InvalidSpec', message: 'bad' });
  });
});

describe('usablePools', () => {
  it('leaves out a newer overlapping pool, so its disableBGPExport cannot hide the older pool blocks', () => {
    const base = pool('default', '10.244.0.0/16', '2026-01-01T00:00:00Z');
    const half = pool('a-half', '10.244.128.0/17', '2026-01-02T00:00:00Z', { disableBGPExport: true });
    const other = pool('other', '10.245.0.0/16', '2026-01-03T00:00:00Z');
    expect(usablePools([half, base, other]).map((p) => p.metadata.name)).toEqual(['default', 'other']);
  });
});

describe('nodeAnnotationProblems', () => {
  it('names each bad podnet annotation and its value, and nothing else', () => {
    expect(
      nodeAnnotationProblems({
        'podnet.io/ipv4-address': '10.0.0.300/24',
        'podnet.io/as-number': '0',
        'other.io/x': 'whatever',
      }),
    ).toEqual([
      'annotation podnet.io/as-number: "0" is not an AS number (1-4294967295)',
      'annotation podnet.io/ipv4-address: "10.0.0.300/24" is not an IPv4 address with a prefix length',
    ]);
    expect(nodeAnnotationProblems({ 'podnet.io/ipv4-address': '10.0.0.3/24' })).toEqual([]);
  });
});

describe('TokenBucket', () => {
  it('lets a burst through, then spaces takes at the rate', () => {
    let now = 0;
    const b = new TokenBucket(5, 3, () => now);
    expect([b.delay(), b.delay(), b.delay()]).toEqual([0, 0, 0]);
    expect(b.delay()).toBe(200);
    expect(b.delay()).toBe(400);
    now = 2000; // refilled (to the burst, not beyond)
    expect([b.delay(), b.delay(), b.delay(), b.delay()]).toEqual([0, 0, 0, 200]);
  });

  it('refuses a rate or burst that would never let anything through', () => {
    expect(() => new TokenBucket(0, 1)).toThrow(/rate 0/);
    expect(() => new TokenBucket(1, 0)).toThrow(/burst 0/);
  });
});
