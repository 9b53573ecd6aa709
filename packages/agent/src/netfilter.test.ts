import { renderFull, validate } from '@podnet/nft';
import { describe, expect, it } from 'vitest';
import { parseCidr } from './ip.js';
import type { BgpConfigView, NodeView, PoolView } from './model.js';
import { buildNetfilter, type NetfilterInput, normalisePrefixes } from './netfilter.js';

const pool = (name: string, cidr: string, more: Partial<PoolView> = {}): PoolView => ({
  name,
  cidr,
  blockSize: cidr.includes(':') ? 122 : 26,
  disabled: false,
  disableBGPExport: false,
  ...more,
});

const input = (more: Partial<NetfilterInput> = {}): NetfilterInput => ({
  nodeName: 'n1',
  pools: [],
  nodes: [],
  bgpConfigs: [],
  ...more,
});

/** The elements of every set of the built table, after the @podnet/nft validation nft's refusals mirror. */
function setsOf(i: NetfilterInput): Record<string, string[]> {
  const t = validate(buildNetfilter(i).table);
  return Object.fromEntries(t.sets.map((s) => [s.name, s.elements]));
}

const EMPTY = {
  pools4: [],
  nat4: [],
  natexcl4: [],
  isolated4: [],
  cluster4: [],
  pools6: [],
  nat6: [],
  natexcl6: [],
  isolated6: [],
  cluster6: [],
};

describe('buildNetfilter: the sets', () => {
  it.each<[string, NetfilterInput, Partial<Record<string, string[]>>]>([
    ['no pools: every set empty', input(), {}],
    [
      'a natOutgoing pool is in pools, nat and cluster',
      input({ pools: [pool('a', '10.244.0.0/16', { natOutgoing: true })] }),
      { pools4: ['10.244.0.0/16'], nat4: ['10.244.0.0/16'], cluster4: ['10.244.0.0/16'] },
    ],
    [
      'an IPv6 natOutgoing pool goes to the 6 sets (NAT66)',
      input({ pools: [pool('v6', 'fd00:10:244::/48', { natOutgoing: true })] }),
      { pools6: ['fd00:10:244::/48'], nat6: ['fd00:10:244::/48'], cluster6: ['fd00:10:244::/48'] },
    ],
    [
      'a pool without natOutgoing is not translated but stays in pools',
      input({ pools: [pool('a', '10.244.0.0/16'), pool('b', '10.245.0.0/16', { natOutgoing: true })] }),
      {
        pools4: ['10.244.0.0/16', '10.245.0.0/16'],
        nat4: ['10.245.0.0/16'],
        cluster4: ['10.244.0.0/16', '10.245.0.0/16'],
      },
    ],
    [
      'a disabled natOutgoing pool is no longer translated, and stays in pools',
      input({ pools: [pool('a', '10.244.0.0/16', { natOutgoing: true, disabled: true })] }),
      { pools4: ['10.244.0.0/16'], cluster4: ['10.244.0.0/16'] },
    ],
    [
      'an isolated pool is in isolated, not nat',
      input({ pools: [pool('i', '10.246.0.0/16', { isolated: true })] }),
      { pools4: ['10.246.0.0/16'], isolated4: ['10.246.0.0/16'], cluster4: ['10.246.0.0/16'] },
    ],
    [
      'isolated and natOutgoing together: isolated, never translated (fails closed)',
      input({ pools: [pool('both', '10.246.0.0/16', { isolated: true, natOutgoing: true })] }),
      { pools4: ['10.246.0.0/16'], isolated4: ['10.246.0.0/16'], cluster4: ['10.246.0.0/16'] },
    ],
    [
      'exclusions of default and of this node apply (union); another node’s do not',
      input({
        pools: [pool('a', '10.244.0.0/16', { natOutgoing: true })],
        bgpConfigs: [
          { name: 'default', natOutgoingExclusions: ['172.16.0.0/12', 'fd99::/64'] },
          { name: 'node.n1', natOutgoingExclusions: ['192.168.0.0/16'] },
          { name: 'node.n2', natOutgoingExclusions: ['100.64.0.0/10'] },
        ] as BgpConfigView[],
      }),
      {
        pools4: ['10.244.0.0/16'],
        nat4: ['10.244.0.0/16'],
        cluster4: ['10.244.0.0/16'],
        natexcl4: ['172.16.0.0/12', '192.168.0.0/16'],
        natexcl6: ['fd99::/64'],
      },
    ],
    [
      'cluster holds node annotations, InternalIPs and service cluster ranges; node /32s inside a pool merge into it',
      input({
        pools: [pool('a', '10.244.0.0/16')],
        nodes: [
          {
            name: 'n1',
            labels: {},
            ipv4: '192.0.2.11/24',
            ipv6: '2001:db8::11/64',
            internalIPs: ['192.0.2.11'],
          },
          { name: 'n2', labels: {}, internalIPs: ['198.51.100.7', '10.244.9.9'] },
        ] as NodeView[],
        bgpConfigs: [{ name: 'default', serviceClusterIPs: ['10.96.0.0/12', 'fd00:96::/108'] }],
      }),
      {
        pools4: ['10.244.0.0/16'],
        cluster4: ['10.96.0.0/12', '10.244.0.0/16', '192.0.2.11', '198.51.100.7'],
        cluster6: ['2001:db8::11', 'fd00:96::/108'],
      },
    ],
    [
      'overlapping exclusions merge: one inside another, and a duplicate',
      input({
        bgpConfigs: [
          { name: 'default', natOutgoingExclusions: ['172.16.0.0/12', '172.16.5.0/24', '10.0.0.0/8'] },
          { name: 'node.n1', natOutgoingExclusions: ['10.0.0.0/8', '10.1.0.0/16'] },
        ],
      }),
      { natexcl4: ['10.0.0.0/8', '172.16.0.0/12'] },
    ],
  ])('%s', (_name, i, want) => {
    expect(setsOf(i)).toEqual({ ...EMPTY, ...want });
  });

  it('keeps a pool that lies inside an exclusion in both sets (different sets never overlap)', () => {
    const s = setsOf(
      input({
        pools: [pool('a', '10.244.0.0/16', { natOutgoing: true })],
        bgpConfigs: [{ name: 'default', natOutgoingExclusions: ['10.0.0.0/8'] }],
      }),
    );
    expect(s.nat4).toEqual(['10.244.0.0/16']);
    expect(s.natexcl4).toEqual(['10.0.0.0/8']);
  });
});

