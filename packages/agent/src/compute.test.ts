import { describe, expect, it } from 'vitest';
import { compute, REJECT_ALL, resolveAsNumber, splitPeerIP } from './compute.js';
import type { ComputeInputs, NodeView } from './model.js';

const node = (name: string, ip: string, extra: Partial<NodeView> = {}): NodeView => ({
  name,
  labels: { 'kubernetes.io/hostname': name },
  ipv4: `${ip}/24`,
  ...extra,
});

function inputs(over: Partial<ComputeInputs> = {}): ComputeInputs {
  return {
    nodeName: 'node-a',
    nodes: [node('node-a', '10.0.0.11'), node('node-b', '10.0.0.12'), node('node-c', '10.0.0.13')],
    pools: [
      { name: 'default', cidr: '10.244.0.0/16', blockSize: 26, disabled: false, disableBGPExport: false },
    ],
    bgpConfigs: [],
    peers: [],
    secrets: {},
    blocks: [
      { cidr: '10.244.1.0/26', affinity: 'node-a' },
      { cidr: '10.244.1.64/26', affinity: 'node-a' },
      { cidr: '10.244.2.0/26', affinity: 'node-b' },
    ],
    affinities: [
      { node: 'node-a', cidr: '10.244.1.0/26', state: 'confirmed' },
      { node: 'node-a', cidr: '10.244.1.64/26', state: 'pending' },
      { node: 'node-b', cidr: '10.244.2.0/26', state: 'confirmed' },
    ],
    pods: [],
    rib: [],
    ...over,
  };
}

describe('compute: address families', () => {
  it('takes the families in use from the IPPools', () => {
    expect(compute(inputs()).families).toEqual([4]);
    const dual = compute(
      inputs({
        pools: [
          { name: 'v6', cidr: 'fd00:244::/48', blockSize: 122, disabled: false, disableBGPExport: false },
          { name: 'v4', cidr: '10.244.0.0/16', blockSize: 26, disabled: true, disableBGPExport: false },
        ],
      }),
    );
    expect(dual.families).toEqual([4, 6]);
    expect(compute(inputs({ pools: [] })).families).toEqual([]);
  });
});

describe('compute: advertisements', () => {
  it('announces confirmed blocks with the node as next hop and never pending ones', () => {
    const d = compute(inputs());
    expect(d.advertisements.map((a) => [a.prefix, a.nextHop, a.source])).toEqual([
      ['10.244.1.0/26', '10.0.0.11', 'block'],
    ]);
  });

  it('installs a blackhole for each owned confirmed block only', () => {
    const d = compute(inputs());
    expect(d.routes.filter((r) => r.type === 'blackhole').map((r) => r.dst)).toEqual(['10.244.1.0/26']);
  });

  it('announces a borrowed /32 when a local pod address lies outside the node own blocks', () => {
    const d = compute(
      inputs({
        pods: [
          { namespace: 'default', name: 'p1', ips: ['10.244.1.5'], iface: 'pn0123456789a' },
          { namespace: 'default', name: 'p2', ips: ['10.244.2.9'], iface: 'pn0123456789b' },
        ],
      }),
    );
    expect(d.advertisements.map((a) => `${a.prefix} ${a.source}`)).toEqual([
      '10.244.1.0/26 block',
      '10.244.2.9/32 borrowed',
    ]);
  });

  it('does not announce blocks of pools with disableBGPExport but still blackholes them', () => {
    const d = compute(
      inputs({
        pools: [
          { name: 'quiet', cidr: '10.244.0.0/16', blockSize: 26, disabled: false, disableBGPExport: true },
        ],
      }),
    );
    expect(d.advertisements).toEqual([]);
    expect(d.routes.some((r) => r.type === 'blackhole')).toBe(true);
  });

  it('adds service ranges and communities from the default BGPConfiguration', () => {
    const d = compute(
      inputs({
        bgpConfigs: [
          {
            name: 'default',
            serviceClusterIPs: ['10.96.0.0/12'],
            serviceLoadBalancerIPs: ['192.0.2.0/28', 'nonsense'],
            communities: [{ cidr: '0.0.0.0/0', values: ['65000:100', '65000:1:2'] }],
          },
        ],
      }),
    );
    expect(d.advertisements.map((a) => `${a.prefix} ${a.source}`)).toEqual([
      '10.96.0.0/12 service-cluster-ip',
      '10.244.1.0/26 block',
      '192.0.2.0/28 service-loadbalancer-ip',
    ]);
    expect(d.advertisements[0]!.communities).toEqual(['65000:100']);
    expect(d.advertisements[0]!.largeCommunities).toEqual(['65000:1:2']);
    expect(d.problems.join()).toMatch(/nonsense/);
  });

  it('announces nothing and configures no peer while the node address is unknown', () => {
    const d = compute(inputs({ nodes: [node('node-b', '10.0.0.12')] }));
    expect(d.advertisements).toEqual([]);
    expect(d.peers).toEqual([]);
    expect(d.node.address).toBeUndefined();
  });
});

