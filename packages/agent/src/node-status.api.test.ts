// NodeStatus, IPPool.status and BGPPeer.status over real HTTP against a Kubernetes API server (the
// embedded one, or KUBECONFIG's): an agent writes its own NodeStatus at a bounded rate, with Events
// for a session that went down and a route the kernel refused; the elected writer fills each
// pool's address use (and reports an exhausted pool) and each BGPPeer's sessions per node.
import { fileURLToPath } from 'node:url';
import {
  BGPPEER,
  IPAMBLOCK,
  IPPOOL,
  installCrds,
  KubeClient,
  loadCrdFiles,
  NODESTATUS,
  type NodeStatus,
  type ResourceDef,
} from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentStatus } from './__fixtures__/status.js';
import { EventRecorder, TokenBucket } from './events.js';
import { NodeStatusReporter } from './node-status.js';
import type { AgentStatus } from './status.js';
import { StatusWriter } from './status-writer.js';

const CRD_DIR = fileURLToPath(new URL('../../../deploy/crds', import.meta.url));
const RUN = `ns${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
let cluster: TestCluster;
let client: KubeClient;
const made: [typeof IPPOOL | typeof BGPPEER | typeof IPAMBLOCK | typeof NODESTATUS, string][] = [];

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function events(name: string) {
  const all = await client.core.listNamespacedEvent({ namespace: 'default' });
  return all.items
    .filter((e) => e.involvedObject.name === name)
    .map((e) => ({ kind: e.involvedObject.kind, type: e.type, reason: e.reason, message: e.message ?? '' }));
}

const peer = (state: AgentStatus['peers'][number]['state'], lastError?: string) => ({
  address: '10.88.0.253',
  port: 179,
  type: 'global' as const,
  source: `${RUN}-tor`,
  localAs: 64512,
  remoteAs: 65000,
  passive: false,
  state,
  since: '2026-01-01T00:00:05.000Z',
  prefixesReceived: 2,
  prefixesAdvertised: 3,
  ...(lastError ? { lastError } : {}),
});

beforeAll(async () => {
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  await installCrds(client, { crds: loadCrdFiles(CRD_DIR) });
});

afterAll(async () => {
  for (const [def, name] of made)
    await client
      .resource(def as ResourceDef)
      .delete(name)
      .catch(() => {});
  await cluster?.close();
});

describe('NodeStatus, IPPool.status and BGPPeer.status', () => {
  it("writes the agent's NodeStatus when it changes, at most once per interval, and records session and route Events", async () => {
    const node = `${RUN}-node-a`;
    made.push([NODESTATUS, node]);
    let clock = 1_000_000;
    let s = agentStatus({
      node: { name: node, address: '10.88.0.11', asNumber: 64512, listenPort: 179 },
      peers: [peer('Established')],
      routes: [
        { dst: '10.244.0.0/26', type: 'blackhole', source: 'owned block', state: 'installed' },
        { dst: '10.244.0.64/26', type: 'remote', source: 'bgp', via: ['10.88.0.12'], state: 'installed' },
        { dst: 'fd00::/122', type: 'blackhole', source: 'owned block', state: 'pending' },
      ],
      ipam: { blocks: [{ cidr: '10.244.0.0/26', inUse: 2, free: 62 }], addressesInUse: 2 },
      lastResync: { time: '2026-01-01T00:01:00.000Z', durationSeconds: 0.012 },
    });
    const limiter = new TokenBucket(100, 100);
    const recorder = new EventRecorder({ client, identity: node, limiter });
    const r = new NodeStatusReporter({
      client,
      nodeName: node,
      status: () => s,
      recorder,
      limiter,
      intervalMs: 10_000,
      heartbeatMs: 60_000,
      version: '9.9.9',
      now: () => clock,
    });
    await r.tick();
    const get = () => client.resource(NODESTATUS).get(node) as Promise<NodeStatus>;
    let o = await get();
    expect(o.status).toMatchObject({
      agentVersion: '9.9.9',
      address: '10.88.0.11',
      ready: true,
      establishedSessions: 1,
      totalSessions: 1,
      routes: {
        ipv4: { desired: 2, installed: 2, failed: 0, pending: 0 },
        ipv6: { desired: 1, installed: 0, failed: 0, pending: 1 },
      },
      ipam: { blocks: [{ cidr: '10.244.0.0/26', inUse: 2, free: 62 }], addressesInUse: 2 },
      lastResync: { time: '2026-01-01T00:01:00.000Z', durationSeconds: 0.012 },
      heartbeatSeconds: 60,
    });
    expect(o.status!.sessions).toEqual([
      {
        peer: '10.88.0.253',
        type: 'global',
        source: `${RUN}-tor`,
        remoteAs: 65000,
        state: 'Established',
        since: '2026-01-01T00:00:05Z',
        prefixesAccepted: 2,
        prefixesAdvertised: 3,
      },
    ]);
    expect(r.writes).toBe(1);

    // The session drops and a route is refused: Events at once, the NodeStatus only after the interval.
    s = {
      ...s,
      ready: false,
      readiness: {
        ...s.readiness,
        sessionsUp: false,
        reasons: ['sessions not established: 10.88.0.253 Active'],
      },
      peers: [peer('Active', 'connection refused')],
      routes: [
        ...s.routes.slice(0, 2),
        { dst: 'fd00::/122', type: 'blackhole', source: 'owned block', state: 'failed', detail: 'EINVAL' },
      ],
    };
    clock += 5_000;
    await r.tick();
    expect(r.writes).toBe(1);
    expect((await get()).status!.ready).toBe(true);
    expect(await events(`${RUN}-tor`)).toEqual([
      {
        kind: 'BGPPeer',
        type: 'Warning',
        reason: 'SessionDown',
        message: `node ${node}: BGP session with 10.88.0.253 left Established for Active: connection refused`,
      },
    ]);
    expect(await events(node)).toEqual([
      {
        kind: 'Node',
        type: 'Warning',
        reason: 'RouteRejected',
        message: `node ${node}: route fd00::/122 (owned block) not installed: EINVAL`,
      },
    ]);
    clock += 5_000;
    await r.tick();
    expect(r.writes).toBe(2);
    o = await get();
    expect(o.status).toMatchObject({
      ready: false,
      reasons: ['sessions not established: 10.88.0.253 Active'],
      establishedSessions: 0,
      routes: { ipv6: { failed: 1, pending: 0 } },
    });
    expect(o.status!.sessions[0]).toMatchObject({ state: 'Active', lastError: 'connection refused' });

    // Unchanged: nothing written until the heartbeat, and no Event repeated.
    clock += 30_000;
    await r.tick();
    expect(r.writes).toBe(2);
    clock += 30_000;
    await r.tick();
    expect(r.writes).toBe(3);
    expect(await events(node)).toHaveLength(1);
    expect(await events(`${RUN}-tor`)).toHaveLength(1);
  });

  it("fills IPPool.status with the pool's use and BGPPeer.status with each node's session; an exhausted pool gets a Warning", async () => {
    const pool = `${RUN}-tiny`;
    const tor = `${RUN}-tor2`;
    made.push([IPPOOL, pool], [BGPPEER, tor]);
    await client.resource(IPPOOL).create({
      metadata: { name: pool },
      spec: { cidr: '100.90.0.0/30', blockSize: 30 },
    });
    await client
      .resource(BGPPEER)
      .create({ metadata: { name: tor }, spec: { peerIP: '10.88.0.254', asNumber: 65000 } });
    const block = {
      metadata: { name: `${RUN}-100-90-0-0-30` },
      spec: {
        cidr: '100.90.0.0/30',
        affinity: 'host:a',
        allocations: [0, 0, null, null],
        unallocated: [2, 3],
        attributes: [{ handleID: 'h1' }],
      },
    };
    made.push([IPAMBLOCK, block.metadata.name]);
    await client.resource(IPAMBLOCK).create(block);
    for (const [n, state] of [
      ['a', 'Established'],
      ['b', 'Active'],
    ] as const) {
      made.push([NODESTATUS, `${RUN}-${n}`]);
      await client.resource(NODESTATUS).create({ metadata: { name: `${RUN}-${n}` } });
      await client.resource(NODESTATUS).patchStatus(`${RUN}-${n}`, {
        agentVersion: '0.1.0',
        ready: state === 'Established',
        reasons: [],
        sessions: [
          {
            peer: '10.88.0.254',
            type: 'global',
            source: tor,
            remoteAs: 65000,
            state,
            since: '2026-01-01T00:00:00Z',
            prefixesAccepted: 0,
            prefixesAdvertised: 1,
            ...(state === 'Active' ? { lastError: 'hold timer expired' } : {}),
          },
        ],
        establishedSessions: state === 'Established' ? 1 : 0,
        totalSessions: 1,
        routes: {
          ipv4: { desired: 0, installed: 0, failed: 0, pending: 0 },
          ipv6: { desired: 0, installed: 0, failed: 0, pending: 0 },
        },
        ipam: { blocks: [], addressesInUse: 0 },
        heartbeatSeconds: 60,
        lastUpdate: '2026-01-01T00:00:00Z',
      });
    }
    const limiter = new TokenBucket(50, 50);
    const writer = new StatusWriter({
      client,
      recorder: new EventRecorder({ client, identity: 'writer', limiter }),
      limiter,
      poolUsageWarning: 0.5,
    });
    writer.start();
    try {
      type S = {
        status?: Record<string, unknown> & {
          conditions?: { type: string; status: string; reason?: string; message?: string }[];
        };
      };
      const poolStatus = async () => ((await client.resource(IPPOOL).get(pool)) as S).status;
      await waitFor('pool use', async () => (await poolStatus())?.addressesInUse === 2);
      const ps = (await poolStatus())!;
      expect(ps).toMatchObject({ blocks: 1, addressesInUse: 2, addressesFree: '2' });
      expect(ps.conditions!.find((c) => c.type === 'Exhausted')).toMatchObject({
        status: 'False',
        reason: 'NearlyFull',
      });
      const peerStatus = async () => ((await client.resource(BGPPEER).get(tor)) as S).status;
      await waitFor('peer sessions', async () => (await peerStatus())?.sessions === 2);
      const bs = (await peerStatus())!;
      expect(bs).toMatchObject({
        established: 1,
        sessions: 2,
        nodes: [
          { node: `${RUN}-a`, state: 'Established', since: '2026-01-01T00:00:00Z' },
          { node: `${RUN}-b`, state: 'Active', lastError: 'hold timer expired' },
        ],
      });
      expect(bs.conditions!.find((c) => c.type === 'Established')).toEqual(
        expect.objectContaining({
          status: 'False',
          reason: 'NotEstablished',
          message: `1 of 2 nodes Established; ${RUN}-b Active (hold timer expired)`,
        }),
      );

      // The last two addresses go: Exhausted=True and a PoolExhausted Warning on the pool.
      const full = await client.resource(IPAMBLOCK).get(block.metadata.name);
      await client.resource(IPAMBLOCK).replace({
        ...full,
        spec: { ...full.spec, allocations: [0, 0, 0, 0], unallocated: [] },
      });
      await waitFor('pool exhausted', async () => (await poolStatus())?.addressesFree === '0');
      expect((await poolStatus())!.conditions!.find((c) => c.type === 'Exhausted')).toMatchObject({
        status: 'True',
        reason: 'NoFreeAddresses',
        message: '4 of 4 addresses in use (100.0%): no address left; add an IPPool or widen spec.cidr',
      });
      await waitFor('PoolExhausted event', async () =>
        (await events(pool)).some((e) => e.reason === 'PoolExhausted'),
      );
      expect((await events(pool)).map((e) => `${e.type} ${e.reason}`)).toEqual([
        'Warning PoolNearlyFull',
        'Warning PoolExhausted',
      ]);
    } finally {
      await writer.stop();
    }
  });
});
