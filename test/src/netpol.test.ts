// NetworkPolicy conformance on the lab: namespaces x, y, z with pods a, b, c (labels pod=a|b|c;
// namespaces ns=x|y|z, y also team=blue) spread over the nodes, each serving TCP and UDP on 80 and
// 81. Each case applies policies (from the Kubernetes documentation's semantics), probes every pair
// on every port, protocol and family, and compares the whole matrix with the expected one, printing
// both (mismatches in brackets). The agents enforce with their default flags (--network-policy on).
// SCTP is not probed here: this kernel has no SCTP (socket() answers EPROTONOSUPPORT); the
// translation's SCTP rules are covered by packages/policy's matrix and nft tests.
import {
  type Lab,
  matrixKey,
  mismatches,
  type NetpolAllowed,
  type NetpolMatrix,
  type NetpolPod,
  NetpolWorld,
  netpolProbes,
  renderMatrix,
} from '@podnet/lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downScenarioLab, scenarioConfig, upScenarioLab } from './harness.js';

const config = scenarioConfig('np');
let lab: Lab;
let world: NetpolWorld;

beforeAll(async () => {
  lab = await upScenarioLab(config);
  world = new NetpolWorld(lab, { probeTimeoutMs: 1500, waitMs: 60_000, lifetimeS: 1800 });
  await world.up();
});

afterAll(() => downScenarioLab(config));

type Pred = NetpolAllowed;
type Sel = (q: NetpolPod) => boolean;
const all: Pred = () => true;
const never: Pred = () => false;
const inNs =
  (...ns: string[]): Sel =>
  (q) =>
    ns.includes(q.namespace);
const is =
  (...keys: string[]): Sel =>
  (q) =>
    keys.includes(q.key);
const named =
  (...names: string[]): Sel =>
  (q) =>
    names.includes(q.name);
/** Ingress of the pods `selected` picks is isolated: only `ok` passes into them. */
const ingress =
  (selected: Sel, ok: Pred): Pred =>
  (s, d, p) =>
    !selected(d) || ok(s, d, p);
/** Egress of the pods `selected` picks is isolated: only `ok` passes out of them. */
const egress =
  (selected: Sel, ok: Pred): Pred =>
  (s, d, p) =>
    !selected(s) || ok(s, d, p);
const from =
  (sel: Sel): Pred =>
  (s) =>
    sel(s);
const to =
  (sel: Sel): Pred =>
  (_s, d) =>
    sel(d);
const and =
  (...ps: Pred[]): Pred =>
  (s, d, p) =>
    ps.every((f) => f(s, d, p));
const or =
  (...ps: Pred[]): Pred =>
  (s, d, p) =>
    ps.some((f) => f(s, d, p));
const port =
  (proto: 'tcp' | 'udp', n?: number): Pred =>
  (_s, _d, p) =>
    p.proto === proto && (n === undefined || p.port === n);
const family =
  (f: 4 | 6): Pred =>
  (_s, _d, p) =>
    p.family === f;

const V4_POOL = '10.244.0.0/16';
const V6_POOL = 'fd00:244::/48';
const host = (ip: string) => (ip.includes(':') ? `${ip}/128` : `${ip}/32`);
const sel = (labels: Record<string, string>) => ({ matchLabels: labels });
const denyIngress = { podSelector: {}, policyTypes: ['Ingress'] };
const denyEgress = { podSelector: {}, policyTypes: ['Egress'] };
const podA = sel({ pod: 'a' });

interface Step {
  /** Changes before this step's matrix is checked (labels). */
  change?: (w: NetpolWorld) => Promise<void>;
  allowed: Pred;
}
interface Case {
  name: string;
  /** [namespace, name, spec] */
  policies: (w: NetpolWorld) => [string, string, Record<string, unknown>][];
  steps: Step[];
}