describe('compute: dual stack', () => {
  const v6 = {
    pools: [
      { name: 'v4', cidr: '10.244.0.0/16', blockSize: 26, disabled: false, disableBGPExport: false },
      { name: 'v6', cidr: 'fd00:10:244::/48', blockSize: 122, disabled: false, disableBGPExport: false },
    ],
    blocks: [
      { cidr: '10.244.1.0/26', affinity: 'node-a' },
      { cidr: 'fd00:10:244::/122', affinity: 'node-a' },
    ],
    affinities: [
      { node: 'node-a', cidr: '10.244.1.0/26', state: 'confirmed' as const },
      { node: 'node-a', cidr: 'fd00:10:244::/122', state: 'confirmed' as const },
    ],
  };

  it('announces IPv6 blocks with the node IPv6 address as next hop', () => {
    const d = compute(
      inputs({
        ...v6,
        nodes: [node('node-a', '10.0.0.11', { ipv6: 'fd00:88::11/64' }), node('node-b', '10.0.0.12')],
        rib: [{ prefix: 'fd00:10:244::40/122', nextHops: ['fd00:88::12'] }],
      }),
    );
    expect(d.advertisements.map((a) => [a.prefix, a.nextHop])).toEqual([
      ['10.244.1.0/26', '10.0.0.11'],
      ['fd00:10:244::/122', 'fd00:88::11'],
    ]);
    expect(d.routes).toContainEqual({
      type: 'remote',
      dst: 'fd00:10:244::40/122',
      via: ['fd00:88::12'],
      source: 'bgp',
    });
  });

  it('does not announce an IPv6 block without an IPv6 node address, and says so', () => {
    const d = compute(inputs(v6));
    expect(d.advertisements.map((a) => a.prefix)).toEqual(['10.244.1.0/26']);
    expect(d.problems.join()).toMatch(/fd00:10:244::\/122: not announced.*ipv6-address/);
  });
});

describe('compute: routes', () => {
  it('programs each local pod /32 on its pn interface and answers ARP there', () => {
    const d = compute(
      inputs({ pods: [{ namespace: 'ns', name: 'web', ips: ['10.244.1.7'], iface: 'pnabcdef01234' }] }),
    );
    expect(d.routes).toContainEqual({
      type: 'local',
      dst: '10.244.1.7/32',
      iface: 'pnabcdef01234',
      source: 'pod',
      pod: 'ns/web',
    });
    expect(d.arpInterfaces).toEqual([{ iface: 'pnabcdef01234', podIps: ['10.244.1.7'] }]);
  });

  it.each([
    {
      name: 'one next hop',
      rib: [{ prefix: '10.244.2.0/26', nextHops: ['10.0.0.12'] }],
      want: [['10.244.2.0/26', ['10.0.0.12']]],
    },
    {
      name: 'ECMP next hops, sorted and deduplicated',
      rib: [{ prefix: '10.244.3.0/26', nextHops: ['10.0.0.13', '10.0.0.12', '10.0.0.13'] }],
      want: [['10.244.3.0/26', ['10.0.0.12', '10.0.0.13']]],
    },
    { name: 'a prefix outside every pool', rib: [{ prefix: '0.0.0.0/0', nextHops: ['10.0.0.1'] }], want: [] },
    {
      name: 'our own block reflected back',
      rib: [{ prefix: '10.244.1.0/26', nextHops: ['10.0.0.12'] }],
      want: [],
    },
    {
      name: 'a path whose next hop is ourselves',
      rib: [{ prefix: '10.244.9.0/26', nextHops: ['10.0.0.11'] }],
      want: [],
    },
  ])('remote routes from the Loc-RIB: $name', ({ rib, want }) => {
    const d = compute(inputs({ rib }));
    const remote = d.routes
      .filter((r) => r.type === 'remote')
      .map((r) => [r.dst, r.type === 'remote' ? r.via : []]);
    expect(remote).toEqual(want);
  });

  it('skips invalid pod addresses and reports them', () => {
    const d = compute(
      inputs({ pods: [{ namespace: 'ns', name: 'bad', ips: ['10.244.1.300'], iface: 'pnx' }] }),
    );
    expect(d.routes.filter((r) => r.type === 'local')).toEqual([]);
    expect(d.problems[0]).toMatch(/ns\/bad.*10\.244\.1\.300/);
  });
});

