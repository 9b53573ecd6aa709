// IPAM over HTTP against a Kubernetes API server: the embedded one by default, or the real cluster
// named by KUBECONFIG (unchanged). CRDs come from deploy/crds through the API; every name and the
// pool's CIDR are unique to this run, and everything is removed afterwards.
import { fileURLToPath } from 'node:url';
import {
  BLOCKAFFINITY,
  blockInPool,
  IPAMBLOCK,
  IPAMHANDLE,
  IPPOOL,
  installCrds,
  KubeClient,
  loadCrdFiles,
} from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { handleName, Ipam } from './ipam.js';

const CRD_DIR = fileURLToPath(new URL('../../../deploy/crds', import.meta.url));
const RUN = `ipam${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
// A /20 somewhere in 100.96.0.0/11 (other suites use other ranges), different on every run.
const seed = (process.pid * 7919 + Date.now()) % 512;
const POOL_CIDR = `100.${96 + (seed >> 4)}.${(seed & 15) * 16}.0/20`;
const POOL = `${RUN}-pool`;

let cluster: TestCluster;
const created6: string[] = [];
let client: KubeClient;

async function pMap<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

const ours = (message: string) => message.includes(POOL_CIDR.split('.').slice(0, 2).join('.'));

beforeAll(async () => {
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  await installCrds(client, { crds: loadCrdFiles(CRD_DIR) });
  await client
    .resource(IPPOOL)
    .create({ metadata: { name: POOL }, spec: { cidr: POOL_CIDR, blockSize: 28 } });
});

afterAll(async () => {
  if (client) {
    const handles = await client.resource(IPAMHANDLE).list();
    for (const h of handles.items)
      if (h.spec.handleID.startsWith(RUN))
        await client
          .resource(IPAMHANDLE)
          .delete(h.metadata.name)
          .catch(() => {});
    for (const b of (await client.resource(IPAMBLOCK).list()).items)
      if (blockInPool(POOL_CIDR, b.spec.cidr))
        await client
          .resource(IPAMBLOCK)
          .delete(b.metadata.name)
          .catch(() => {});
    for (const a of (await client.resource(BLOCKAFFINITY).list()).items)
      if (blockInPool(POOL_CIDR, a.spec.cidr))
        await client
          .resource(BLOCKAFFINITY)
          .delete(a.metadata.name)
          .catch(() => {});
    await client
      .resource(IPPOOL)
      .delete(POOL)
      .catch(() => {});
    for (const name of [`${RUN}-alive`])
      await client.core
        .deleteNamespacedPod({ namespace: 'default', name, gracePeriodSeconds: 0 })
        .catch(() => {});
  }
  await cluster?.close();
});

describe('IPAM over the Kubernetes API', () => {
  it('lets several nodes allocate in parallel with no duplicate, and leaves nothing after release', async () => {
    const nodes = [0, 1, 2, 3].map((i) => `${RUN}-n${i}`);
    const pods = nodes.flatMap((node) =>
      Array.from({ length: 20 }, (_, i) => ({ node, handle: `${RUN}.${node}.c${i}` })),
    );
    const ipams = new Map(nodes.map((n) => [n, new Ipam({ kubeconfigPath: cluster.kubeconfigPath })]));
    const results = await Promise.all(
      nodes.map((node) =>
        pMap(
          pods.filter((p) => p.node === node),
          3,
          async (p) => ({
            ...p,
            r: await ipams
              .get(node)!
              .allocate({ handle: p.handle, node, attrs: { namespace: 'default', pod: p.handle } }),
          }),
        ),
      ),
    );
    const all = results.flat();
    const addresses = all.map((a) => a.r.ipv4!.address);
    expect(new Set(addresses).size).toBe(pods.length);
    for (const a of all) expect(blockInPool(POOL_CIDR, `${a.r.ipv4!.address}/32`)).toBe(true);
    // Each node's pods come from its own confirmed blocks (20 pods → two /28s).
    for (const node of nodes) {
      const blocks = await ipams.get(node)!.blocksForNode(node);
      expect(blocks.every((b) => b.state === 'confirmed')).toBe(true);
      expect(blocks.reduce((n, b) => n + b.used, 0)).toBe(20);
      for (const a of all.filter((x) => x.node === node)) expect(a.r.ipv4!.borrowed).toBe(false);
    }
    const checker = new Ipam({ kubeconfigPath: cluster.kubeconfigPath });
    expect((await checker.check()).filter((i) => ours(i.message))).toEqual([]);
    const usage = await checker.usage();
    expect(usage.pools.find((p) => p.name === POOL)).toMatchObject({ used: pods.length, blockSize: 28 });

    // Release half by handle and half by address, in parallel from the nodes.
    const released = await pMap(all, 8, async (a) => {
      const ipam = ipams.get(a.node)!;
      if (Number(a.handle.split('.c')[1]) % 2 === 0) return (await ipam.releaseByHandle(a.handle)).length;
      return (await ipam.releaseIp(a.r.ipv4!.address)) ? 1 : 0;
    });
    expect(released.reduce((x, y) => x + y, 0)).toBe(pods.length);
    expect(await checker.releaseByHandle(all[0]!.handle)).toEqual([]); // idempotent
    const after = await checker.usage();
    expect(after.pools.find((p) => p.name === POOL)?.used).toBe(0);
    const handles = (await client.resource(IPAMHANDLE).list()).items.filter((h) =>
      h.spec.handleID.startsWith(RUN),
    );
    expect(handles).toEqual([]);
    expect((await checker.check()).filter((i) => ours(i.message))).toEqual([]);
  });

  it('gives two processes of one node (two CNI invocations) distinct addresses from a shared block', async () => {
    const node = `${RUN}-shared`;
    const a = new Ipam({ kubeconfigPath: cluster.kubeconfigPath });
    const b = new Ipam({ kubeconfigPath: cluster.kubeconfigPath });
    const got = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).allocate({ handle: `${RUN}.shared.c${i}`, node })),
    );
    expect(new Set(got.map((g) => g.ipv4!.address)).size).toBe(12);
    const blocks = await a.blocksForNode(node);
    expect(blocks.reduce((n, x) => n + x.used, 0)).toBe(12);
    for (let i = 0; i < 12; i++) await a.releaseByHandle(`${RUN}.shared.c${i}`);
    expect((await a.blocksForNode(node)).reduce((n, x) => n + x.used, 0)).toBe(0);
  });

  it('gives one address to a handle that many concurrent ADDs (several processes) allocate at once', async () => {
    const node = `${RUN}-same`;
    const handles = Array.from({ length: 8 }, (_, i) => `${RUN}.same.c${i}`);
    // Four "processes" (own clients), each firing three ADDs per handle at once: twelve racing
    // calls per handle.
    const procs = Array.from({ length: 4 }, () => new Ipam({ kubeconfigPath: cluster.kubeconfigPath }));
    const got = await Promise.all(
      handles.flatMap((handle) =>
        procs.flatMap((ipam) =>
          Array.from({ length: 3 }, async () => ({ handle, r: await ipam.allocate({ handle, node }) })),
        ),
      ),
    );
    const blocks = (await client.resource(IPAMBLOCK).list()).items;
    const held = new Set<string>();
    for (const handle of handles) {
      const mine = got.filter((g) => g.handle === handle);
      const addresses = new Set(mine.map((g) => g.r.ipv4!.address));
      expect([...addresses], `${handle} was given`).toHaveLength(1);
      const holding = blocks.flatMap((b) => {
        const attrs = new Set(b.spec.attributes.flatMap((a, i) => (a.handleID === handle ? [i] : [])));
        return b.spec.allocations.filter((a) => a !== null && attrs.has(a)).map(() => b.spec.cidr);
      });
      expect(holding, `blocks holding ${handle}`).toEqual([mine[0]!.r.ipv4!.block]);
      const h = await client.resource(IPAMHANDLE).get(handleName(handle));
      expect(h.spec.block).toEqual({ [mine[0]!.r.ipv4!.block]: 1 });
      held.add(mine[0]!.r.ipv4!.address);
    }
    expect(held.size).toBe(handles.length);
    for (const handle of handles) expect(await procs[0]!.releaseByHandle(handle)).toHaveLength(1);
  });

  it('allocates from the valid pool while a newer disabled pool overlaps it (set aside)', async () => {
    // The reproduction of the fault: a disabled half inside the pool in use made every ADD fail
    // with IPAM_ERR_POOLS_OVERLAP. The half is created after POOL, so it is the newer one.
    const half = `${RUN}-q-half`; // sorts after POOL, should the two share a creation second
    const [net] = POOL_CIDR.split('/');
    await client.resource(IPPOOL).create({
      metadata: { name: half },
      spec: { cidr: `${net}/21`, blockSize: 28, disabled: true },
    });
    try {
      const ipam = new Ipam({ client, cacheTtlMs: 0 });
      const r = await ipam.allocate({ handle: `${RUN}.overlap`, node: `${RUN}-n9` });
      expect(r.ipv4?.pool).toBe(POOL);
      expect((await ipam.setAsidePools()).map((s) => s.pool.name)).toContain(half);
      await ipam.releaseByHandle(`${RUN}.overlap`);
    } finally {
      await client.resource(IPPOOL).delete(half);
    }
  });

  it('allocates and releases a dual-stack pair over the API', async () => {
    const v6 = `fd00:${(seed + 1).toString(16)}:${(process.pid % 65536).toString(16)}::/48`;
    created6.push(`${RUN}-v6`);
    await client.resource(IPPOOL).create({ metadata: { name: `${RUN}-v6` }, spec: { cidr: v6 } });
    const ipam = new Ipam({ kubeconfigPath: cluster.kubeconfigPath });
    const r = await ipam.allocate({
      handle: `${RUN}.ds`,
      node: `${RUN}-ds`,
      ipv4: true,
      ipv6: true,
      pools: [POOL, `${RUN}-v6`],
    });
    expect(blockInPool(POOL_CIDR, r.ipv4!.cidr)).toBe(true);
    expect(blockInPool(v6, r.ipv6!.cidr)).toBe(true);
    expect(r.ipv6!.block).toMatch(/\/122$/);
    const released = await ipam.releaseByHandle(`${RUN}.ds`);
    expect(released.map((x) => x.address).sort()).toEqual([r.ipv4!.address, r.ipv6!.address].sort());
  });

  it('garbage-collects the address of a pod that no longer exists, keeping a live pod', async () => {
    await client.core.createNamespacedPod({
      namespace: 'default',
      body: {
        metadata: { name: `${RUN}-alive` },
        spec: { nodeName: `${RUN}-gc`, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.9' }] },
      },
    });
    const ipam = new Ipam({ kubeconfigPath: cluster.kubeconfigPath });
    const node = `${RUN}-gc`;
    const live = await ipam.allocate({
      handle: `${RUN}.gc.live`,
      node,
      attrs: { namespace: 'default', pod: `${RUN}-alive` },
    });
    const dead = await ipam.allocate({
      handle: `${RUN}.gc.dead`,
      node,
      attrs: { namespace: 'default', pod: `${RUN}-ghost` },
    });
    const first = await ipam.gc({ graceMs: 0, blocks: false });
    expect(first.releasedHandles.filter((h) => h.startsWith(RUN))).toEqual([]);
    const second = await ipam.gc({ graceMs: 0, blocks: false });
    expect(second.releasedHandles.filter((h) => h.startsWith(RUN))).toEqual([`${RUN}.gc.dead`]);
    expect(await ipam.releaseIp(dead.ipv4!.address)).toBeUndefined();
    expect((await ipam.releaseIp(live.ipv4!.address))?.handle).toBe(`${RUN}.gc.live`);
  });
});
