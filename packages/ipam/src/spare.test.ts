// Spare addresses (an agent's allocations ahead of its pods) over the in-memory datastore:
// transfer to a pod's handle, the node's spares read back, pools checked on use, GC.
import { describe, expect, it } from 'vitest';
import { codeOf } from './__fixtures__/errors.js';
import { IPAM_ERR } from './errors.js';
import { handleName, Ipam, SPARE_ATTR } from './ipam.js';
import { memoryDatastore } from './memory.js';

async function setup(dual = false) {
  const ds = memoryDatastore();
  await ds.pools.create({
    metadata: { name: 'v4' },
    spec: { cidr: '10.9.0.0/24', blockSize: 28, nodeSelector: 'all()' },
  });
  if (dual)
    await ds.pools.create({
      metadata: { name: 'v6' },
      spec: { cidr: 'fd09::/120', blockSize: 124, nodeSelector: 'all()' },
    });
  ds.nodes.set('n1', {});
  const ipam = new Ipam({ datastore: ds, cacheTtlMs: 0 });
  return { ds, ipam };
}

async function spare(ipam: Ipam, name: string, ipv6 = false) {
  const r = await ipam.allocate({
    handle: name,
    node: 'n1',
    ipv4: true,
    ipv6,
    attrs: { [SPARE_ATTR]: 'n1' },
  });
  return { r, blocks: [r.ipv4!.block, ...(r.ipv6 ? [r.ipv6.block] : [])] };
}

