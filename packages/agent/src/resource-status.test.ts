import type { IPAMBlock, IPPool, NodeStatus } from '@podnet/k8s';
import { describe, expect, it } from 'vitest';
import { agentStatus } from './__fixtures__/status.js';
import { buildNodeStatus, nodeEvents } from './node-status.js';
import { peerSessions, poolUsage } from './resource-status.js';
import type { AgentStatus } from './status.js';

const pool = (name: string, cidr: string) => ({ metadata: { name }, spec: { cidr } }) as unknown as IPPool;
const block = (cidr: string, used: number, size: number) =>
  ({
    metadata: { name: cidr },
    spec: {
      cidr,
      allocations: Array.from({ length: size }, (_, i) => (i < used ? 0 : null)),
      unallocated: Array.from({ length: size - used }, (_, i) => used + i),
    },
  }) as unknown as IPAMBlock;

describe('poolUsage', () => {
  it('counts the blocks inside each pool and the addresses in use and free, exactly for IPv6', () => {
    const u = poolUsage(
      [pool('v4', '10.0.0.0/24'), pool('v6', 'fd00::/48')],
      [block('10.0.0.0/26', 3, 64), block('10.0.0.64/26', 1, 64), block('10.9.0.0/26', 60, 64)],
      0.9,
    );
    expect(u.get('v4')).toEqual({
      fields: { blocks: 2, addressesInUse: 4, addressesFree: '252' },
      condition: {
        type: 'Exhausted',
        status: 'False',
        reason: 'AddressesAvailable',
        message: '4 of 256 addresses in use (1.6%)',
      },
    });
    expect(u.get('v6')!.fields).toEqual({
      blocks: 0,
      addressesInUse: 0,
      addressesFree: (1n << 80n).toString(),
    });
  });

  it('says NearlyFull at the warning level and NoFreeAddresses when none is left', () => {
    expect(
      poolUsage([pool('p', '10.0.0.0/26')], [block('10.0.0.0/26', 58, 64)], 0.9).get('p')!.condition,
    ).toMatchObject({ status: 'False', reason: 'NearlyFull' });
    expect(
      poolUsage([pool('p', '10.0.0.0/26')], [block('10.0.0.0/26', 57, 64)], 0.9).get('p')!.condition,
    ).toMatchObject({ reason: 'AddressesAvailable' });
    expect(
      poolUsage([pool('p', '10.0.0.0/26')], [block('10.0.0.0/26', 64, 64)], 0.9).get('p')!.condition,
    ).toMatchObject({ status: 'True', reason: 'NoFreeAddresses' });
  });
});

const ns = (name: string, sessions: { source: string; state: string; lastError?: string }[]) =>
  ({
    metadata: { name },
    status: { sessions: sessions.map((s) => ({ ...s, since: '2026-01-01T00:00:00Z' })) },
  }) as unknown as NodeStatus;

describe('peerSessions', () => {
  it("lists each node's session with the peer and says Established only when all are", () => {
    const peers = [{ metadata: { name: 'tor' } }, { metadata: { name: 'unused' } }];
    const m = peerSessions(peers, [
      ns('b', [{ source: 'tor', state: 'Established' }]),
      ns('a', [
        { source: 'tor', state: 'Established' },
        { source: 'node-to-node-mesh', state: 'Established' },
      ]),
    ]);
    expect(m.get('tor')).toEqual({
      fields: {
        nodes: [
          { node: 'a', state: 'Established', since: '2026-01-01T00:00:00Z' },
          { node: 'b', state: 'Established', since: '2026-01-01T00:00:00Z' },
        ],
        established: 2,
        sessions: 2,
      },
      condition: {
        type: 'Established',
        status: 'True',
        reason: 'Established',
        message: '2 of 2 nodes Established',
      },
    });
    expect(m.get('unused')!.condition).toMatchObject({ status: 'False', reason: 'NoSessions' });
    const down = peerSessions(peers, [ns('a', [{ source: 'tor', state: 'Connect', lastError: 'refused' }])]);
    expect(down.get('tor')!.condition.message).toBe('0 of 1 nodes Established; a Connect (refused)');
  });
});

const status = (over: Partial<AgentStatus>): AgentStatus =>
  agentStatus({ node: { name: 'n', asNumber: 64512, listenPort: 179 }, ...over });

const meshPeer = (state: AgentStatus['peers'][number]['state']) => ({
  address: '10.0.0.2',
  port: 179,
  type: 'mesh' as const,
  source: 'node-to-node-mesh',
  nodeName: 'm',
  localAs: 64512,
  remoteAs: 64512,
  passive: false,
  state,
  since: '2026-01-01T00:00:00.500Z',
  prefixesReceived: 1,
  prefixesAdvertised: 1,
  lastError: 'old error',
});

describe('buildNodeStatus and nodeEvents', () => {
  it('counts routes by family and state, and drops the last error of an Established session', () => {
    const b = buildNodeStatus(
      status({
        peers: [meshPeer('Established')],
        routes: [
          { dst: '10.0.0.0/26', type: 'blackhole', source: 'owned block', state: 'installed' },
          { dst: '10.0.1.0/26', type: 'remote', source: 'bgp', state: 'unresolved' },
          { dst: 'fd00::1/128', type: 'local', source: 'pod a/b', state: 'applied' },
        ],
      }),
      '1.2.3',
      60,
    );
    expect(b.routes).toEqual({
      ipv4: { desired: 2, installed: 1, failed: 1, pending: 0 },
      ipv6: { desired: 1, installed: 0, failed: 0, pending: 1 },
    });
    expect(b.sessions[0]).toEqual({
      peer: '10.0.0.2',
      type: 'mesh',
      source: 'node-to-node-mesh',
      peerNode: 'm',
      remoteAs: 64512,
      state: 'Established',
      since: '2026-01-01T00:00:00Z',
      prefixesAccepted: 1,
      prefixesAdvertised: 1,
    });
  });

  it('reports a mesh session going down and up on the Node, quiet on the first Established', () => {
    expect(nodeEvents('n', undefined, status({ peers: [meshPeer('Established')] }))).toEqual([]);
    expect(
      nodeEvents('n', status({ peers: [meshPeer('Connect')] }), status({ peers: [meshPeer('Established')] })),
    ).toEqual([
      {
        object: { apiVersion: 'v1', kind: 'Node', name: 'n' },
        type: 'Normal',
        reason: 'SessionEstablished',
        message: 'node n: BGP session with 10.0.0.2 (node m) is Established again',
      },
    ]);
    expect(
      nodeEvents('n', status({ peers: [meshPeer('Established')] }), status({ peers: [meshPeer('Idle')] }))[0],
    ).toMatchObject({ type: 'Warning', reason: 'SessionDown' });
  });
});
