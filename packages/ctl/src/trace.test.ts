import { execFileSync } from 'node:child_process';
import type { NodeStatus } from '@podnet/k8s';
import { describe, expect, it } from 'vitest';
import { clusterStatus } from './cluster.js';
import { completion } from './completion.js';
import { type TraceInput, trace, traceResult } from './trace.js';

const NOW = Date.parse('2026-01-01T00:10:00Z');

function ns(name: string, over: Partial<NonNullable<NodeStatus['status']>> = {}): NodeStatus {
  return {
    metadata: { name },
    status: {
      agentVersion: '0.1.0',
      address: '10.88.0.11',
      ready: true,
      reasons: [],
      sessions: [],
      establishedSessions: 0,
      totalSessions: 0,
      routes: {
        ipv4: { desired: 3, installed: 3, failed: 0, pending: 0 },
        ipv6: { desired: 0, installed: 0, failed: 0, pending: 0 },
      },
      ipam: { blocks: [], addressesInUse: 0 },
      heartbeatSeconds: 60,
      lastUpdate: '2026-01-01T00:09:30Z',
      ...over,
    },
  };
}

const session = (peerNode: string, state: 'Established' | 'Active') => ({
  peer: peerNode === 'b' ? '10.88.0.12' : '10.88.0.13',
  type: 'mesh',
  source: 'node-to-node-mesh',
  peerNode,
  remoteAs: 64512,
  state,
  since: '2026-01-01T00:05:00Z',
  prefixesAccepted: 1,
  prefixesAdvertised: 1,
  ...(state === 'Active' ? { lastError: 'connection refused' } : {}),
});

describe('cluster status', () => {
  it("shows every node's state and sessions in one table; stale and missing NodeStatus say so", () => {
    const r = clusterStatus(
      ['a', 'b', 'c', 'd'],
      [
        ns('a', { sessions: [session('b', 'Established'), session('c', 'Active')] }),
        ns('b', { ready: false, reasons: ['sessions not established: 10.88.0.13 Active'] }),
        ns('c', { lastUpdate: '2026-01-01T00:00:00Z' }),
      ],
      NOW,
    );
    expect(r.exitCode).toBe(1);
    expect(
      (r.data as { nodes: { node: string; state: string }[] }).nodes.map((n) => [n.node, n.state]),
    ).toEqual([
      ['a', 'Ready'],
      ['b', 'NotReady'],
      ['c', 'Stale'],
      ['d', 'NoStatus'],
    ]);
    const t = r.table();
    expect(t.split('\n').slice(0, 6)).toEqual([
      'NODE  STATE     PEER        TYPE  SESSION      SINCE  ACCEPTED  ADVERTISED  INFO',
      'a     Ready     10.88.0.12  mesh  Established  5m0s          1           1  node b',
      'a     Ready     10.88.0.13  mesh  Active       5m0s          1           1  connection refused',
      'b     NotReady  -           -     -            -             -           -  sessions not established: 10.88.0.13 Active',
      'c     Stale     -           -     -            -             -           -  last written 10m0s ago (every 60s expected): the agent stopped',
      'd     NoStatus  -           -     -            -             -           -  no NodeStatus: is podnet-agent running on this node?',
    ]);
    expect(t).toContain('1 of 4 nodes Ready; 1 of 2 sessions Established.');
  });
});

const base = (over: Partial<TraceInput> = {}): TraceInput => ({
  src: { namespace: 'default', name: 'p1', node: 'a', ips: ['10.244.0.1'], iface: 'pnaaaaaaaaaaa' },
  dst: {
    kind: 'pod',
    namespace: 'default',
    name: 'p2',
    node: 'b',
    ips: ['10.244.0.65'],
    iface: 'pnbbbbbbbbbbb',
  },
  blocks: [
    { cidr: '10.244.0.0/26', node: 'a' },
    { cidr: '10.244.0.64/26', node: 'b' },
  ],
  nodeStatuses: [ns('a', { sessions: [session('b', 'Established')] }), ns('b')],
  ...over,
});

