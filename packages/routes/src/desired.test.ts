import { describe, expect, it } from 'vitest';
import { computeDesired, inAnyBlock, validIfname } from './desired.js';

describe('computeDesired', () => {
  it('turns pods, owned blocks and BGP routes into local, blackhole and via routes', () => {
    const d = computeDesired({
      localPods: [{ ifname: 'pn0123456789a', ips: ['10.65.0.7', 'fd00:10::7/128'] }],
      ownedBlocks: ['10.65.0.0/26'],
      remote: [
        { prefix: '10.65.1.0/26', nextHops: ['172.20.0.12'] },
        { prefix: '10.65.2.0/26', nextHops: ['172.20.0.14', '172.20.0.13', '172.20.0.13'] },
      ],
    });
    expect(d.rejected).toEqual([]);
    expect(d.routes).toEqual([
      { type: 'blackhole', dst: '10.65.0.0/26', family: 4, table: 254, metric: 0 },
      { type: 'local', dst: '10.65.0.7/32', family: 4, table: 254, metric: 0, ifname: 'pn0123456789a' },
      {
        type: 'via',
        dst: '10.65.1.0/26',
        family: 4,
        table: 254,
        metric: 0,
        nexthops: [{ gateway: '172.20.0.12' }],
      },
      {
        type: 'via',
        dst: '10.65.2.0/26',
        family: 4,
        table: 254,
        metric: 0,
        nexthops: [{ gateway: '172.20.0.13' }, { gateway: '172.20.0.14' }],
      },
      { type: 'local', dst: 'fd00:10::7/128', family: 6, table: 254, metric: 1024, ifname: 'pn0123456789a' },
    ]);
  });

  it('uses the configured table and metrics', () => {
    const d = computeDesired({
      table: 100,
      metric: { v4: 5, v6: 7 },
      ownedBlocks: ['10.1.0.0/26', 'fd00::/122'],
    });
    expect(d.routes.map((r) => [r.table, r.metric])).toEqual([
      [100, 5],
      [100, 7],
    ]);
  });

  it.each([
    [{ localPods: [{ ifname: 'pn/x', ips: ['10.0.0.1'] }] }, 'localPods[0].ifname', 'pn/x'],
    [
      { localPods: [{ ifname: 'pn0123456789abcdef', ips: ['10.0.0.1'] }] },
      'localPods[0].ifname',
      'pn0123456789abcdef',
    ],
    [{ localPods: [{ ifname: 'pn1', ips: ['10.0.0.0/24'] }] }, 'localPods[0].ips[0]', '10.0.0.0/24'],
    [{ localPods: [{ ifname: 'pn1', ips: ['10.0.0.300'] }] }, 'localPods[0].ips[0]', '10.0.0.300'],
    [{ ownedBlocks: ['10.0.0.0/40'] }, 'ownedBlocks[0]', '10.0.0.0/40'],
    [{ remote: [{ prefix: 'x', nextHops: ['10.0.0.1'] }] }, 'remote[0].prefix', 'x'],
    [{ remote: [{ prefix: '10.1.0.0/26', nextHops: ['fd00::1'] }] }, 'remote[0].nextHops[0]', 'fd00::1'],
    [{ remote: [{ prefix: '10.1.0.0/26', nextHops: [] }] }, 'remote[0].nextHops', '[]'],
  ])('rejects bad input %#, naming the field and the value', (inputs, field, value) => {
    const d = computeDesired(inputs);
    expect(d.routes).toEqual([]);
    expect(d.rejected).toHaveLength(1);
    expect(d.rejected[0]).toMatchObject({ field, value });
  });

  it('asks for a permanent neighbour entry per pod address when the pod MAC is known', () => {
    const d = computeDesired({
      localPods: [{ ifname: 'pn1', ips: ['10.0.0.2', 'fd00::2'], mac: '0A:58:0A:00:00:02' }],
    });
    expect(d.neighbours).toEqual([
      { ifname: 'pn1', ip: '10.0.0.2', family: 4, mac: '0a:58:0a:00:00:02' },
      { ifname: 'pn1', ip: 'fd00::2', family: 6, mac: '0a:58:0a:00:00:02' },
    ]);
    const bad = computeDesired({ localPods: [{ ifname: 'pn1', ips: ['10.0.0.2'], mac: '0a:58' }] });
    expect(bad.neighbours).toEqual([]);
    expect(bad.routes).toHaveLength(1);
    expect(bad.rejected).toEqual([expect.objectContaining({ field: 'localPods[0].mac', value: '0a:58' })]);
  });

  it('keeps the good entries when one entry is bad', () => {
    const d = computeDesired({ localPods: [{ ifname: 'pn1', ips: ['bogus', '10.0.0.2'] }] });
    expect(d.routes.map((r) => r.dst)).toEqual(['10.0.0.2/32']);
    expect(d.rejected.map((r) => r.field)).toEqual(['localPods[0].ips[0]']);
  });

  it('prefers a local pod over an owned block over a BGP route on the same destination', () => {
    const d = computeDesired({
      remote: [
        { prefix: '10.0.0.5/32', nextHops: ['172.20.0.9'] },
        { prefix: '10.0.1.0/26', nextHops: ['172.20.0.9'] },
      ],
      ownedBlocks: ['10.0.1.0/26'],
      localPods: [{ ifname: 'pn1', ips: ['10.0.0.5'] }],
    });
    expect(d.routes.map((r) => `${r.type} ${r.dst}`)).toEqual(['local 10.0.0.5/32', 'blackhole 10.0.1.0/26']);
    expect(d.shadowed.map((s) => `${s.route.type}<${s.by.type}`).sort()).toEqual([
      'via<blackhole',
      'via<local',
    ]);
  });
});

describe('helpers', () => {
  it('validates interface names like the kernel', () => {
    expect(validIfname('pn0123456789a')).toBe(true);
    expect(['', '.', '..', 'a b', 'a:b', 'a/b', 'x'.repeat(16)].some(validIfname)).toBe(false);
  });

  it('finds whether an address is inside one of the blocks', () => {
    expect(inAnyBlock('10.0.0.70', ['10.0.0.0/26', '10.0.0.64/26'])).toBe(true);
    expect(inAnyBlock('10.0.0.200', ['10.0.0.0/26', '10.0.0.64/26'])).toBe(false);
  });
});