describe('compute: peers', () => {
  it('meshes with every other node, passive towards higher addresses', () => {
    const d = compute(inputs({ nodeName: 'node-b' }));
    expect(d.peers.map((p) => [p.address, p.type, p.passive, p.remoteAs])).toEqual([
      ['10.0.0.11', 'mesh', false, 64512],
      ['10.0.0.13', 'mesh', true, 64512],
    ]);
  });

  it('for any pair of nodes exactly one side is passive', () => {
    const all = ['node-a', 'node-b', 'node-c'].map((n) => compute(inputs({ nodeName: n })));
    for (const d of all) {
      for (const p of d.peers) {
        const other = all.find((o) => o.node.address === p.address)!;
        const back = other.peers.find((q) => q.address === d.node.address)!;
        expect(p.passive).not.toBe(back.passive);
      }
    }
  });

  it('configures no mesh when nodeToNodeMesh is false', () => {
    const d = compute(inputs({ bgpConfigs: [{ name: 'default', nodeToNodeMesh: false }] }));
    expect(d.peers).toEqual([]);
  });

  it('takes the AS number from the node annotation, then node.<name>, then default, then 64512', () => {
    const cfgs = [
      { name: 'default', asNumber: 65000 },
      { name: 'node.node-b', asNumber: 65002 },
    ];
    expect(resolveAsNumber(node('node-a', '1.1.1.1', { asNumber: 65111 }), 'node-a', cfgs)).toBe(65111);
    expect(resolveAsNumber(node('node-b', '1.1.1.2'), 'node-b', cfgs)).toBe(65002);
    expect(resolveAsNumber(node('node-c', '1.1.1.3'), 'node-c', cfgs)).toBe(65000);
    expect(resolveAsNumber(undefined, 'node-c', [])).toBe(64512);
  });

  it('applies a global BGPPeer on every node and a node BGPPeer only on its node', () => {
    const peers = [
      { name: 'tor', peerIP: '10.0.0.1', asNumber: 65100 },
      { name: 'only-b', peerIP: '10.0.0.2:1179', asNumber: 65200, node: 'node-b' },
      { name: 'rack1', peerIP: '10.0.0.3', asNumber: 65300, nodeSelector: 'rack=r1' },
    ];
    const a = compute(inputs({ peers }));
    expect(a.peers.filter((p) => p.type !== 'mesh').map((p) => [p.key, p.type, p.passive])).toEqual([
      ['10.0.0.1:179', 'global', false],
    ]);
    const b = compute(
      inputs({
        nodeName: 'node-b',
        peers,
        nodes: [node('node-a', '10.0.0.11'), node('node-b', '10.0.0.12', { labels: { rack: 'r1' } })],
      }),
    );
    expect(b.peers.filter((p) => p.type !== 'mesh').map((p) => [p.key, p.type, p.remoteAs])).toEqual([
      ['10.0.0.1:179', 'global', 65100],
      ['10.0.0.2:1179', 'node', 65200],
      ['10.0.0.3:179', 'node', 65300],
    ]);
  });

  it('uses the node own AS towards an eBGP ToR (per-node AS)', () => {
    const d = compute(
      inputs({
        nodes: [
          node('node-a', '10.0.0.11', { asNumber: 65011 }),
          node('node-b', '10.0.0.12', { asNumber: 65012 }),
        ],
        peers: [{ name: 'tor', peerIP: '10.0.0.1', asNumber: 65000 }],
        bgpConfigs: [{ name: 'default', nodeToNodeMesh: false }],
      }),
    );
    expect(d.peers.map((p) => [p.address, p.localAs, p.remoteAs])).toEqual([['10.0.0.1', 65011, 65000]]);
  });

  it('peers with the nodes a peerSelector picks, at their addresses and AS', () => {
    const d = compute(
      inputs({
        nodes: [
          node('node-a', '10.0.0.11'),
          node('node-b', '10.0.0.12', { labels: { edge: 'yes' }, asNumber: 65012 }),
          node('node-c', '10.0.0.13'),
        ],
        bgpConfigs: [{ name: 'default', nodeToNodeMesh: false }],
        peers: [{ name: 'to-edge', peerSelector: 'edge' }],
      }),
    );
    expect(d.peers.map((p) => [p.address, p.type, p.remoteAs, p.source])).toEqual([
      ['10.0.0.12', 'global', 65012, 'to-edge'],
    ]);
  });

  it('route reflectors leave the mesh and take every other node as rr-client', () => {
    const nodes = [
      node('rr-1', '10.0.0.5', { rrClusterId: '1.0.0.1' }),
      node('node-a', '10.0.0.11'),
      node('node-b', '10.0.0.12'),
    ];
    const rr = compute(inputs({ nodeName: 'rr-1', nodes }));
    expect(rr.node.clusterId).toBe('1.0.0.1');
    expect(rr.peers.map((p) => [p.address, p.type, p.routeReflectorClient])).toEqual([
      ['10.0.0.11', 'rr-client', true],
      ['10.0.0.12', 'rr-client', true],
    ]);
    const a = compute(
      inputs({ nodeName: 'node-a', nodes, bgpConfigs: [{ name: 'default', nodeToNodeMesh: false }] }),
    );
    expect(a.peers.map((p) => [p.address, p.type, p.routeReflectorClient])).toEqual([
      ['10.0.0.5', 'route-reflector', false],
    ]);
  });

  it('skips a peer whose password secret is missing and says which', () => {
    const d = compute(
      inputs({
        peers: [
          { name: 'tor', peerIP: '10.0.0.1', asNumber: 65000, password: { secretName: 'bgp', key: 'tor' } },
        ],
        bgpConfigs: [{ name: 'default', nodeToNodeMesh: false }],
      }),
    );
    expect(d.peers).toEqual([]);
    expect(d.problems[0]).toMatch(/secret bgp key tor not found/);
    const ok = compute(
      inputs({
        peers: [
          { name: 'tor', peerIP: '10.0.0.1', asNumber: 65000, password: { secretName: 'bgp', key: 'tor' } },
        ],
        bgpConfigs: [{ name: 'default', nodeToNodeMesh: false }],
        secrets: { 'bgp/tor': 's3cret' },
      }),
    );
    expect(ok.peers[0]!.password).toBe('s3cret');
  });

  it('reports a BGPPeer with a bad peerIP or selector and keeps the rest', () => {
    const d = compute(
      inputs({
        peers: [
          { name: 'bad-ip', peerIP: '10.0.0.300', asNumber: 1 },
          { name: 'bad-sel', nodeSelector: 'rack in (x', peerIP: '10.0.0.9', asNumber: 1 },
          { name: 'good', peerIP: '10.0.0.1', asNumber: 65000 },
        ],
      }),
    );
    expect(d.peers.some((p) => p.source === 'good')).toBe(true);
    expect(d.problems.join('\n')).toMatch(/bad-ip/);
    expect(d.problems.join('\n')).toMatch(/bad-sel/);
  });

  it('takes hold and keepalive from BGPConfiguration and BGPPeer overrides', () => {
    const d = compute(
      inputs({
        bgpConfigs: [{ name: 'default', holdTime: 9 }],
        peers: [{ name: 'tor', peerIP: '10.0.0.1', asNumber: 65000, holdTime: 30 }],
      }),
    );
    const mesh = d.peers.find((p) => p.type === 'mesh')!;
    const tor = d.peers.find((p) => p.source === 'tor')!;
    expect([mesh.holdTime, mesh.keepaliveTime]).toEqual([9, 3]);
    expect([tor.holdTime, tor.keepaliveTime]).toEqual([30, 10]);
  });
});

