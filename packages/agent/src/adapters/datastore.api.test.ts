// The agent's datastore adapter over real HTTP (the embedded API server, or KUBECONFIG's cluster).
import { fileURLToPath } from 'node:url';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { Ipam } from '@podnet/ipam';
import { BGPPEER, IPPOOL, installCrds, KubeClient, loadCrdFiles } from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeDatastore } from './datastore.js';

const CRD_DIR = fileURLToPath(new URL('../../../../deploy/crds', import.meta.url));
const RUN = `ds${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
let cluster: TestCluster;
let client: KubeClient;

beforeAll(async () => {
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  await installCrds(client, { crds: loadCrdFiles(CRD_DIR) });
});

afterAll(async () => {
  for (const n of [`${RUN}-a`, `${RUN}-b`, `${RUN}-c`])
    await client
      ?.resource(IPPOOL)
      .delete(n)
      .catch(() => {});
  await cluster?.close();
});

describe('KubeDatastore', () => {
  it('gives the agent no pool that IPAM set aside for overlapping an older one', async () => {
    await client.resource(IPPOOL).create({ metadata: { name: `${RUN}-a` }, spec: { cidr: '100.90.0.0/16' } });
    // Newer (and after it by name, should both share a creation second), inside it, not exported.
    await client.resource(IPPOOL).create({
      metadata: { name: `${RUN}-b` },
      spec: { cidr: '100.90.128.0/17', disabled: true, disableBGPExport: true },
    });
    const ds = new KubeDatastore(client, {
      nodeName: `${RUN}-n`,
      namespace: 'default',
      logger: pino({ level: 'silent' }),
    });
    await ds.start(() => {});
    try {
      for (let i = 0; i < 600 && !ds.synced(); i++) await new Promise((r) => setTimeout(r, 25));
      expect(ds.synced()).toBe(true);
      const ours = ds.snapshot().pools.filter((p) => p.name.startsWith(RUN));
      expect(ours.map((p) => [p.name, p.disableBGPExport])).toEqual([[`${RUN}-a`, false]]);
    } finally {
      await ds.stop();
    }
  }, 30_000);

  it('does no work for a pod, a block or a heartbeat of another node; its own pod and block do', async () => {
    const log = pino({ level: 'silent' });
    const [a, b] = [`${RUN}-na`, `${RUN}-nb`];
    await client.resource(IPPOOL).create({ metadata: { name: `${RUN}-c` }, spec: { cidr: '100.91.0.0/16' } });
    for (const [name, ip] of [
      [a, '192.0.2.1/24'],
      [b, '192.0.2.2/24'],
    ] as const)
      await client.core.createNode({
        body: { metadata: { name, annotations: { 'podnet.io/ipv4-address': ip } } },
      });
    const ipam = new Ipam({ client, logger: log });
    const ds = new KubeDatastore(client, { nodeName: a, namespace: 'default', logger: log });
    // Each call would be one recompute (Agent.schedule): counted, not timed.
    let changes = 0;
    await ds.start(() => changes++);
    const until = async (what: string, ok: () => boolean) => {
      for (let i = 0; i < 800 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
      if (!ok()) throw new Error(`timed out waiting for ${what}`);
    };
    const pod = async (node: string, name: string, ip: string) =>
      client.core.createNamespacedPod({
        namespace: 'default',
        body: {
          metadata: { name, annotations: { 'podnet.io/podIPs': ip } },
          spec: { nodeName: node, containers: [{ name: 'c', image: 'x' }] },
        },
      });
    try {
      await until('sync', () => ds.synced());
      const counts = ds.counts();
      const before = changes;
      const nodeEvents = () => counts.Node!.unchanged;
      // Node b: its block and pod, then a field of it the agent does not use (an annotation outside
      // podnet.io/, as a kubelet heartbeat rewrites status.conditions).
      const gotB = await ipam.allocate({ handle: `${RUN}.b1`, node: b, pools: [`${RUN}-c`] });
      await pod(b, `${RUN}-pb`, gotB.ipv4!.address);
      await client.core.patchNode(
        { name: b, body: { metadata: { annotations: { 'example.com/heartbeat': '1' } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      await until('the heartbeat to reach the Node informer', () => nodeEvents() === 1);
      expect(changes).toBe(before);
      // Node a's own pod and block: ordered after node b's on the same watches, so once these
      // are seen, node b's changes would have been seen too.
      const gotA = await ipam.allocate({ handle: `${RUN}.a1`, node: a, pools: [`${RUN}-c`] });
      await pod(a, `${RUN}-pa`, gotA.ipv4!.address);
      await until('own pod and block', () => {
        const s = ds.snapshot();
        return s.pods.length === 1 && s.blocks.some((x) => x.cidr === gotA.ipv4!.block);
      });
      const snap = ds.snapshot();
      expect(snap.pods.map((p) => p.name)).toEqual([`${RUN}-pa`]);
      expect(snap.blocks.map((x) => x.affinity)).toEqual([a]);
      expect(snap.affinities.map((x) => x.node)).toEqual([a]);
      // Node b's block and pod came before these on the same (server-filtered) watches: never here.
      expect(changes).toBeGreaterThan(before);
      expect(snap.nodes.find((n) => n.name === b)?.ipv4).toBe('192.0.2.2/24');
    } finally {
      await ds.stop();
    }
  }, 60_000);

  it('watches the BGP password Secret by name: a rotated password reaches the snapshot', async () => {
    const log = pino({ level: 'silent' });
    const name = `${RUN}-pw`;
    await client.core.createNamespacedSecret({
      namespace: 'default',
      body: { metadata: { name }, stringData: { peer: 'first' } },
    });
    // Another Secret in the namespace: never read.
    await client.core.createNamespacedSecret({
      namespace: 'default',
      body: { metadata: { name: `${RUN}-other` }, stringData: { peer: 'x' } },
    });
    await client.resource(BGPPEER).create({
      metadata: { name: `${RUN}-peer` },
      spec: { peerIP: '192.0.2.9', asNumber: 65009, password: { secretKeyRef: { name, key: 'peer' } } },
    });
    const ds = new KubeDatastore(client, { nodeName: `${RUN}-n`, namespace: 'default', logger: log });
    await ds.start(() => {});
    const until = async (what: string, ok: () => boolean) => {
      for (let i = 0; i < 800 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
      if (!ok()) throw new Error(`timed out waiting for ${what}`);
    };
    try {
      await until('the first password', () => ds.snapshot().secrets[`${name}/peer`] === 'first');
      await client.core.replaceNamespacedSecret({
        name,
        namespace: 'default',
        body: { metadata: { name }, stringData: { peer: 'second' } },
      });
      await until('the rotated password', () => ds.snapshot().secrets[`${name}/peer`] === 'second');
      expect(Object.keys(ds.snapshot().secrets)).toEqual([`${name}/peer`]);
      const c = ds.counts()[`Secret/${name}`]!;
      expect(c.lists).toBe(1);
      expect(c.watches).toBeGreaterThanOrEqual(1);
    } finally {
      await ds.stop();
      await client
        .resource(BGPPEER)
        .delete(`${RUN}-peer`)
        .catch(() => {});
    }
  }, 60_000);

  it('asks nothing to know the server answers while its watches are open', async () => {
    const ds = new KubeDatastore(client, {
      nodeName: `${RUN}-q`,
      namespace: 'default',
      logger: pino({ level: 'silent' }),
      probeIntervalMs: 20,
    });
    await ds.start(() => {});
    const until = async (what: string, ok: () => boolean) => {
      for (let i = 0; i < 800 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
      if (!ok()) throw new Error(`timed out waiting for ${what}`);
    };
    try {
      await until('synced and 25 reachability checks', () => ds.synced() && ds.probes().ticks >= 25);
      expect(ds.reachable()).toBe(true);
      expect(ds.probes().requests).toBe(0);
    } finally {
      await ds.stop();
    }
  }, 60_000);
});