describe('spare addresses', () => {
  it('transfer gives the spare addresses to the pod handle with its attributes, and is idempotent', async () => {
    const { ds, ipam } = await setup(true);
    const { r, blocks } = await spare(ipam, 'podnet-spare.n1.a', true);
    expect(await ipam.sparesOf('n1')).toEqual([
      {
        handle: 'podnet-spare.n1.a',
        addresses: [
          { address: r.ipv4!.address, block: r.ipv4!.block },
          { address: r.ipv6!.address, block: r.ipv6!.block },
        ],
      },
    ]);

    const attrs = { namespace: 'default', pod: 'p1', containerID: 'c1', ifname: 'eth0' };
    const held = await ipam.transfer('podnet-spare.n1.a', 'podnet.c1.eth0', 'n1', blocks, attrs);
    expect(held).toEqual([r.ipv4!.address, r.ipv6!.address]);
    expect(await ipam.sparesOf('n1')).toEqual([]);
    // The pod's handle holds them: allocate with it returns them, release frees them.
    const again = await ipam.allocate({ handle: 'podnet.c1.eth0', node: 'n1', ipv4: true, ipv6: true });
    expect([again.ipv4!.address, again.ipv6!.address]).toEqual(held);
    const block = (await ds.blocks.list()).items.find((b) => b.spec.cidr === r.ipv4!.block)!;
    expect(block.spec.attributes).toContainEqual({
      handleID: 'podnet.c1.eth0',
      secondary: { node: 'n1', ...attrs },
    });
    await expect(ds.handles.get(handleName('podnet-spare.n1.a'))).rejects.toThrow(/not found/);
    expect(await ipam.check()).toEqual([]);

    // Again (a restart replaying it): the same answer, nothing written.
    const writes = ds.blocks.writes;
    expect(await ipam.transfer('podnet-spare.n1.a', 'podnet.c1.eth0', 'n1', blocks, attrs)).toEqual(held);
    expect(ds.blocks.writes).toBe(writes);

    // Released meanwhile by another process (this instance's copy of the block is stale): a replay
    // is decided on the server's block.
    const other = new Ipam({ datastore: ds, cacheTtlMs: 0 });
    await ds.handles.create({
      metadata: { name: 'podnet.c2.eth0' },
      spec: { handleID: 'podnet.c2.eth0', block: { [r.ipv4!.block]: 1, [r.ipv6!.block]: 1 } },
    });
    const stale = await spare(ipam, 'podnet-spare.n1.s', true);
    await ipam.transfer('podnet-spare.n1.s', 'podnet.c2.eth0', 'n1', stale.blocks, {});
    await other.releaseByHandle('podnet.c2.eth0');
    expect(await codeOf(ipam.transfer('podnet-spare.n1.s', 'podnet.c2.eth0', 'n1', stale.blocks, {}))).toBe(
      IPAM_ERR.NOT_ALLOCATED,
    );

    // A handle that exists pinning other blocks belongs to another allocation: the spare stays.
    const s2 = await spare(ipam, 'podnet-spare.n1.b');
    expect(await codeOf(ipam.transfer('podnet-spare.n1.b', 'podnet.c1.eth0', 'n1', s2.blocks, {}))).toBe(
      IPAM_ERR.HANDLE_BUSY,
    );
    expect((await ipam.sparesOf('n1')).map((x) => x.handle)).toEqual(['podnet-spare.n1.b']);
    // A spare nobody holds any more: nothing to transfer, and no handle left behind.
    expect(await codeOf(ipam.transfer('podnet-spare.n1.gone', 'podnet.c9.eth0', 'n1', s2.blocks, {}))).toBe(
      IPAM_ERR.NOT_ALLOCATED,
    );
    await expect(ds.handles.get('podnet.c9.eth0')).rejects.toThrow(/not found/);
    expect(await ipam.check()).toEqual([]);
  });

  it('completes a transfer interrupted after the pod handle was written', async () => {
    const { ds, ipam } = await setup();
    const { r, blocks } = await spare(ipam, 'podnet-spare.n1.a');
    // What a crashed transfer leaves: the pod's handle, the block still naming the spare.
    await ds.handles.create({
      metadata: { name: 'podnet.c1.eth0' },
      spec: { handleID: 'podnet.c1.eth0', block: { [blocks[0]!]: 1 } },
    });
    expect(await ipam.transfer('podnet-spare.n1.a', 'podnet.c1.eth0', 'n1', blocks, { pod: 'p' })).toEqual([
      r.ipv4!.address,
    ]);
    expect(await ipam.check()).toEqual([]);
  });

  it('a spare is allocatable while its pool is enabled and selects the node', async () => {
    const { ds, ipam } = await setup();
    const { blocks } = await spare(ipam, 'podnet-spare.n1.a');
    expect(await ipam.allocatable('n1', blocks)).toBe(true);
    const p = await ds.pools.get('v4');
    await ds.pools.replace({ ...p, spec: { ...p.spec, nodeSelector: 'zone=b' } });
    expect(await ipam.allocatable('n1', blocks)).toBe(false);
    ds.nodes.set('n1', { zone: 'b' });
    expect(await ipam.allocatable('n1', blocks)).toBe(true);
    const q = await ds.pools.get('v4');
    await ds.pools.replace({ ...q, spec: { ...q.spec, disabled: true } });
    expect(await ipam.allocatable('n1', blocks)).toBe(false);
  });

  it('GC leaves spares alone while their node exists and releases them once it is gone', async () => {
    const { ds, ipam } = await setup();
    await spare(ipam, 'podnet-spare.n1.a');
    await ipam.gc({ now: 0, graceMs: 10, deletedNodes: true });
    expect((await ipam.gc({ now: 20, graceMs: 10, deletedNodes: true })).releasedHandles).toEqual([]);
    expect(await ipam.sparesOf('n1')).toHaveLength(1);
    ds.nodes.delete('n1');
    await ipam.gc({ now: 30, graceMs: 10, deletedNodes: true });
    const r = await ipam.gc({ now: 50, graceMs: 10, deletedNodes: true });
    expect(r.releasedHandles).toEqual(['podnet-spare.n1.a']);
    expect(await ipam.sparesOf('n1')).toEqual([]);
    expect(await ipam.check()).toEqual([]);
  });
});
