// Ipam over the in-memory datastore (same CAS semantics as the API server). The API suites in
// ipam.api.test.ts run the same operations over HTTP.

import { K8S_ERR, K8sError } from '@podnet/k8s';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { codeOf } from './__fixtures__/errors.js';
import { mustParseCidr, type PoolInfo, selectPools } from './block.js';
import { IPAM_ERR, IpamError } from './errors.js';
import { handleName, Ipam } from './ipam.js';
import { type MemoryDatastore, memoryDatastore } from './memory.js';

async function withPools(
  ds: MemoryDatastore,
  pools: { name: string; cidr: string; blockSize?: number; nodeSelector?: string }[],
) {
  for (const p of pools) {
    await ds.pools.create({
      metadata: { name: p.name },
      spec: { cidr: p.cidr, blockSize: p.blockSize, nodeSelector: p.nodeSelector ?? 'all()' },
    });
  }
}

function poolInfoOf(name: string, cidr: string): PoolInfo {
  return { name, cidr: mustParseCidr(cidr), blockSize: 26, disabled: false, nodeSelector: 'all()' };
}

describe('Ipam over an in-memory datastore', () => {
  it('claims a /26 for the node, confirms the affinity, and allocates from it', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'default', cidr: '10.244.0.0/16' }]);
    const ipam = new Ipam({ datastore: ds });
    const r = await ipam.allocate({
      handle: 'podnet.c1',
      node: 'n1',
      attrs: { namespace: 'default', pod: 'p1' },
    });
    expect(r.ipv4).toMatchObject({ block: expect.stringMatching(/\/26$/), pool: 'default', borrowed: false });
    expect(r.ipv4!.cidr).toBe(`${r.ipv4!.address}/32`);
    const blocks = await ipam.blocksForNode('n1');
    expect(blocks).toEqual([{ cidr: r.ipv4!.block, pool: 'default', state: 'confirmed', used: 1, free: 63 }]);
    const r2 = await ipam.allocate({ handle: 'podnet.c2', node: 'n1' });
    expect(r2.ipv4!.block).toBe(r.ipv4!.block);
    expect(r2.ipv4!.address).not.toBe(r.ipv4!.address);
    expect(await ipam.check()).toEqual([]);
  });

  it('shares one list of the blocks among claims close together, and still gives each node its own block', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'default', cidr: '10.244.0.0/16' }]);
    const ipam = new Ipam({ datastore: ds });
    // Lists of every block (a node's own blocks are read by label, and stay per node).
    let lists = 0;
    const list = ds.blocks.list.bind(ds.blocks);
    ds.blocks.list = (opts) => {
      if (!opts?.labelSelector) lists++;
      return list(opts);
    };
    const nodes = Array.from({ length: 40 }, (_, i) => `n${i}`);
    const got = await Promise.all(nodes.map((node) => ipam.allocate({ handle: `podnet.${node}`, node })));
    const blocks = got.map((r) => r.ipv4!.block);
    expect(new Set(blocks).size).toBe(40);
    // One list per claim before; now the lists are the first one and the retries after lost races.
    expect(lists).toBeLessThan(20);
    expect(await ipam.check()).toEqual([]);
  });

  it('writes twice per allocation once the node has a block (handle, then block)', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'default', cidr: '10.244.0.0/16' }]);
    const ipam = new Ipam({ datastore: ds });
    await ipam.allocate({ handle: 'warm', node: 'n1' });
    const writes = () => ds.blocks.writes + ds.handles.writes + ds.affinities.writes;
    const before = writes();
    for (let i = 0; i < 10; i++) await ipam.allocate({ handle: `h${i}`, node: 'n1' });
    expect((writes() - before) / 10).toBe(2);
  });

  it('returns the same address when an ADD is retried with the same handle', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'default', cidr: '10.244.0.0/16' }]);
    const ipam = new Ipam({ datastore: ds });
    const a = await ipam.allocate({ handle: 'podnet.c1', node: 'n1' });
    const b = await ipam.allocate({ handle: 'podnet.c1', node: 'n1' });
    expect(b.ipv4!.address).toBe(a.ipv4!.address);
    expect((await ipam.usage()).totals.used).toBe(1);
  });

  it('waits for a handle pinned by another process and fails with HANDLE_BUSY when it never records', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'default', cidr: '10.244.0.0/16' }]);
    const ipam = new Ipam({ datastore: ds, handleWaitMs: 50 });
    const first = await ipam.allocate({ handle: 'warm', node: 'n1' });
    // Another process created the handle, pinned the block, and died before writing the block.
    await ds.handles.create({
      metadata: { name: 'podnet.dead' },
      spec: { handleID: 'podnet.dead', block: { [first.ipv4!.block]: 1 } },
    });
    expect(await codeOf(ipam.allocate({ handle: 'podnet.dead', node: 'n1' }))).toBe(IPAM_ERR.HANDLE_BUSY);
    // The kubelet's DEL after the failed ADD frees the handle; the next ADD gets an address.
    await ipam.releaseByHandle('podnet.dead');
    const r = await ipam.allocate({ handle: 'podnet.dead', node: 'n1' });
    expect(r.ipv4!.address).not.toBe(first.ipv4!.address);
    expect(await ipam.check()).toEqual([]);
  });

  it('finishes, in the same process, an allocation whose block write failed half-way', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'default', cidr: '10.244.0.0/16' }]);
    const ipam = new Ipam({ datastore: ds, handleWaitMs: 50 });
    await ipam.allocate({ handle: 'warm', node: 'n1' });
    const replace = ds.blocks.replace.bind(ds.blocks);
    let fail = true;
    ds.blocks.replace = async (o) => {
      if (fail) {
        fail = false;
        throw new Error('connection reset');
      }
      return replace(o);
    };
    await expect(ipam.allocate({ handle: 'podnet.c1', node: 'n1' })).rejects.toThrow('connection reset');
    const r = await ipam.allocate({ handle: 'podnet.c1', node: 'n1' });
    expect(r.ipv4!.address).toMatch(/^10\.244\./);
    expect((await ipam.usage()).totals).toMatchObject({ used: 2, handles: 2 });
    expect(await ipam.check()).toEqual([]);
  });

  it('allocates one address per family for a dual-stack pod and releases both by handle', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [
      { name: 'v4', cidr: '10.244.0.0/16' },
      { name: 'v6', cidr: 'fd00:10:244::/48' },
    ]);
    const ipam = new Ipam({ datastore: ds });
    const r = await ipam.allocate({ handle: 'podnet.c1', node: 'n1', ipv4: true, ipv6: true });
    expect(r.ipv4?.address).toMatch(/^10\.244\./);
    expect(r.ipv6?.address).toMatch(/^fd00:10:244:/);
    expect(r.ipv6?.cidr).toBe(`${r.ipv6!.address}/128`);
    expect(r.ipv6?.block).toMatch(/\/122$/);
    const released = await ipam.releaseByHandle('podnet.c1');
    expect(released.map((x) => x.address).sort()).toEqual([r.ipv4!.address, r.ipv6!.address].sort());
    expect(await ipam.releaseByHandle('podnet.c1')).toEqual([]);
    expect(ds.handles.objects.size).toBe(0);
    expect(await ipam.check()).toEqual([]);
  });

  it('releases a single address by IP and keeps the rest of the handle', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [
      { name: 'v4', cidr: '10.244.0.0/16' },
      { name: 'v6', cidr: 'fd00::/48' },
    ]);
    const ipam = new Ipam({ datastore: ds });
    const r = await ipam.allocate({ handle: 'h', node: 'n1', ipv6: true });
    expect(await ipam.releaseIp(r.ipv4!.address)).toMatchObject({ address: r.ipv4!.address, handle: 'h' });
    expect(await ipam.releaseIp(r.ipv4!.address)).toBeUndefined();
    expect(await ipam.releaseIp('192.168.0.1')).toBeUndefined();
    expect(await codeOf(ipam.releaseIp('nope'))).toBe(IPAM_ERR.INVALID_ARGUMENT);
    expect(await ipam.check()).toEqual([]);
    expect((await ipam.releaseByHandle('h')).map((x) => x.address)).toEqual([r.ipv6!.address]);
  });

  it('releases an address by IP even after its pool was deleted', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'old', cidr: '10.9.0.0/16', blockSize: 28 }]);
    const ipam = new Ipam({ datastore: ds, cacheTtlMs: 0 });
    const r = await ipam.allocate({ handle: 'h', node: 'n1' });
    await ds.pools.delete('old');
    expect(await ipam.releaseIp(r.ipv4!.address)).toMatchObject({ block: r.ipv4!.block, handle: 'h' });
    expect(ds.handles.objects.size).toBe(0);
  });

  it('fails with NO_POOL_FOR_NODE when no pool selects the node', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'rack1', cidr: '10.1.0.0/16', nodeSelector: 'rack == r1' }]);
    ds.nodes.set('n1', { rack: 'r2' });
    ds.nodes.set('n2', { rack: 'r1' });
    const ipam = new Ipam({ datastore: ds });
    expect(await codeOf(ipam.allocate({ handle: 'h', node: 'n1' }))).toBe(IPAM_ERR.NO_POOL_FOR_NODE);
    expect((await ipam.allocate({ handle: 'h', node: 'n2' })).ipv4?.pool).toBe('rack1');
    expect(await codeOf(ipam.allocate({ handle: 'h6', node: 'n2', ipv4: false, ipv6: true }))).toBe(
      IPAM_ERR.NO_POOL_FOR_NODE,
    );
  });

  it('reads the Node only when some pool selects nodes by label', async () => {
    const ds = memoryDatastore();
    let reads = 0;
    const read = ds.nodeLabels.bind(ds);
    ds.nodeLabels = (node) => {
      reads++;
      return read(node);
    };
    await withPools(ds, [{ name: 'everyone', cidr: '10.1.0.0/16' }]);
    ds.nodes.set('n1', { rack: 'r1' });
    await new Ipam({ datastore: ds }).allocate({ handle: 'h1', node: 'n1' });
    expect(reads).toBe(0);
    await withPools(ds, [{ name: 'rack1', cidr: '10.2.0.0/16', nodeSelector: 'rack == r1' }]);
    const r = await new Ipam({ datastore: ds }).allocate({ handle: 'h2', node: 'n1', pools: ['rack1'] });
    expect(r.ipv4?.pool).toBe('rack1');
    expect(reads).toBe(1);
  });

  it('sets aside a pool that overlaps an older one and keeps allocating from the valid pools', async () => {
    // The reproduction: a disabled /17 inside the default /16 made every allocation fail.
    const ds = memoryDatastore();
    await ds.pools.create({
      metadata: { name: 'default', creationTimestamp: '2026-01-01T00:00:00Z' },
      spec: { cidr: '10.244.0.0/16' },
    });
    await ds.pools.create({
      metadata: { name: 'a-half', creationTimestamp: '2026-01-02T00:00:00Z' },
      spec: { cidr: '10.244.128.0/17', disabled: true },
    });
    // Newer and enabled, and first by name: still set aside, so no address comes from it.
    await ds.pools.create({
      metadata: { name: 'a-slice', creationTimestamp: '2026-01-03T00:00:00Z' },
      spec: { cidr: '10.244.7.0/24', blockSize: 28 },
    });
    await ds.pools.create({
      metadata: { name: 'other', creationTimestamp: '2026-01-04T00:00:00Z' },
      spec: { cidr: '10.245.0.0/16' },
    });
    const ipam = new Ipam({ datastore: ds });
    const r = await ipam.allocate({ handle: 'h', node: 'n1' });
    expect(r.ipv4?.pool).toBe('default');
    expect((await ipam.pools()).map((p) => p.name)).toEqual(['default', 'other']);
    expect((await ipam.setAsidePools()).map((s) => [s.pool.name, s.overlaps.name, s.message])).toEqual([
      [
        'a-half',
        'default',
        'IPPool a-half spec.cidr 10.244.128.0/17 overlaps IPPool default (10.244.0.0/16), which is older',
      ],
      [
        'a-slice',
        'default',
        'IPPool a-slice spec.cidr 10.244.7.0/24 overlaps IPPool default (10.244.0.0/16), which is older',
      ],
    ]);
    expect((await ipam.allocate({ handle: 'h2', node: 'n2', pools: ['other'] })).ipv4?.pool).toBe('other');
    expect((await ipam.check()).filter((i) => i.type === 'pools-overlap')).toHaveLength(2);
  });

  it('keeps the older of two overlapping pools by creationTimestamp, then by name', () => {
    const info = (name: string, cidr: string, createdAt?: string) =>
      ({ ...poolInfoOf(name, cidr), ...(createdAt ? { createdAt } : {}) }) as PoolInfo;
    const older = info('z-old', '10.0.0.0/16', '2026-01-01T00:00:00Z');
    const newer = info('a-new', '10.0.0.0/24', '2026-01-01T00:00:01Z');
    expect(selectPools([newer, older]).valid.map((p) => p.name)).toEqual(['z-old']);
    const tieA = info('a', '10.1.0.0/16', '2026-01-01T00:00:00Z');
    const tieB = info('b', '10.1.0.0/16', '2026-01-01T00:00:00Z');
    expect(selectPools([tieB, tieA]).valid.map((p) => p.name)).toEqual(['a']);
    // A set-aside pool blocks nothing: c overlaps only b, which is set aside behind a.
    const a = info('a', '10.2.0.0/24', '2026-01-01T00:00:00Z');
    const b = info('b', '10.2.0.0/23', '2026-01-02T00:00:00Z');
    const c = info('c', '10.2.1.0/24', '2026-01-03T00:00:00Z');
    expect(selectPools([c, b, a]).valid.map((p) => p.name)).toEqual(['a', 'c']);
  });

  it('claims up to maxBlocksPerNode, then borrows, and with strict affinity reports exhaustion', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'small', cidr: '10.0.0.0/28', blockSize: 30 }]); // 4 blocks of 4
    const n1 = new Ipam({ datastore: ds, maxBlocksPerNode: 1 });
    const n2 = new Ipam({ datastore: ds, maxBlocksPerNode: 1 });
    for (let i = 0; i < 4; i++) await n1.allocate({ handle: `a${i}`, node: 'n1' });
    await n2.allocate({ handle: 'b0', node: 'n2' });
    const borrowed = await n1.allocate({ handle: 'a4', node: 'n1' });
    expect(borrowed.ipv4?.borrowed).toBe(true);
    expect(await n1.borrowedForNode('n1')).toEqual([
      expect.objectContaining({ address: borrowed.ipv4!.address, owner: 'n2' }),
    ]);
    const strict = new Ipam({ datastore: ds, maxBlocksPerNode: 1, strictAffinity: true });
    for (let i = 1; i < 3; i++) await n2.allocate({ handle: `b${i}`, node: 'n2' });
    expect(await codeOf(strict.allocate({ handle: 'x', node: 'n2' }))).toBe(IPAM_ERR.POOL_EXHAUSTED);
    expect(await n1.check()).toEqual([]);
  });

  it('fails with POOL_EXHAUSTED when every address is taken', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'tiny', cidr: '10.0.0.0/30', blockSize: 31 }]);
    const ipam = new Ipam({ datastore: ds });
    for (let i = 0; i < 4; i++) await ipam.allocate({ handle: `h${i}`, node: 'n1' });
    expect(await codeOf(ipam.allocate({ handle: 'h4', node: 'n1' }))).toBe(IPAM_ERR.POOL_EXHAUSTED);
    expect(await ipam.check()).toEqual([]);
  });

  it('garbage-collects addresses of vanished pods only after seeing them twice across the grace period', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'default', cidr: '10.244.0.0/16' }]);
    ds.pods.add('default/alive');
    const ipam = new Ipam({ datastore: ds });
    await ipam.allocate({ handle: 'alive', node: 'n1', attrs: { namespace: 'default', pod: 'alive' } });
    await ipam.allocate({ handle: 'gone', node: 'n1', attrs: { namespace: 'default', pod: 'gone' } });
    expect(await ipam.gc({ now: 0, graceMs: 1000 })).toMatchObject({ releasedHandles: [], pending: 1 });
    expect(await ipam.gc({ now: 500, graceMs: 1000 })).toMatchObject({ releasedHandles: [] });
    expect(await ipam.gc({ now: 1500, graceMs: 1000 })).toMatchObject({ releasedHandles: ['gone'] });
    expect((await ipam.usage()).totals).toMatchObject({ used: 1, handles: 1 });
    expect(await ipam.check()).toEqual([]);
  });

  it('lists pods in bulk during GC: one list per node, not one read per pod', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'default', cidr: '10.244.0.0/16' }]);
    const ipam = new Ipam({ datastore: ds });
    for (const node of ['n1', 'n2'])
      for (let i = 0; i < 10; i++) {
        const pod = `${node}-p${i}`;
        await ipam.allocate({ handle: pod, node, attrs: { namespace: 'default', pod } });
        if (i % 2 === 0) {
          ds.pods.add(`default/${pod}`);
          ds.podNodes.set(`default/${pod}`, node);
        }
      }
    // A pod of that name exists, but on the other node: it is not the one that held the address.
    ds.podNodes.set('default/n1-p0', 'n2');
    const before = ds.podReads;
    await ipam.gc({ now: 0, graceMs: 10 });
    expect(ds.podReads - before).toBe(2);
    const r = await ipam.gc({ now: 20, graceMs: 10 });
    expect(r.releasedHandles.sort()).toEqual(
      [
        'n1-p0',
        'n1-p1',
        'n1-p3',
        'n1-p5',
        'n1-p7',
        'n1-p9',
        'n2-p1',
        'n2-p3',
        'n2-p5',
        'n2-p7',
        'n2-p9',
      ].sort(),
    );
    expect((await ipam.usage()).totals).toMatchObject({ used: 9, handles: 9 });
  });

  it('garbage-collects the address of a pod re-created under the same name with another address', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'default', cidr: '10.244.0.0/16' }]);
    const ipam = new Ipam({ datastore: ds });
    const old = await ipam.allocate({ handle: 'old', node: 'n1', attrs: { namespace: 'db', pod: 'web-0' } });
    const now = await ipam.allocate({ handle: 'new', node: 'n1', attrs: { namespace: 'db', pod: 'web-0' } });
    ds.pods.add('db/web-0');
    ds.podIPs.set('db/web-0', [now.ipv4!.address]);
    await ipam.gc({ now: 0, graceMs: 10 });
    expect((await ipam.gc({ now: 20, graceMs: 10 })).releasedHandles).toEqual(['old']);
    expect(await ipam.releaseIp(old.ipv4!.address)).toBeUndefined();
    expect((await ipam.usage()).totals.used).toBe(1);
  });

  it('deletes a handle that holds no address (an ADD that died half-way) after the grace period', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'default', cidr: '10.244.0.0/16' }]);
    const ipam = new Ipam({ datastore: ds });
    await ipam.allocate({ handle: 'kept', node: 'n1' });
    await ds.handles.create({
      metadata: { name: 'orphan' },
      spec: { handleID: 'orphan', block: { '10.244.0.0/26': 1 } },
    });
    expect((await ipam.check()).map((i) => i.type)).toEqual(['handle-count-mismatch']);
    expect((await ipam.gc({ now: 0, graceMs: 10 })).releasedHandles).toEqual([]);
    expect((await ipam.gc({ now: 20, graceMs: 10 })).releasedHandles).toEqual(['orphan']);
    expect(await ipam.check()).toEqual([]);
    expect([...ds.handles.objects.keys()]).toEqual(['kept']);
  });

  it("releases an empty block's affinity after the grace period but never the node's last block", async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'p', cidr: '10.0.0.0/24', blockSize: 30 }]);
    const ipam = new Ipam({ datastore: ds });
    for (let i = 0; i < 6; i++) await ipam.allocate({ handle: `h${i}`, node: 'n1' }); // 2 blocks
    expect((await ipam.blocksForNode('n1')).length).toBe(2);
    for (let i = 0; i < 6; i++) await ipam.releaseByHandle(`h${i}`);
    await ipam.gc({ now: 0, graceMs: 100 });
    const r = await ipam.gc({ now: 200, graceMs: 100 });
    expect(r.releasedBlocks).toHaveLength(1);
    expect(await ipam.gc({ now: 400, graceMs: 100 })).toMatchObject({ releasedBlocks: [] });
    expect(await ipam.gc({ now: 600, graceMs: 100 })).toMatchObject({ releasedBlocks: [] });
    expect((await ipam.blocksForNode('n1')).length).toBe(1);
    expect(ds.affinities.objects.size).toBe(1);
    expect(await ipam.check()).toEqual([]);
  });

  it("keeps a dual-stack node's last empty block of each family, and with keepLastBlock false releases both", async () => {
    const setup = async () => {
      const ds = memoryDatastore();
      await withPools(ds, [
        { name: 'v4', cidr: '10.244.0.0/16' },
        { name: 'v6', cidr: 'fd00:10:244::/48' },
      ]);
      const ipam = new Ipam({ datastore: ds });
      await ipam.allocate({ handle: 'h', node: 'n1', ipv4: true, ipv6: true });
      await ipam.releaseByHandle('h');
      return ipam;
    };
    const kept = await setup();
    for (const now of [0, 200, 400]) await kept.gc({ now, graceMs: 100 });
    const families = (await kept.blocksForNode('n1')).map((b) => (b.cidr.includes(':') ? 6 : 4)).sort();
    expect(families).toEqual([4, 6]);

    const released = await setup();
    await released.gc({ now: 0, graceMs: 100, keepLastBlock: false });
    const r = await released.gc({ now: 200, graceMs: 100, keepLastBlock: false });
    expect(r.releasedBlocks).toHaveLength(2);
    expect(await released.blocksForNode('n1')).toEqual([]);
    expect(await released.check()).toEqual([]);
  });

  it('with deletedNodes, releases the last empty block of a node whose Node object is gone', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'p', cidr: '10.0.0.0/24', blockSize: 28 }]);
    ds.nodes.set('alive', {});
    const ipam = new Ipam({ datastore: ds });
    await ipam.allocate({ handle: 'a', node: 'alive' });
    await ipam.allocate({ handle: 'g', node: 'gone' });
    await ipam.releaseByHandle('a');
    await ipam.releaseByHandle('g');
    await ipam.gc({ now: 0, graceMs: 10, deletedNodes: true });
    const r = await ipam.gc({ now: 20, graceMs: 10, deletedNodes: true });
    expect(r.releasedBlocks).toHaveLength(1);
    expect(await ipam.blocksForNode('gone')).toEqual([]);
    expect(await ipam.blocksForNode('alive')).toHaveLength(1);
    expect(await ipam.check()).toEqual([]);
  });

  it('reports inconsistencies: wrong handle counts, missing handles, orphan affinities', async () => {
    const ds = memoryDatastore();
    await withPools(ds, [{ name: 'default', cidr: '10.244.0.0/16' }]);
    const ipam = new Ipam({ datastore: ds });
    await ipam.allocate({ handle: 'h1', node: 'n1' });
    await ipam.allocate({ handle: 'h2', node: 'n1' });
    const h1 = await ds.handles.get(handleName('h1'));
    const cidr = Object.keys(h1.spec.block)[0]!;
    await ds.handles.replace({ ...h1, spec: { ...h1.spec, block: { [cidr]: 3 } } });
    await ds.handles.delete(handleName('h2'));
    await ds.affinities.create({
      metadata: { name: 'orphan' },
      spec: { node: 'n9', cidr: '10.244.99.0/26', state: 'confirmed' },
    });
    const types = (await ipam.check()).map((i) => i.type).sort();
    expect(types).toEqual(['affinity-without-block', 'allocation-without-handle', 'handle-count-mismatch']);
  });

  it('rejects an empty handle or node, or a request for no family', async () => {
    const ipam = new Ipam({ datastore: memoryDatastore() });
    expect(await codeOf(ipam.allocate({ handle: '', node: 'n1' }))).toBe(IPAM_ERR.INVALID_ARGUMENT);
    expect(await codeOf(ipam.allocate({ handle: 'h', node: '' }))).toBe(IPAM_ERR.INVALID_ARGUMENT);
    expect(await codeOf(ipam.allocate({ handle: 'h', node: 'n', ipv4: false }))).toBe(
      IPAM_ERR.INVALID_ARGUMENT,
    );
  });

  it.each([
    ['podnet.abc123', 'podnet.abc123'],
    ['podnet.ABC_123', /^podnet\.abc-123\.[0-9a-f]{16}$/],
    ['___', /^h\.[0-9a-f]{16}$/],
  ])('names handle %s as a valid object name', (id, want) => {
    if (typeof want === 'string') expect(handleName(id)).toBe(want);
    else expect(handleName(id)).toMatch(want);
  });
});