const kernelA = {
  routes: [
    { dst: '10.244.0.1/32', kind: 'unicast', via: [], dev: 'pnaaaaaaaaaaa', protocol: 213 },
    { dst: '10.244.0.0/26', kind: 'blackhole', via: [], protocol: 213 },
    { dst: '10.244.0.64/26', kind: 'unicast', via: ['10.88.0.12'], protocol: 213 },
    { dst: '0.0.0.0/0', kind: 'unicast', via: ['10.88.0.1'], protocol: 3 },
  ],
  links: [{ name: 'pnaaaaaaaaaaa', up: true }],
};

describe('trace', () => {
  it('from the API only: every hop ok or not-checked, and the policy hook hop is present', () => {
    const t = trace(base());
    expect(t.ip).toBe('10.244.0.65');
    expect(t.hops.map((h) => `${h.hop}: ${h.status}`)).toEqual([
      'source pod: ok',
      'source veth: not-checked',
      'egress policy: not-checked',
      'route to destination node: ok',
      'kernel route: not-checked',
      'destination node: ok',
      'destination veth: not-checked',
      'ingress policy: not-checked',
    ]);
  });

  it("on the source node: the pod's host route, the kernel's route and the agent's BGP best path", () => {
    const r = traceResult(
      base({
        local: {
          node: 'a',
          kernel: kernelA,
          agent: {
            routes: [
              {
                dst: '10.244.0.64/26',
                type: 'remote',
                source: 'bgp',
                via: ['10.88.0.12'],
                peer: '10.88.0.12:179',
                state: 'installed',
              },
            ],
          } as never,
        },
      }),
    );
    const hops = (r.data as ReturnType<typeof trace>).hops;
    expect(hops.find((h) => h.hop === 'source veth')).toMatchObject({
      status: 'ok',
      detail: '10.244.0.1/32 dev pnaaaaaaaaaaa proto podnet; pnaaaaaaaaaaa up',
    });
    expect(hops.find((h) => h.hop === 'kernel route')).toMatchObject({
      status: 'ok',
      detail:
        '10.244.0.64/26 via 10.88.0.12 proto podnet; BGP best path 10.244.0.64/26 via 10.88.0.12 from peer 10.88.0.12:179 (agent: installed)',
    });
    expect(r.exitCode).toBe(0);
  });

  it('says what is missing: no route to the block (the blackhole of a covering block drops it), a down session, a missing veth', () => {
    const k = {
      routes: kernelA.routes.filter((x) => x.dst !== '10.244.0.64/26' && x.dst !== '10.244.0.1/32'),
      links: [],
    };
    k.routes.push({ dst: '10.244.0.0/16', kind: 'blackhole', via: [], protocol: 213 });
    const t = trace(
      base({
        nodeStatuses: [
          ns('a', { sessions: [session('b', 'Active')] }),
          ns('b', { ready: false, reasons: ['x'] }),
        ],
        local: { node: 'a', kernel: k },
      }),
    );
    const by = Object.fromEntries(t.hops.map((h) => [h.hop, h]));
    expect(by['source veth']).toMatchObject({
      status: 'problem',
      detail: 'interface pnaaaaaaaaaaa is missing; no route 10.244.0.1/32 dev pnaaaaaaaaaaa',
    });
    expect(by['route to destination node']!.detail).toContain(
      'session with b (10.88.0.12) Active: connection refused',
    );
    expect(by['kernel route']).toMatchObject({
      status: 'problem',
      detail: 'blackhole 10.244.0.0/16 proto podnet drops it: the more specific route is missing',
    });
    expect(by['destination node']).toMatchObject({ status: 'problem', detail: 'agent not ready: x' });
  });

  it("an address of the node's own block that no pod holds: the block's blackhole drops it", () => {
    const t = trace(base({ dst: { kind: 'ip', ip: '10.244.0.7' }, local: { node: 'a', kernel: kernelA } }));
    expect(t.hops.find((h) => h.hop === 'kernel route')).toMatchObject({
      status: 'problem',
      detail:
        "blackhole 10.244.0.0/26 proto podnet drops it: 10.244.0.7 is in this node's block 10.244.0.0/26 but no pod here has it",
    });
  });

  it('to an outside IP: the route leaves by the default route; a policy hook gives its verdict', () => {
    const t = trace(
      base({
        dst: { kind: 'ip', ip: '192.0.2.7' },
        local: { node: 'a', kernel: kernelA },
        policy: ({ side, srcIp, dstIp }) => ({
          status: 'problem',
          detail: `${side} ${srcIp} → ${dstIp} denied by test`,
          node: 'a',
          decidedBy: ['default/deny'],
        }),
      }),
    );
    expect(t.hops.find((h) => h.hop === 'kernel route')!.detail).toBe('0.0.0.0/0 via 10.88.0.1 proto 3');
    expect(t.hops.find((h) => h.hop === 'egress policy')).toMatchObject({
      status: 'problem',
      detail: 'egress 10.244.0.1 → 192.0.2.7 denied by test',
      decidedBy: ['default/deny'],
    });
    // An IP destination: the hook decides whether a pod's ingress applies.
    expect(t.hops.find((h) => h.hop === 'ingress policy')?.where).toBe('node a');
  });

  it("names the agent's kernel routes by the route protocol its /status gives, not a fixed 213", () => {
    const proto150 = {
      routes: kernelA.routes.map((r) => (r.protocol === 213 ? { ...r, protocol: 150 } : r)),
      links: kernelA.links,
    };
    const agent = (n: number) => ({ routes: [], routeProtocol: { number: n, name: 'podnet' } }) as never;
    const hopsWith = (kernel: typeof kernelA, n: number) =>
      trace(base({ local: { node: 'a', kernel, agent: agent(n) } })).hops;
    expect(hopsWith(proto150, 150).find((h) => h.hop === 'kernel route')).toMatchObject({
      status: 'ok',
      detail: '10.244.0.64/26 via 10.88.0.12 proto podnet',
    });
    // Routes of another protocol are not podnet's: the block of node b has no podnet route.
    expect(hopsWith(kernelA, 150).find((h) => h.hop === 'kernel route')).toMatchObject({
      status: 'problem',
      detail:
        'no podnet route (protocol 150) for block 10.244.0.64/26 of node b: 10.244.0.65 takes 10.244.0.64/26 via 10.88.0.12 proto 213',
    });
    expect(hopsWith(kernelA, 150).find((h) => h.hop === 'source veth')!.detail).toBe(
      '10.244.0.1/32 dev pnaaaaaaaaaaa proto 213; pnaaaaaaaaaaa up',
    );
  });

  it("the route to another node's block is missing when only the default route covers it", () => {
    const k = { ...kernelA, routes: kernelA.routes.filter((x) => x.dst !== '10.244.0.64/26') };
    expect(
      trace(base({ local: { node: 'a', kernel: k } })).hops.find((h) => h.hop === 'kernel route'),
    ).toMatchObject({
      status: 'problem',
      detail:
        'no podnet route (protocol 213) for block 10.244.0.64/26 of node b: 10.244.0.65 takes 0.0.0.0/0 via 10.88.0.1 proto 3',
    });
  });
});

describe('completion', () => {
  it('bash completes commands, subcommands and output formats (run in bash)', () => {
    const script = completion('bash');
    const ask = (words: string[]) =>
      execFileSync('bash', [
        '-c',
        `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _podnetctl; echo "\${COMPREPLY[@]}"`,
      ])
        .toString()
        .trim();
    expect(ask(['podnetctl', 'c'])).toBe('cluster completion');
    expect(ask(['podnetctl', 'cluster', ''])).toBe('status');
    expect(ask(['podnetctl', '-o', 'y'])).toBe('yaml');
    expect(ask(['podnetctl', 'completion', ''])).toBe('bash zsh');
    expect(ask(['podnetctl', 'trace', 'a/b', 'c/d', '--protocol', ''])).toBe('tcp udp sctp icmp');
    expect(ask(['podnetctl', 'trace', 'a/b', 'c/d', '--p'])).toBe('--port --protocol');
  });

  it('zsh defines the completion function for podnetctl, and other shells are refused', () => {
    expect(completion('zsh')).toMatch(/^#compdef podnetctl[\s\S]*compdef _podnetctl podnetctl$/);
    expect(() => completion('fish')).toThrow(/completion "fish": use bash or zsh/);
  });
});