describe('compute: BGPPeer sourceAddress', () => {
  it.each([
    [undefined, '10.0.0.11'],
    ['UseNodeIP', '10.0.0.11'],
    ['None', undefined],
    ['10.0.0.99', '10.0.0.99'],
  ])('%s binds the session to %s', (sourceAddress, want) => {
    const d = compute(
      inputs({
        bgpConfigs: [{ name: 'default', nodeToNodeMesh: false }],
        peers: [
          { name: 'tor', peerIP: '10.0.0.1', asNumber: 65000, ...(sourceAddress ? { sourceAddress } : {}) },
        ],
      }),
    );
    expect(d.peers[0]!.localAddress).toBe(want);
  });
});

describe('compute: BGPPeer source address per family', () => {
  const dual = (sourceAddress?: string) =>
    compute(
      inputs({
        nodes: [node('node-a', '10.0.0.11', { ipv6: 'fd00::11/64' }), node('node-b', '10.0.0.12')],
        bgpConfigs: [{ name: 'default', nodeToNodeMesh: false }],
        peers: [
          { name: 'tor', peerIP: '10.0.0.1', asNumber: 65000, ...(sourceAddress ? { sourceAddress } : {}) },
          { name: 'tor6', peerIP: 'fd00::1', asNumber: 65000, ...(sourceAddress ? { sourceAddress } : {}) },
        ],
      }),
    ).peers.map((p) => [p.address, p.localAddress]);

  it('binds an IPv6 session to the node IPv6 address and an IPv4 session to the IPv4 one', () => {
    expect(dual()).toEqual([
      ['10.0.0.1', '10.0.0.11'],
      ['fd00::1', 'fd00::11'],
    ]);
    expect(dual('UseNodeIP')).toEqual(dual());
  });

  it('lets the kernel pick the source of an IPv6 session when the node has no IPv6 address', () => {
    const d = compute(
      inputs({
        bgpConfigs: [{ name: 'default', nodeToNodeMesh: false }],
        peers: [{ name: 'tor6', peerIP: '[fd00::1]:179', asNumber: 65000 }],
      }),
    );
    expect(d.peers.map((p) => [p.address, p.localAddress])).toEqual([['fd00::1', undefined]]);
  });
});

