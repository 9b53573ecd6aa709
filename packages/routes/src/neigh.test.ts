import { describe, expect, it } from 'vitest';
import type { LinkInfo } from './model.js';
import { type DesiredNeighbour, diffNeighbours, type KernelNeighbour } from './neigh.js';

const links: LinkInfo[] = [
  { ifname: 'pna', ifindex: 10, up: true },
  { ifname: 'pnb', ifindex: 11, up: false },
];
const want: DesiredNeighbour[] = [{ ifname: 'pna', ip: '10.0.0.1', family: 4, mac: '0a:58:0a:00:00:01' }];
const entry = (ip: string, mac: string, ifindex = 10): KernelNeighbour => ({ family: 4, ifindex, ip, mac });
const summary = (d: ReturnType<typeof diffNeighbours>) =>
  d.ops.map((o) => `${o.type} ${o.neigh.ip}@${o.neigh.ifindex}`);

describe('diffNeighbours', () => {
  it.each<[string, KernelNeighbour[], (n: KernelNeighbour) => boolean, string[]]>([
    ['installs a missing entry', [], () => false, ['replace 10.0.0.1@10']],
    ['leaves a matching entry alone', [entry('10.0.0.1', '0a:58:0a:00:00:01')], () => true, []],
    [
      'replaces an entry with another MAC',
      [entry('10.0.0.1', '0a:58:0a:00:00:99')],
      () => false,
      ['replace 10.0.0.1@10'],
    ],
    [
      'removes an owned entry that is no longer desired',
      [entry('10.0.0.1', '0a:58:0a:00:00:01'), entry('10.0.0.2', '0a:58:0a:00:00:02')],
      () => true,
      ['delete 10.0.0.2@10'],
    ],
    [
      'keeps an entry it does not own',
      [entry('10.0.0.1', '0a:58:0a:00:00:01'), entry('10.0.0.2', '0a:58:0a:00:00:02')],
      () => false,
      [],
    ],
  ])('%s', (_name, actual, owned, ops) => {
    expect(summary(diffNeighbours(want, actual, links, owned))).toEqual(ops);
  });

  it.each<[string, KernelNeighbour[], string[]]>([
    ['installs a missing entry with the owner protocol', [], ['replace 10.0.0.1@10 proto 80']],
    [
      'leaves an entry that already carries the protocol alone',
      [{ ...entry('10.0.0.1', '0a:58:0a:00:00:01'), protocol: 80 }],
      [],
    ],
    [
      'takes over a desired entry without a protocol',
      [entry('10.0.0.1', '0a:58:0a:00:00:01')],
      ['replace 10.0.0.1@10 proto 80'],
    ],
    [
      'takes over a desired entry of another protocol',
      [{ ...entry('10.0.0.1', '0a:58:0a:00:00:01'), protocol: 4 }],
      ['replace 10.0.0.1@10 proto 80'],
    ],
  ])('with an owner protocol: %s', (_name, actual, ops) => {
    const d = diffNeighbours(want, actual, links, () => false, 80);
    expect(d.ops.map((o) => `${o.type} ${o.neigh.ip}@${o.neigh.ifindex} proto ${o.neigh.protocol}`)).toEqual(
      ops,
    );
  });

  it('holds entries for missing or down interfaces as pending', () => {
    const d = diffNeighbours(
      [
        { ifname: 'pnb', ip: '10.0.0.3', family: 4, mac: '0a:58:0a:00:00:03' },
        { ifname: 'pnz', ip: '10.0.0.4', family: 4, mac: '0a:58:0a:00:00:04' },
      ],
      [],
      links,
      () => true,
    );
    expect(d.ops).toEqual([]);
    expect(d.pending.map((p) => p.reason)).toEqual(['interface-down', 'interface-missing']);
  });
});