const cases: Case[] = [
  { name: 'no policy: every pod reaches every pod', policies: () => [], steps: [{ allowed: all }] },
  {
    name: 'default deny ingress in x; x still reaches out (replies pass by conntrack)',
    policies: () => [['x', 'deny-in', denyIngress]],
    steps: [{ allowed: ingress(inNs('x'), never) }],
  },
  {
    name: 'default deny egress in x; others still reach x',
    policies: () => [['x', 'deny-out', denyEgress]],
    steps: [{ allowed: egress(inNs('x'), never) }],
  },
  {
    name: 'default deny ingress and egress in x',
    policies: () => [['x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }]],
    steps: [{ allowed: and(ingress(inNs('x'), never), egress(inNs('x'), never)) }],
  },
  {
    name: 'an allow-all rule ({}) beside a default deny: the union allows everything',
    policies: () => [
      ['x', 'deny-in', denyIngress],
      ['x', 'allow-all', { podSelector: {}, ingress: [{}] }],
    ],
    steps: [{ allowed: all }],
  },
  {
    name: 'policyTypes absent with egress rules: Ingress and Egress both isolated',
    policies: () => [
      ['x', 'egress-y', { podSelector: {}, egress: [{ to: [{ namespaceSelector: sel({ ns: 'y' }) }] }] }],
    ],
    steps: [{ allowed: and(ingress(inNs('x'), never), egress(inNs('x'), to(inNs('y')))) }],
  },
  {
    name: 'policyTypes absent with egress: []: Ingress only',
    policies: () => [['x', 'no-egress-rules', { podSelector: {}, egress: [] }]],
    steps: [{ allowed: ingress(inNs('x'), never) }],
  },
  {
    name: 'podSelector isolates only the pods it selects',
    policies: () => [['x', 'deny-a', { podSelector: podA, policyTypes: ['Ingress'] }]],
    steps: [{ allowed: ingress(is('x/a'), never) }],
  },
  {
    name: 'a policy applies in its own namespace: podSelector {} peer = pods of y only',
    policies: () => [['y', 'same-ns', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }]],
    steps: [{ allowed: ingress(inNs('y'), from(inNs('y'))) }],
  },
  {
    name: 'from podSelector: matching pods of the policy namespace only',
    policies: () => [
      ['x', 'from-b', { podSelector: podA, ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }] }] }],
    ],
    steps: [{ allowed: ingress(is('x/a'), from(is('x/b'))) }],
  },
  {
    name: 'from namespaceSelector: every pod of the matching namespaces',
    policies: () => [
      ['x', 'from-y', { podSelector: podA, ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }) }] }] }],
    ],
    steps: [{ allowed: ingress(is('x/a'), from(inNs('y'))) }],
  },
  {
    name: 'namespaceSelector and podSelector in one peer: both must match (AND)',
    policies: () => [
      [
        'x',
        'from-y-b',
        {
          podSelector: podA,
          ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }), podSelector: sel({ pod: 'b' }) }] }],
        },
      ],
    ],
    steps: [{ allowed: ingress(is('x/a'), from(is('y/b'))) }],
  },
  {
    name: 'namespaceSelector and podSelector as two peers: either matches (OR)',
    policies: () => [
      [
        'x',
        'from-y-or-b',
        {
          podSelector: podA,
          ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }) }, { podSelector: sel({ pod: 'b' }) }] }],
        },
      ],
    ],
    steps: [
      {
        allowed: ingress(
          is('x/a'),
          from((s) => s.namespace === 'y' || s.key === 'x/b'),
        ),
      },
    ],
  },
  {
    name: 'namespaceSelector {} with podSelector: those pods in every namespace',
    policies: () => [
      [
        'x',
        'from-any-c',
        {
          podSelector: podA,
          ingress: [{ from: [{ namespaceSelector: {}, podSelector: sel({ pod: 'c' }) }] }],
        },
      ],
    ],
    steps: [{ allowed: ingress(is('x/a'), from(named('c'))) }],
  },
  {
    name: 'matchExpressions In',
    policies: () => [
      [
        'x',
        'in',
        {
          podSelector: podA,
          ingress: [
            {
              from: [
                { podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] } },
              ],
            },
          ],
        },
      ],
    ],
    steps: [{ allowed: ingress(is('x/a'), from(is('x/b', 'x/c'))) }],
  },
  {
    name: 'matchExpressions NotIn (on namespaces)',
    policies: () => [
      [
        'x',
        'notin',
        {
          podSelector: podA,
          ingress: [
            {
              from: [
                {
                  namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['y'] }] },
                },
              ],
            },
          ],
        },
      ],
    ],
    steps: [{ allowed: ingress(is('x/a'), from(inNs('x', 'z'))) }],
  },
  {
    name: 'matchExpressions Exists',
    policies: () => [
      [
        'x',
        'exists',
        {
          podSelector: podA,
          ingress: [
            { from: [{ namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'Exists' }] } }] },
          ],
        },
      ],
    ],
    steps: [{ allowed: ingress(is('x/a'), from(inNs('y'))) }],
  },
  {
    name: 'matchExpressions DoesNotExist',
    policies: () => [
      [
        'x',
        'doesnotexist',
        {
          podSelector: podA,
          ingress: [
            {
              from: [
                { namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] } },
              ],
            },
          ],
        },
      ],
    ],
    steps: [{ allowed: ingress(is('x/a'), from(inNs('x', 'z'))) }],
  },
  {
    name: 'namespaceSelector on kubernetes.io/metadata.name (set by the API server)',
    policies: () => [
      [
        'x',
        'by-name',
        {
          podSelector: podA,
          ingress: [{ from: [{ namespaceSelector: sel({ 'kubernetes.io/metadata.name': 'z' }) }] }],
        },
      ],
    ],
    steps: [{ allowed: ingress(is('x/a'), from(inNs('z'))) }],
  },
  {
    name: 'ports: TCP 80 (protocol defaults to TCP)',
    policies: () => [['x', 'tcp80', { podSelector: podA, ingress: [{ ports: [{ port: 80 }] }] }]],
    steps: [{ allowed: ingress(is('x/a'), port('tcp', 80)) }],
  },
  {
    name: 'ports: UDP 81',
    policies: () => [
      ['x', 'udp81', { podSelector: podA, ingress: [{ ports: [{ protocol: 'UDP', port: 81 }] }] }],
    ],
    steps: [{ allowed: ingress(is('x/a'), port('udp', 81)) }],
  },
  {
    name: 'ports: a protocol without a port allows every port of it',
    policies: () => [['x', 'udp-any', { podSelector: podA, ingress: [{ ports: [{ protocol: 'UDP' }] }] }]],
    steps: [{ allowed: ingress(is('x/a'), port('udp')) }],
  },
  {
    name: 'ports: endPort range TCP 80-81',
    policies: () => [
      [
        'x',
        'range',
        { podSelector: podA, ingress: [{ ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }] },
      ],
    ],
    steps: [{ allowed: ingress(is('x/a'), port('tcp')) }],
  },
  {
    name: 'ports: a named port (serve-81-udp)',
    policies: () => [
      [
        'x',
        'named',
        { podSelector: podA, ingress: [{ ports: [{ protocol: 'UDP', port: 'serve-81-udp' }] }] },
      ],
    ],
    steps: [{ allowed: ingress(is('x/a'), port('udp', 81)) }],
  },
  {
    name: 'ingress named port "web": TCP 80 on pods a, TCP 81 on pods b and c',
    policies: () => [['x', 'web-in', { podSelector: {}, ingress: [{ ports: [{ port: 'web' }] }] }]],
    steps: [{ allowed: ingress(inNs('x'), (_s, d, p) => port('tcp', d.name === 'a' ? 80 : 81)(_s, d, p)) }],
  },
  {
    name: 'egress named port "web" resolved on each destination pod',
    policies: () => [
      [
        'x',
        'web-out',
        { podSelector: podA, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'web' }] }] },
      ],
    ],
    steps: [{ allowed: egress(is('x/a'), (s, d, p) => port('tcp', d.name === 'a' ? 80 : 81)(s, d, p)) }],
  },
  {
    name: 'ipBlock with except, IPv4 and IPv6: every pod but x/b',
    policies: (w) => {
      const b = w.pod('x/b');
      return [
        [
          'x',
          'blocks',
          {
            podSelector: podA,
            ingress: [
              {
                from: [
                  { ipBlock: { cidr: V4_POOL, except: [host(b.ipv4)] } },
                  ...(b.ipv6 ? [{ ipBlock: { cidr: V6_POOL, except: [host(b.ipv6)] } }] : []),
                ],
              },
            ],
          },
        ],
      ];
    },
    steps: [
      {
        allowed: ingress(
          is('x/a'),
          from((s) => s.key !== 'x/b'),
        ),
      },
    ],
  },
  {
    name: 'ipBlock of one family: IPv4 allowed, IPv6 denied',
    policies: () => [
      ['x', 'v4-only', { podSelector: podA, ingress: [{ from: [{ ipBlock: { cidr: V4_POOL } }] }] }],
    ],
    steps: [{ allowed: ingress(is('x/a'), family(4)) }],
  },
  {
    name: 'egress ipBlock to one pod’s addresses',
    policies: (w) => {
      const c = w.pod('y/c');
      return [
        [
          'x',
          'to-yc',
          {
            podSelector: {},
            policyTypes: ['Egress'],
            egress: [
              {
                to: [
                  { ipBlock: { cidr: host(c.ipv4) } },
                  ...(c.ipv6 ? [{ ipBlock: { cidr: host(c.ipv6) } }] : []),
                ],
              },
            ],
          },
        ],
      ];
    },
    steps: [{ allowed: egress(inNs('x'), to(is('y/c'))) }],
  },
  {
    name: 'two policies selecting one pod: the union of what they allow',
    policies: () => [
      [
        'x',
        'b-tcp80',
        {
          podSelector: podA,
          ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }], ports: [{ port: 80 }] }],
        },
      ],
      [
        'x',
        'z-udp81',
        {
          podSelector: podA,
          ingress: [
            { from: [{ namespaceSelector: sel({ ns: 'z' }) }], ports: [{ protocol: 'UDP', port: 81 }] },
          ],
        },
      ],
    ],
    steps: [
      {
        allowed: ingress(
          is('x/a'),
          or(and(from(is('x/b')), port('tcp', 80)), and(from(inNs('z')), port('udp', 81))),
        ),
      },
    ],
  },
  {
    name: 'a rule is its peers AND its ports; rules are ORed',
    policies: () => [
      [
        'x',
        'two-rules',
        {
          podSelector: podA,
          ingress: [
            { from: [{ podSelector: sel({ pod: 'b' }) }], ports: [{ port: 80 }] },
            { from: [{ podSelector: sel({ pod: 'c' }) }], ports: [{ port: 81 }] },
          ],
        },
      ],
    ],
    steps: [
      {
        allowed: ingress(
          is('x/a'),
          or(and(from(is('x/b')), port('tcp', 80)), and(from(is('x/c')), port('tcp', 81))),
        ),
      },
    ],
  },
  {
    name: 'egress of the sender and ingress of the receiver must both allow',
    policies: () => [
      [
        'x',
        'a-to-y',
        {
          podSelector: podA,
          policyTypes: ['Egress'],
          egress: [{ to: [{ namespaceSelector: sel({ ns: 'y' }) }] }],
        },
      ],
      [
        'y',
        'b-from-x',
        { podSelector: sel({ pod: 'b' }), ingress: [{ from: [{ namespaceSelector: sel({ ns: 'x' }) }] }] },
      ],
    ],
    steps: [{ allowed: and(egress(is('x/a'), to(inNs('y'))), ingress(is('y/b'), from(inNs('x')))) }],
  },
  {
    name: 'conntrack: y/a reaches out although every pod of y denies ingress (replies pass)',
    policies: () => [
      ['y', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }],
      ['y', 'a-out', { podSelector: podA, policyTypes: ['Egress'], egress: [{}] }],
    ],
    steps: [{ allowed: and(ingress(inNs('y'), never), egress(is('y/b', 'y/c'), never)) }],
  },
  {
    name: 'namespace label changes apply live',
    policies: () => [
      [
        'x',
        'from-blue',
        { podSelector: podA, ingress: [{ from: [{ namespaceSelector: sel({ team: 'blue' }) }] }] },
      ],
    ],
    steps: [
      { allowed: ingress(is('x/a'), from(inNs('y'))) },
      {
        change: (w) => w.setNamespaceLabels('z', { ns: 'z', team: 'blue' }),
        allowed: ingress(is('x/a'), from(inNs('y', 'z'))),
      },
      { change: (w) => w.setNamespaceLabels('y', { ns: 'y' }), allowed: ingress(is('x/a'), from(inNs('z'))) },
    ],
  },
  {
    name: 'pod label changes apply live (peers and selected pods)',
    policies: () => [
      ['x', 'from-b', { podSelector: podA, ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }] }] }],
    ],
    steps: [
      { allowed: ingress(is('x/a'), from(is('x/b'))) },
      {
        change: (w) => w.setPodLabels('x/c', { pod: 'b' }),
        allowed: ingress(is('x/a'), from(is('x/b', 'x/c'))),
      },
      // x/b now carries pod=a: it is selected (isolated) and no longer a peer.
      {
        change: (w) => w.setPodLabels('x/b', { pod: 'a' }),
        allowed: ingress(is('x/a', 'x/b'), from(is('x/c'))),
      },
    ],
  },
  {
    name: 'a policy deleted: everything flows again',
    policies: () => [],
    steps: [{ allowed: all }],
  },
];