describe('compute: what external peers get', () => {
  const withTor = (over: Partial<ComputeInputs> = {}) =>
    compute(
      inputs({
        pods: [{ namespace: 'default', name: 'p2', ips: ['10.244.2.9'], iface: 'pn0123456789b' }],
        rib: [{ prefix: '10.244.2.0/26', nextHops: ['10.0.0.12'] }],
        ...over,
        peers: [{ name: 'tor', peerIP: '10.0.0.1', asNumber: 65000 }, ...(over.peers ?? [])],
      }),
    );

  it('exports to a ToR only what the node originates (the speaker originatedOnly rule), with no per-prefix list', () => {
    const tor = withTor().peers.find((p) => p.source === 'tor')!;
    expect(tor.exportOriginatedOnly).toBe(true);
    expect(tor.exportFilter).toEqual([]);
    // The ToR's peer does not change when the node originates another prefix.
    const more = withTor({
      pods: [
        { namespace: 'default', name: 'p2', ips: ['10.244.2.9'], iface: 'pn0123456789b' },
        { namespace: 'default', name: 'p3', ips: ['10.244.3.9'], iface: 'pn0123456789c' },
      ],
    });
    expect(more.advertisements.length).toBeGreaterThan(withTor().advertisements.length);
    expect(more.peers.find((p) => p.source === 'tor')).toEqual(tor);
  });

  it('keeps the BGPPeer export filter as given, beside the originated-only rule', () => {
    const d = withTor({
      peers: [
        {
          name: 'tor2',
          peerIP: '10.0.0.2',
          asNumber: 65000,
          exportFilter: [{ action: 'reject', cidr: '10.244.2.0/24', ge: 32 }],
        },
      ],
    });
    expect(d.peers.find((p) => p.source === 'tor2')).toMatchObject({
      exportOriginatedOnly: true,
      exportFilter: [{ action: 'reject', cidr: '10.244.2.0/24', ge: 32 }],
    });
  });

  it('keeps the full table towards mesh peers and route-reflector clients', () => {
    const d = withTor({
      peers: [{ name: 'client', peerIP: '10.0.0.7', asNumber: 64512, routeReflectorClient: true }],
    });
    expect(d.peers.filter((p) => p.type === 'mesh').every((p) => p.exportFilter.length === 0)).toBe(true);
    expect(d.peers.find((p) => p.source === 'client')!.exportFilter).toEqual([]);
    expect(d.peers.some((p) => p.type === 'mesh' && p.exportOriginatedOnly)).toBe(false);
    expect(d.peers.find((p) => p.source === 'client')!.exportOriginatedOnly).toBeUndefined();
  });
});