describe('concurrent nodes (any interleaving of datastore calls)', () => {
  const steps = fc.array(
    fc.oneof(
      fc.record({ type: fc.constant('alloc' as const), pod: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ type: fc.constant('release' as const), pod: fc.integer({ min: 0, max: 7 }) }),
    ),
    { maxLength: 8 },
  );

  it('never gives two pods the same address and leaks nothing once every pod is released', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(steps, { minLength: 2, maxLength: 3 }),
        async (s, perNode) => {
          const ds = memoryDatastore(() => s.schedule(Promise.resolve()));
          // Pool setup without interleaving.
          const setup = memoryDatastore();
          await setup.pools.create({ metadata: { name: 'p' }, spec: { cidr: '10.0.0.0/27', blockSize: 30 } });
          for (const [k, v] of setup.pools.objects) ds.pools.objects.set(k, v);
          const held = new Map<string, string>(); // address → handle
          const run = perNode.map(async (nodeSteps, n) => {
            const ipam = new Ipam({ datastore: ds, maxBlocksPerNode: 2, maxRetries: 60 });
            for (const st of nodeSteps) {
              const handle = `n${n}.pod${st.pod}`;
              if (st.type === 'alloc') {
                try {
                  const r = await ipam.allocate({ handle, node: `n${n}` });
                  const a = r.ipv4!.address;
                  const owner = held.get(a);
                  if (owner !== undefined && owner !== handle)
                    throw new Error(`${a} given to ${owner} and ${handle}`);
                  held.set(a, handle);
                } catch (err) {
                  if (!(err instanceof IpamError && err.code === IPAM_ERR.POOL_EXHAUSTED)) throw err;
                }
              } else {
                for (const r of await ipam.releaseByHandle(handle)) held.delete(r.address);
              }
            }
          });
          // Drive the scheduler until a promise settles (every datastore call waits on it).
          const pump = async <T>(p: Promise<T>): Promise<T> => {
            let settled = false;
            const tracked = p.finally(() => {
              settled = true;
            });
            for (let i = 0; i < 100_000 && !settled; i++) {
              if (s.count() > 0) await s.waitOne();
              else await new Promise((r) => setTimeout(r, 0));
            }
            return tracked;
          };
          await pump(Promise.all(run));
          const checker = new Ipam({ datastore: ds });
          expect(await pump(checker.check())).toEqual([]);
          expect((await pump(checker.usage())).totals.used).toBe(held.size);
          // Release every pod and verify nothing is left behind.
          await pump(
            (async () => {
              for (let n = 0; n < perNode.length; n++)
                for (let p = 0; p <= 7; p++) await checker.releaseByHandle(`n${n}.pod${p}`);
            })(),
          );
          const after = await pump(checker.usage());
          expect(await pump(checker.check())).toEqual([]);
          expect(after.totals).toMatchObject({ used: 0, handles: 0 });
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('concurrent allocations with one handle (any interleaving of datastore calls)', () => {
  it('gives a handle one address however many calls race for it, in one process or several', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        // Per simulated process: the handles (0..3) its concurrent ADDs use, and the node it runs on.
        fc.array(
          fc.record({
            node: fc.integer({ min: 0, max: 1 }),
            handles: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 5 }),
          }),
          { minLength: 2, maxLength: 3 },
        ),
        async (s, procs) => {
          const ds = memoryDatastore(() => s.schedule(Promise.resolve()));
          const setup = memoryDatastore();
          // Blocks of 4 addresses, so pinned blocks fill up and pins move under contention.
          await setup.pools.create({ metadata: { name: 'p' }, spec: { cidr: '10.0.0.0/27', blockSize: 30 } });
          for (const [k, v] of setup.pools.objects) ds.pools.objects.set(k, v);
          const returned = new Map<string, Set<string>>(); // handle → addresses returned to callers
          const run = procs.map(async (proc) => {
            const ipam = new Ipam({
              datastore: ds,
              maxBlocksPerNode: 2,
              maxRetries: 60,
              handleWaitMs: 120_000,
            });
            await Promise.all(
              proc.handles.map(async (h) => {
                const handle = `h${h}`;
                try {
                  const r = await ipam.allocate({ handle, node: `n${proc.node}` });
                  const set = returned.get(handle) ?? new Set<string>();
                  set.add(r.ipv4!.address);
                  returned.set(handle, set);
                } catch (err) {
                  if (!(err instanceof IpamError && err.code === IPAM_ERR.POOL_EXHAUSTED)) throw err;
                }
              }),
            );
          });
          const pump = async <T>(p: Promise<T>): Promise<T> => {
            let settled = false;
            const tracked = p.finally(() => {
              settled = true;
            });
            for (let i = 0; i < 100_000 && !settled; i++) {
              if (s.count() > 0) await s.waitOne();
              else await new Promise((r) => setTimeout(r, 0));
            }
            return tracked;
          };
          await pump(Promise.all(run));
          // What the blocks hold, by handle.
          const stored = new Map<string, string[]>();
          for (const b of ds.blocks.objects.values()) {
            const spec = (b as unknown as { spec: { cidr: string; allocations: (number | null)[] } }).spec;
            const attrs = (b as unknown as { spec: { attributes: { handleID: string }[] } }).spec.attributes;
            const base = spec.cidr.split('/')[0]!.split('.').map(Number);
            spec.allocations.forEach((a, o) => {
              if (a === null) return;
              const ip = `${base[0]}.${base[1]}.${base[2]}.${base[3]! + o}`;
              const h = attrs[a]!.handleID;
              stored.set(h, [...(stored.get(h) ?? []), ip]);
            });
          }
          for (const [handle, addrs] of returned) {
            expect(addrs.size, `${handle} was given ${[...addrs].join(', ')}`).toBe(1);
            expect(stored.get(handle), `${handle} holds`).toEqual([...addrs]);
          }
          for (const [handle, addrs] of stored) expect(addrs.length, `${handle} holds ${addrs}`).toBe(1);
          const checker = new Ipam({ datastore: ds });
          expect(await pump(checker.check())).toEqual([]);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('an allocation whose answer is lost after the server stored it', () => {
  it.each(['handle create', 'block write'] as const)(
    'is undone by release by handle (the %s was stored, its answer lost)',
    async (lost) => {
      const ds = memoryDatastore();
      await withPools(ds, [{ name: 'default', cidr: '10.244.0.0/16' }]);
      const ipam = new Ipam({ datastore: ds });
      await ipam.allocate({ handle: 'warm', node: 'n1' });
      let armed = true;
      const cut = () => {
        if (!armed) return;
        armed = false;
        throw new K8sError(K8S_ERR.UNREACHABLE, 'socket hang up (the answer was lost)');
      };
      if (lost === 'handle create') {
        const create = ds.handles.create.bind(ds.handles);
        ds.handles.create = async (o) => {
          const r = await create(o);
          cut();
          return r;
        };
      } else {
        const replace = ds.blocks.replace.bind(ds.blocks);
        ds.blocks.replace = async (o) => {
          const r = await replace(o);
          cut();
          return r;
        };
      }
      await expect(ipam.allocate({ handle: 'podnet.c1.eth0', node: 'n1' })).rejects.toThrow(
        /answer was lost/,
      );
      expect(armed).toBe(false);
      // The server holds the handle (and, in the second case, the address).
      expect(ds.handles.objects.has(handleName('podnet.c1.eth0'))).toBe(true);
      const released = await ipam.releaseByHandle('podnet.c1.eth0');
      expect(released.length).toBe(lost === 'block write' ? 1 : 0);
      expect(ds.handles.objects.has(handleName('podnet.c1.eth0'))).toBe(false);
      expect((await ipam.usage()).totals.used).toBe(1);
      expect(await ipam.check()).toEqual([]);
      // Idempotent: again, nothing to do and no error.
      expect(await ipam.releaseByHandle('podnet.c1.eth0')).toEqual([]);
    },
  );
});