const pods = () => world.pods.map((p) => p.key);
const report = (what: string, expected: NetpolMatrix, seen: NetpolMatrix) => {
  const bad = mismatches(expected, seen);
  if (bad.length === 0) return bad;
  const fam = world.families();
  process.stderr.write(
    `\n[netpol] ${what}: ${bad.length} cells differ\n--- expected\n${renderMatrix(expected, pods(), fam)}\n--- observed ([ ] = differs)\n${renderMatrix(seen, pods(), fam, expected)}\n`,
  );
  return bad;
};

const sameMatrix = (a: NetpolMatrix | undefined, b: NetpolMatrix) =>
  !!a && a.size === b.size && [...b].every(([k, v]) => a.get(k) === v);

describe('NetworkPolicy conformance (x, y, z × a, b, c; TCP and UDP 80, 81; IPv4 and IPv6)', () => {
  let previous: NetpolMatrix | undefined;
  const started = Date.now();

  it('has at least 30 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });

  for (const c of cases)
    it(c.name, async () => {
      await world.deleteAllPolicies();
      await world.resetLabels();
      for (const [ns, name, spec] of c.policies(world)) await world.applyPolicy(ns, name, spec);
      for (const [i, step] of c.steps.entries()) {
        await step.change?.(world);
        const expected = world.expected(step.allowed);
        // A case whose matrix equals the previous one could pass on the previous state: the list
        // never has two such cases in a row.
        if (sameMatrix(previous, expected) && i === 0 && c.policies(world).length > 0) {
          throw new Error(`case ${c.name} has the previous case's matrix; make it differ`);
        }
        const seen = await world.waitFor(expected);
        previous = expected;
        expect(report(`${c.name} (step ${i + 1})`, expected, seen)).toEqual([]);
      }
    });

  it('allows traffic from a pod’s own node (kubelet probes) under default deny; other nodes are denied', async () => {
    await world.deleteAllPolicies();
    await world.resetLabels();
    for (const ns of ['x', 'y', 'z']) await world.applyPolicy(ns, 'deny-in', denyIngress);
    const nodes = lab.nodes.map((n) => ({ key: n.name, netns: n.ns }));
    const expected: NetpolMatrix = new Map();
    for (const n of nodes)
      for (const dst of world.pods)
        for (const p of netpolProbes(world.families()))
          expected.set(matrixKey(n.key, dst.key, p), dst.node === n.key);
    const seen = await world.waitFor(expected, nodes);
    const bad = mismatches(expected, seen);
    if (bad.length) process.stderr.write(`\n[netpol] node traffic:\n${bad.join('\n')}\n`);
    expect(bad).toEqual([]);
    expect(new Set(world.pods.map((p) => p.node)).size, 'pods spread over the nodes').toBeGreaterThan(1);
    process.stderr.write(
      `[netpol] ${cases.length} cases + node traffic in ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
    );
  });
});