describe('splitPeerIP', () => {
  it.each([
    ['10.0.0.1', { address: '10.0.0.1' }],
    ['10.0.0.1:1790', { address: '10.0.0.1', port: 1790 }],
    ['[fd00::1]:179', { address: 'fd00::1', port: 179 }],
    ['fd00::1', { address: 'fd00::1' }],
    ['FD00:0::1', { address: 'fd00::1' }],
    ['[::ffff:10.0.0.1]:179', { address: '::ffff:10.0.0.1', port: 179 }],
    ['nope', undefined],
    // the one grammar of @podnet/net (the k8s BGPPeer schema uses it too)
    ['010.0.0.1', undefined],
    [' 10.0.0.1', undefined],
    ['[fd00::1]', undefined],
    ['[10.0.0.1]:179', undefined],
    ['[fe80::1%eth0]:179', undefined],
    ['10.0.0.1:0', undefined],
    ['10.0.0.1:65536', undefined],
    ['10.0.0.1:0179', undefined],
    ['[::::]:179', undefined],
  ])('%j', (text, want) => {
    expect(splitPeerIP(text)).toEqual(want);
  });
});

describe('compute: receive limits and node import lists', () => {
  it('limits node peers by the blocks the pools can hold and imports only pool and service prefixes', () => {
    const d = compute(
      inputs({
        pools: [
          { name: 'a', cidr: '10.244.0.0/16', blockSize: 26, disabled: false, disableBGPExport: false },
          { name: 'b', cidr: '10.245.0.0/20', blockSize: 26, disabled: true, disableBGPExport: false },
        ],
        bgpConfigs: [{ name: 'default', serviceClusterIPs: ['10.96.0.0/12'] }],
      }),
    );
    const mesh = d.peers.find((p) => p.type === 'mesh')!;
    // 1024 + 64 blocks, as many again for borrowed /32s, and one service range.
    expect(mesh.maxPrefixes).toBe(2 * (1024 + 64) + 1);
    expect(mesh.importFilter).toEqual([
      { action: 'accept', cidr: '10.244.0.0/16', ge: 16, le: 32 },
      { action: 'accept', cidr: '10.245.0.0/20', ge: 20, le: 32 },
      { action: 'accept', cidr: '10.96.0.0/12', ge: 12, le: 32 },
    ]);
  });

  it('rejects every prefix from node peers while there is no pool', () => {
    const d = compute(inputs({ pools: [] }));
    const mesh = d.peers.find((p) => p.type === 'mesh')!;
    expect(mesh.importFilter).toEqual(REJECT_ALL);
    expect(mesh.maxPrefixes).toBe(1024);
  });

  it('caps the limit derived from an IPv6 pool', () => {
    const d = compute(
      inputs({
        pools: [
          { name: 'v6', cidr: 'fd00:244::/48', blockSize: 122, disabled: false, disableBGPExport: false },
        ],
      }),
    );
    expect(d.peers.find((p) => p.type === 'mesh')!.maxPrefixes).toBe(1_000_000);
  });

  it('gives an external peer the documented default, the agent option, or its own maxPrefixes', () => {
    const tor = (over: Partial<ComputeInputs>) =>
      compute(inputs(over)).peers.find((p) => p.source === 'tor')!.maxPrefixes;
    expect(tor({ peers: [{ name: 'tor', peerIP: '10.0.0.1', asNumber: 65000 }] })).toBe(10_000);
    expect(
      tor({ peers: [{ name: 'tor', peerIP: '10.0.0.1', asNumber: 65000 }], externalMaxPrefixes: 500 }),
    ).toBe(500);
    expect(tor({ peers: [{ name: 'tor', peerIP: '10.0.0.1', asNumber: 65000, maxPrefixes: 42 }] })).toBe(42);
  });
});

