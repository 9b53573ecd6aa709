// The translation's semantics, table-driven: each case applies policies to the x/y/z cluster and
// compares the whole reachability matrix (every pod pair, TCP/UDP/SCTP ports, IPv4 and IPv6) with
// the one the Kubernetes documentation gives, written here by hand per case.
import { podInterfaceName } from '@podnet/net';
import { describe, expect, it } from 'vitest';
import {
  NODE1,
  NODE2,
  POD_KEYS,
  PODS,
  pod,
  policy,
  reaches,
  translateAll,
  translateFor,
} from './__fixtures__/cluster.js';
import type { Protocol } from './types.js';

interface P {
  ns: string;
  pod: string;
}
type Expect = (from: P, to: P, proto: Protocol, port: number, family: 4 | 6) => boolean;

const PROBES: [Protocol, number][] = [
  ['TCP', 80],
  ['TCP', 81],
  ['UDP', 80],
  ['SCTP', 81],
  ['TCP', 8080],
  ['TCP', 9090],
];
const WEB: Record<string, number | undefined> = { a: 8080, b: 9090, c: undefined };
const sel = (labels: Record<string, string>) => ({ matchLabels: labels });

const CASES: [string, unknown[], Expect][] = [
  ['no policy: every pod reaches every pod on every port', [], () => true],
  [
    'policyTypes [Ingress] without rules denies all ingress to the namespace',
    [policy('x', 'deny', { podSelector: {}, policyTypes: ['Ingress'] })],
    (_f, t) => t.ns !== 'x',
  ],
  [
    'ingress: [] without policyTypes is the same default deny (Ingress is always implied)',
    [policy('x', 'deny', { podSelector: {}, ingress: [] })],
    (_f, t) => t.ns !== 'x',
  ],
  [
    'an absent podSelector selects every pod of the namespace, like {}',
    [policy('x', 'deny', { ingress: [] })],
    (_f, t) => t.ns !== 'x',
  ],
  [
    'one empty ingress rule allows everything',
    [policy('x', 'allow', { podSelector: {}, ingress: [{}] })],
    () => true,
  ],
  [
    'a podSelector isolates only the pods it selects',
    [policy('x', 'deny-a', { podSelector: sel({ pod: 'a' }), ingress: [] })],
    (_f, t) => !(t.ns === 'x' && t.pod === 'a'),
  ],
  [
    'a podSelector peer alone picks pods of the policy namespace only',
    [policy('x', 'from-b', { podSelector: {}, ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }] }] })],
    (f, t) => t.ns !== 'x' || (f.ns === 'x' && f.pod === 'b'),
  ],
  [
    'a namespaceSelector peer alone picks every pod of the matching namespaces',
    [
      policy('x', 'from-y', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }) }] }],
      }),
    ],
    (f, t) => t.ns !== 'x' || f.ns === 'y',
  ],
  [
    'namespaceSelector AND podSelector in one peer: that pod in those namespaces',
    [
      policy('x', 'and', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }), podSelector: sel({ pod: 'b' }) }] }],
      }),
    ],
    (f, t) => t.ns !== 'x' || (f.ns === 'y' && f.pod === 'b'),
  ],
  [
    'namespaceSelector and podSelector as two peers: either',
    [
      policy('x', 'or', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }) }, { podSelector: sel({ pod: 'b' }) }] }],
      }),
    ],
    (f, t) => t.ns !== 'x' || f.ns === 'y' || (f.ns === 'x' && f.pod === 'b'),
  ],
  [
    'an empty namespaceSelector picks every pod of every namespace',
    [policy('x', 'all-ns', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }] }] })],
    () => true,
  ],
  [
    'an empty podSelector alone picks every pod of the policy namespace only',
    [policy('x', 'same-ns', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] })],
    (f, t) => t.ns !== 'x' || f.ns === 'x',
  ],
  [
    'an empty namespaceSelector with a podSelector: that pod in every namespace',
    [
      policy('x', 'b-anywhere', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: {}, podSelector: sel({ pod: 'b' }) }] }],
      }),
    ],
    (f, t) => t.ns !== 'x' || f.pod === 'b',
  ],
  [
    'matchExpressions In (policy podSelector) and NotIn (namespaceSelector)',
    [
      policy('x', 'expr', {
        podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['a', 'b'] }] },
        ingress: [
          {
            from: [
              { namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['y'] }] } },
            ],
          },
        ],
      }),
    ],
    (f, t) => !(t.ns === 'x' && t.pod !== 'c') || f.ns !== 'y',
  ],
  [
    'matchExpressions Exists (policy podSelector) and DoesNotExist (peer)',
    [
      policy('x', 'expr2', {
        podSelector: { matchExpressions: [{ key: 'tier', operator: 'Exists' }] },
        ingress: [
          { from: [{ podSelector: { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] } }] },
        ],
      }),
    ],
    (f, t) => !(t.ns === 'x' && t.pod === 'a') || (f.ns === 'x' && f.pod !== 'a'),
  ],
  [
    'matchLabels and matchExpressions together must both hold',
    [
      policy('x', 'both', {
        podSelector: {},
        ingress: [
          {
            from: [
              {
                namespaceSelector: {
                  matchLabels: { team: 'blue' },
                  matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }],
                },
              },
            ],
          },
        ],
      }),
    ],
    (f, t) => t.ns !== 'x' || f.ns === 'y',
  ],
  [
    'the kubernetes.io/metadata.name label selects a namespace by name',
    [
      policy('x', 'by-name', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: sel({ 'kubernetes.io/metadata.name': 'z' }) }] }],
      }),
    ],
    (f, t) => t.ns !== 'x' || f.ns === 'z',
  ],
  [
    'ipBlock with except: the block minus the excepted range (IPv4 only)',
    [
      policy('x', 'block', {
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.2.0/24'] } }] }],
      }),
    ],
    (f, t, _p, _n, fam) => t.ns !== 'x' || (fam === 4 && f.ns !== 'y'),
  ],
  [
    'IPv6 ipBlock with except',
    [
      policy('x', 'block6', {
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: 'fd00::/64', except: ['fd00::3:0/112'] } }] }],
      }),
    ],
    (f, t, _p, _n, fam) => t.ns !== 'x' || (fam === 6 && f.ns !== 'z'),
  ],
  [
    'a numeric port defaults to TCP',
    [policy('x', 'tcp80', { podSelector: {}, ingress: [{ ports: [{ port: 80 }] }] })],
    (_f, t, proto, port) => t.ns !== 'x' || (proto === 'TCP' && port === 80),
  ],
  [
    'a UDP port',
    [policy('x', 'udp80', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP', port: 80 }] }] })],
    (_f, t, proto, port) => t.ns !== 'x' || (proto === 'UDP' && port === 80),
  ],
  [
    'an SCTP port',
    [policy('x', 'sctp81', { podSelector: {}, ingress: [{ ports: [{ protocol: 'SCTP', port: 81 }] }] })],
    (_f, t, proto, port) => t.ns !== 'x' || (proto === 'SCTP' && port === 81),
  ],
  [
    'endPort: a range of ports',
    [policy('x', 'range', { podSelector: {}, ingress: [{ ports: [{ port: 80, endPort: 8080 }] }] })],
    (_f, t, proto, port) => t.ns !== 'x' || (proto === 'TCP' && port >= 80 && port <= 8080),
  ],
  [
    'a protocol without a port allows every port of that protocol',
    [policy('x', 'udp', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP' }] }] })],
    (_f, t, proto) => t.ns !== 'x' || proto === 'UDP',
  ],
  [
    'a named port means a different number on each destination pod (none on c)',
    [policy('x', 'web', { podSelector: {}, ingress: [{ ports: [{ port: 'web' }] }] })],
    (_f, t, proto, port) => t.ns !== 'x' || (proto === 'TCP' && port === WEB[t.pod]),
  ],
  [
    'a named port with its protocol',
    [
      policy('x', 'named-udp', {
        podSelector: {},
        ingress: [{ ports: [{ protocol: 'UDP', port: 'serve-80-udp' }] }],
      }),
    ],
    (_f, t, proto, port) => t.ns !== 'x' || (proto === 'UDP' && port === 80),
  ],
  [
    'peers AND ports within a rule, rules OR',
    [
      policy('x', 'rules', {
        podSelector: {},
        ingress: [
          { from: [{ podSelector: sel({ pod: 'b' }) }], ports: [{ port: 80 }] },
          { from: [{ namespaceSelector: sel({ ns: 'z' }) }] },
        ],
      }),
    ],
    (f, t, proto, port) =>
      t.ns !== 'x' || (f.ns === 'x' && f.pod === 'b' && proto === 'TCP' && port === 80) || f.ns === 'z',
  ],
  [
    'several policies selecting a pod: the union of what they allow',
    [
      policy('x', 'p1', { podSelector: {}, ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }] }] }),
      policy('x', 'p2', {
        podSelector: sel({ pod: 'a' }),
        ingress: [{ from: [{ namespaceSelector: sel({ ns: 'z' }) }] }],
      }),
    ],
    (f, t) => t.ns !== 'x' || (f.ns === 'x' && f.pod === 'b') || (t.pod === 'a' && f.ns === 'z'),
  ],
  [
    'policyTypes [Egress] without rules denies all egress, ingress untouched',
    [policy('x', 'no-egress', { podSelector: {}, policyTypes: ['Egress'] })],
    (f) => f.ns !== 'x',
  ],
  [
    'egress rules without policyTypes isolate both directions',
    [policy('x', 'to-y', { podSelector: {}, egress: [{ to: [{ namespaceSelector: sel({ ns: 'y' }) }] }] })],
    (f, t) => (f.ns !== 'x' || t.ns === 'y') && t.ns !== 'x',
  ],
  [
    'an egress named port resolves on each destination pod',
    [
      policy('x', 'egress-web', {
        podSelector: sel({ pod: 'c' }),
        policyTypes: ['Egress'],
        egress: [{ ports: [{ port: 'web' }] }],
      }),
    ],
    (f, t, proto, port) => !(f.ns === 'x' && f.pod === 'c') || (proto === 'TCP' && port === WEB[t.pod]),
  ],
  [
    'an egress named port to an ipBlock: the pods inside the block that define the name',
    [
      policy('x', 'egress-block-web', {
        podSelector: sel({ pod: 'c' }),
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: '10.0.2.0/24' } }], ports: [{ port: 'web' }] }],
      }),
    ],
    (f, t, proto, port, fam) =>
      !(f.ns === 'x' && f.pod === 'c') ||
      (fam === 4 && t.ns === 'y' && proto === 'TCP' && port === WEB[t.pod]),
  ],
  [
    'a policy of namespace y does not touch the pods of x',
    [policy('y', 'deny', { podSelector: {}, ingress: [] })],
    (_f, t) => t.ns !== 'y',
  ],
  [
    'egress of the sender and ingress of the receiver both apply',
    [
      policy('x', 'to-z', {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: sel({ ns: 'z' }) }] }],
      }),
      policy('z', 'from-xc', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: sel({ ns: 'x' }), podSelector: sel({ pod: 'c' }) }] }],
      }),
    ],
    (f, t) => (f.ns !== 'x' || t.ns === 'z') && (t.ns !== 'z' || (f.ns === 'x' && f.pod === 'c')),
  ],
];

