// Models the tests share: a small NAT-and-policy table in the shape egress NAT and policy will use.
import type { Table } from '../model.js';

export function natModel(pools4: string[] = ['10.65.0.0/16'], ports: string[] = ['53']): Table {
  return {
    chains: [
      {
        name: 'nat-postrouting',
        base: { type: 'nat', hook: 'postrouting', priority: 'srcnat' },
        rules: [
          {
            match: [
              { kind: 'addr', field: 'ip saddr', set: 'pools4' },
              { kind: 'addr', field: 'ip daddr', set: 'pools4', negate: true },
              { kind: 'ifname', field: 'oifname', name: 'pn*', negate: true },
            ],
            counter: true,
            action: { kind: 'masquerade' },
            comment: 'pods to outside every pool',
          },
        ],
      },
      {
        name: 'forward',
        base: { type: 'filter', hook: 'forward', priority: 'filter', policy: 'accept' },
        rules: [
          { match: [{ kind: 'ct', states: ['established', 'related'] }], action: { kind: 'accept' } },
          {
            match: [{ kind: 'ifname', field: 'iifname', name: 'pn*' }],
            action: { kind: 'vmap', field: 'ip saddr', map: 'pod-policy' },
          },
        ],
      },
      {
        name: 'pod-ingress',
        rules: [
          { match: [{ kind: 'l4', proto: 'udp', dport: { set: 'dns-ports' } }], action: { kind: 'accept' } },
          { match: [{ kind: 'l4', proto: 'tcp', dport: 22 }], counter: true, action: { kind: 'drop' } },
          { action: { kind: 'return' } },
        ],
      },
    ],
    sets: [
      { name: 'pools4', type: 'ipv4_addr', interval: true, elements: pools4, comment: 'IPv4 pools' },
      { name: 'pools6', type: 'ipv6_addr', interval: true, elements: ['fd00:65::/48'] },
      { name: 'dns-ports', type: 'inet_service', elements: ports },
      { name: 'pod-ifs', type: 'ifname', elements: ['pn0001'] },
    ],
    maps: [
      {
        name: 'pod-policy',
        type: 'ipv4_addr',
        elements: [{ key: '10.65.0.1', verdict: { kind: 'jump', chain: 'pod-ingress' } }],
      },
    ],
  };
}
