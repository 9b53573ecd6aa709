// Two versions of a policy-shaped table (per-pod chains reached through a verdict map, address
// sets per rule) on top of natModel: what a NetworkPolicy create or a label change does to it.
import type { Chain, Table } from '../model.js';
import { natModel } from './models.js';

const podChain = (name: string, set: string, port: number): Chain => ({
  name,
  rules: [
    {
      match: [
        { kind: 'addr', field: 'ip saddr', set },
        { kind: 'l4', proto: 'tcp', dport: port },
      ],
      action: { kind: 'return' },
    },
    { counter: true, action: { kind: 'drop' } },
  ],
});

/** `v`: 1 = pods 10.65.0.1 and .2 isolated; 2 = .1's chain changed, .2's gone, .3 isolated, a set swapped. */
export function policyModel(v: 1 | 2): Table {
  const t = natModel();
  const pods: [string, Chain][] =
    v === 1
      ? [
          ['10.65.0.1', podChain('np-in-a', 'np-peers-a', 80)],
          ['10.65.0.2', podChain('np-in-b', 'np-peers-b', 81)],
        ]
      : [
          ['10.65.0.1', podChain('np-in-a', 'np-peers-c', 8080)],
          ['10.65.0.3', podChain('np-in-c', 'np-peers-c', 443)],
        ];
  t.chains.push(...pods.map(([, c]) => c));
  t.sets!.push(
    ...(v === 1
      ? [
          { name: 'np-peers-a', type: 'ipv4_addr' as const, elements: ['10.65.1.1', '10.65.1.2'] },
          { name: 'np-peers-b', type: 'ipv4_addr' as const, elements: ['10.65.2.1'] },
        ]
      : [
          { name: 'np-peers-a', type: 'ipv4_addr' as const, elements: ['10.65.1.2', '10.65.1.3'] },
          { name: 'np-peers-c', type: 'ipv4_addr' as const, elements: ['10.65.3.1'] },
        ]),
  );
  t.maps![0]!.elements = pods.map(([ip, c]) => ({ key: ip, verdict: { kind: 'jump', chain: c.name } }));
  return t;
}