const split = (k: string): P => {
  const [ns, p] = k.split('/');
  return { ns: ns!, pod: p! };
};

describe('translate: the reachability matrix of each case', () => {
  it('has at least 30 cases', () => expect(CASES.length).toBeGreaterThanOrEqual(30));
  it.each(CASES)('%s', (_name, policies, want) => {
    const ts = translateAll(policies);
    expect(Object.values(ts).flatMap((t) => t.problems)).toEqual([]);
    const wrong: string[] = [];
    for (const from of POD_KEYS)
      for (const to of POD_KEYS)
        for (const [proto, port] of PROBES)
          for (const fam of [4, 6] as const) {
            const got = reaches(ts, from, to, proto, port, fam);
            const exp = want(split(from), split(to), proto, port, fam);
            if (got !== exp)
              wrong.push(`${from} -> ${to} ${proto}/${port} IPv${fam}: got ${got}, want ${exp}`);
          }
    expect(wrong).toEqual([]);
  });
});

describe('translate: what it produces', () => {
  it('expresses except as the block minus the excepted prefix, in the fewest prefixes', () => {
    const t = translateFor(NODE1, [
      policy('x', 'block', {
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.2.0/24'] } }] }],
      }),
    ]);
    expect(t.sets).toHaveLength(1);
    expect(t.sets[0]!.pods).toBeUndefined();
    expect(t.sets[0]!.blocks!.v4).toEqual([
      '10.0.0.0/23',
      '10.0.3.0/24',
      '10.0.4.0/22',
      '10.0.8.0/21',
      '10.0.16.0/20',
      '10.0.32.0/19',
      '10.0.64.0/18',
      '10.0.128.0/17',
    ]);
    expect(t.sets[0]!.blocks!.v6).toEqual([]);
  });

  it("keeps a rule's pod addresses (hosts, in numeric order) apart from its blocks (fewest prefixes)", () => {
    const t = translateFor(NODE1, [
      policy('x', 'mixed', {
        podSelector: {},
        ingress: [
          {
            from: [
              { ipBlock: { cidr: '10.0.2.0/30' } },
              { namespaceSelector: sel({ ns: 'y' }) },
              { podSelector: {} },
            ],
          },
        ],
      }),
    ]);
    // y's pods .1 .2 (inside the /30) and .3 (right after it) and x's pods are plain addresses,
    // also those the block holds: the pods' set changes with pods, the block's with the policy.
    expect(t.sets[0]!.pods).toEqual({
      v4: ['10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.2.1', '10.0.2.2', '10.0.2.3'],
      v6: ['fd00::1:1', 'fd00::1:2', 'fd00::1:3', 'fd00::2:1', 'fd00::2:2', 'fd00::2:3'],
    });
    expect(t.sets[0]!.blocks).toEqual({ v4: ['10.0.2.0/30'], v6: [] });
  });

  it('keeps only the local pods, each with the policies that select it, keyed by the CNI interface name', () => {
    const ps = [
      policy('x', 'p1', { podSelector: {}, ingress: [] }),
      policy('x', 'p2', { podSelector: sel({ pod: 'a' }), policyTypes: ['Egress'] }),
    ];
    const t1 = translateFor(NODE1, ps);
    expect(
      t1.pods.map((p) => [`${p.namespace}/${p.name}`, p.policies, !!p.ingress, !!p.egress]).sort(),
    ).toEqual([
      ['x/a', ['x/p1', 'x/p2'], true, true],
      ['x/c', ['x/p1'], true, false],
    ]);
    expect(t1.pods.find((p) => p.name === 'a')!.ifname).toBe(podInterfaceName('x', 'a'));
    expect(translateFor(NODE2, ps).pods.map((p) => `${p.namespace}/${p.name}`)).toEqual(['x/b']);
  });

  it('resolves an ingress named port on each selected pod: one rule, different numbers', () => {
    const t = translateFor(NODE1, [
      policy('x', 'web', { podSelector: {}, ingress: [{ ports: [{ port: 'web' }] }] }),
    ]);
    const a = t.pods.find((p) => p.name === 'a')!;
    const c = t.pods.find((p) => p.name === 'c')!;
    expect(a.ingress).toEqual([
      { policy: 'x/web', rule: 0, ports: [{ protocol: 'TCP', port: 8080 }], named: ['web=TCP/8080'] },
    ]);
    // c defines no port named web: the rule allows it nothing, and c is still isolated.
    expect(c.ingress).toEqual([]);
    const b = translateFor(NODE2, [
      policy('x', 'web', { podSelector: {}, ingress: [{ ports: [{ port: 'web' }] }] }),
    ]);
    expect(b.pods[0]!.ingress![0]!.ports).toEqual([{ protocol: 'TCP', port: 9090 }]);
  });

  it('follows label changes of pods and namespaces and address changes as set contents', () => {
    const ps = [
      policy('x', 'from-y', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }) }] }],
      }),
    ];
    const before = translateFor(NODE1, ps);
    const moved = PODS.map((p) => (p.namespace === 'y' && p.name === 'a' ? { ...p, ips: ['10.9.9.9'] } : p));
    const after = translateFor(NODE1, ps, moved);
    expect(after.sets[0]!.pods!.v4).toContain('10.9.9.9');
    expect(after.sets[0]!.pods!.v4).not.toContain('10.0.2.1');
    expect(after.sets.map((s) => s.id)).toEqual(before.sets.map((s) => s.id));
    expect(after.pods).toEqual(before.pods);
  });

  it('skips a policy it cannot use and names the field and the value', () => {
    const t = translateFor(NODE1, [
      policy('x', 'bad-except', {
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] }],
      }),
      policy('x', 'bad-end', { podSelector: {}, ingress: [{ ports: [{ port: 'web', endPort: 90 }] }] }),
      policy('x', 'bad-peer', {
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }],
      }),
      policy('x', 'bad-op', {
        podSelector: { matchExpressions: [{ key: 'a', operator: 'Equals', values: ['b'] }] },
      }),
      policy('x', 'bad-proto', { podSelector: {}, ingress: [{ ports: [{ protocol: 'ICMP', port: 1 }] }] }),
    ]);
    expect(t.pods).toEqual([]);
    expect(t.problems).toEqual([
      'networkpolicy x/bad-except: spec.ingress[0].from[0].ipBlock.except[0]: "10.1.0.0/24" must be a strict subset of cidr 10.0.0.0/16',
      'networkpolicy x/bad-end: spec.ingress[0].ports[0].endPort: 90 needs a numeric port (port is "web")',
      'networkpolicy x/bad-peer: spec.ingress[0].from[0]: may not specify both ipBlock and another peer',
      expect.stringMatching(
        /^networkpolicy x\/bad-op: spec\.podSelector\.matchExpressions\[0\]\.operator: "Equals" /,
      ),
      expect.stringMatching(/^networkpolicy x\/bad-proto: spec\.ingress\[0\]\.ports\[0\]\.protocol: "ICMP" /),
    ]);
  });

  it("names a pod address it cannot read and keeps the pod's other addresses", () => {
    const t = translateFor(
      NODE1,
      [
        policy('x', 'from-y', {
          podSelector: {},
          ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }) }] }],
        }),
      ],
      [...PODS.filter((p) => p.namespace !== 'y'), { ...pod('y', 'a'), ips: ['10.0.2.1', '10.0.2.300'] }],
    );
    expect(t.problems).toEqual(['pod y/a: ips: "10.0.2.300" is not an IP address: IPv4 octet above 255']);
    expect(t.sets[0]!.pods!.v4).toEqual(['10.0.2.1']);
  });
});