describe('compute: graceful restart towards BGPPeers', () => {
  it('announces our own restart time and passes maxRestartTime on as the cap of the peer one', () => {
    const d = compute(
      inputs({
        bgpConfigs: [{ name: 'default', restartTime: 90 }],
        peers: [{ name: 'tor', peerIP: '10.0.0.1', asNumber: 65000, maxRestartTime: 30 }],
      }),
    );
    const tor = d.peers.find((p) => p.source === 'tor')!;
    expect(tor.gracefulRestart).toEqual({ enabled: true, restartTime: 90 });
    expect(tor.maxRestartTime).toBe(30);
  });

  it('passes BGPPeer longLivedGracefulRestart on to that peer only (off by default)', () => {
    const d = compute(
      inputs({
        peers: [
          { name: 'rr1', peerIP: '10.0.0.1', asNumber: 64512, longLivedGracefulRestart: { staleTime: 3600 } },
          { name: 'tor', peerIP: '10.0.0.2', asNumber: 65000 },
        ],
      }),
    );
    expect(d.peers.find((p) => p.source === 'rr1')!.longLivedGracefulRestart).toEqual({ staleTime: 3600 });
    expect(d.peers.find((p) => p.source === 'tor')!.longLivedGracefulRestart).toBeUndefined();
  });

  it('passes BGPPeer gracefulRestartNotification (RFC 8538) on to that peer only (off by default)', () => {
    const d = compute(
      inputs({
        peers: [
          { name: 'tor', peerIP: '10.0.0.1', asNumber: 65000, gracefulRestartNotification: true },
          { name: 'rr1', peerIP: '10.0.0.2', asNumber: 64512, gracefulRestartNotification: false },
          { name: 'rr2', peerIP: '10.0.0.3', asNumber: 64512 },
        ],
      }),
    );
    expect(d.peers.find((p) => p.source === 'tor')!.gracefulRestartNotification).toBe(true);
    expect(d.peers.find((p) => p.source === 'rr1')!.gracefulRestartNotification).toBeUndefined();
    expect(d.peers.find((p) => p.source === 'rr2')!.gracefulRestartNotification).toBeUndefined();
  });
});

describe('compute: peer keys', () => {
  it('keeps two BGPPeers on one address at different ports as two sessions', () => {
    const d = compute(
      inputs({
        peers: [
          { name: 'bird', peerIP: '10.0.0.1', asNumber: 65000 },
          { name: 'gobgp', peerIP: '10.0.0.1:1790', asNumber: 65001 },
          { name: 'v6', peerIP: '[FD00::0001]:179', asNumber: 65002 },
        ],
      }),
    );
    expect(d.peers.filter((p) => p.type === 'global').map((p) => [p.key, p.source])).toEqual([
      ['10.0.0.1:179', 'bird'],
      ['10.0.0.1:1790', 'gobgp'],
      ['[fd00::1]:179', 'v6'],
    ]);
  });
});