describe('buildNetfilter: problems', () => {
  it('names the pool and both fields when isolated and natOutgoing are set together', () => {
    const plan = buildNetfilter(
      input({ pools: [pool('both', '10.246.0.0/16', { isolated: true, natOutgoing: true })] }),
    );
    expect(plan.problems).toEqual([
      {
        kind: 'IPPool',
        name: 'both',
        message: expect.stringContaining('spec.isolated: true and spec.natOutgoing: true'),
      },
    ]);
  });

  it('leaves out an exclusion that is not a CIDR, naming the object and the field', () => {
    const plan = buildNetfilter(
      input({ bgpConfigs: [{ name: 'default', natOutgoingExclusions: ['10.0.0.0/8', 'banana'] }] }),
    );
    expect(plan.problems).toEqual([
      {
        kind: 'BGPConfiguration',
        name: 'default',
        message: 'spec.natOutgoingExclusions[1].cidr: "banana" is not a CIDR; left out',
      },
    ]);
    expect(validate(plan.table).sets.find((s) => s.name === 'natexcl4')?.elements).toEqual(['10.0.0.0/8']);
  });

  it('has no problems for valid pools', () => {
    expect(
      buildNetfilter(input({ pools: [pool('a', '10.244.0.0/16', { natOutgoing: true })] })).problems,
    ).toEqual([]);
  });
});

describe('buildNetfilter: the rules', () => {
  it('renders the masquerade and isolation rules of the contract, identical whatever the inputs', () => {
    const a = buildNetfilter(input()).table.chains;
    const b = buildNetfilter(
      input({
        pools: [
          pool('a', '10.244.0.0/16', { natOutgoing: true }),
          pool('i', '10.9.0.0/16', { isolated: true }),
        ],
        bgpConfigs: [{ name: 'default', natOutgoingExclusions: ['172.16.0.0/12'] }],
      }),
    ).table.chains;
    expect(b).toEqual(a);
    const text = renderFull(validate(buildNetfilter(input()).table), null);
    expect(text).toContain('type nat hook postrouting priority srcnat');
    expect(text).toContain('type filter hook forward priority filter; policy accept');
    for (const line of [
      'ip saddr @nat4 ip daddr != @pools4 ip daddr != @natexcl4 counter masquerade',
      'ip6 saddr @nat6 ip6 daddr != @pools6 ip6 daddr != @natexcl6 counter masquerade',
      'ip saddr @isolated4 ip daddr != @cluster4 counter drop',
      'ip daddr @isolated4 ip saddr != @cluster4 counter drop',
      'ip6 saddr @isolated6 ip6 daddr != @cluster6 counter drop',
      'ip6 daddr @isolated6 ip6 saddr != @cluster6 counter drop',
    ])
      expect(text).toContain(line);
  });
});

describe('normalisePrefixes', () => {
  const n = (xs: string[]) => normalisePrefixes(xs.map((x) => parseCidr(x)!));
  it.each([
    [['10.0.0.0/8', '10.1.2.3/32'], ['10.0.0.0/8']],
    [['10.1.2.3/32', '10.0.0.0/8'], ['10.0.0.0/8']],
    [
      ['10.0.0.0/9', '10.128.0.0/9'],
      ['10.0.0.0/9', '10.128.0.0/9'],
    ],
    [['10.0.0.0/8', '10.0.0.0/8'], ['10.0.0.0/8']],
    [
      ['11.0.0.0/8', '10.5.0.0/16', '10.0.0.0/8', '10.5.1.0/24'],
      ['10.0.0.0/8', '11.0.0.0/8'],
    ],
    [['0.0.0.0/0', '192.0.2.1/32'], ['0.0.0.0/0']],
    [
      ['fd00::/8', 'fd00:1::/64', 'fe80::/10'],
      ['fd00::/8', 'fe80::/10'],
    ],
  ])('%j → %j', (xs, want) => {
    expect(n(xs)).toEqual(want);
  });
});
