// SpareAddresses over IPAM on the in-memory datastore: spares made ahead and given to ADDs, the
// background transfer and annotation, the journal replayed after a crash, pools changed or
// exhausted. The agent's CNI socket with a real API server is in cni-server.netns.test.ts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AllocateRequest,
  CniError,
  CniErrorCode,
  type Datastore,
  type PodRef,
  ResultCache,
} from '@podnet/cni';
import { IPAM_ERR, Ipam, IpamError, memoryDatastore } from '@podnet/ipam';
import { K8S_ERR, K8sError } from '@podnet/k8s';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpareAddresses, type SpareIpam } from './cni-spares.js';
import { createMetrics } from './metrics.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'podnet-spares-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const log = pino({ level: 'silent' });

async function world(cidr = '10.9.0.0/24', blockSize = 28) {
  const ds = memoryDatastore();
  await ds.pools.create({ metadata: { name: 'p' }, spec: { cidr, blockSize, nodeSelector: 'all()' } });
  ds.nodes.set('n1', {});
  const ipam = new Ipam({ datastore: ds, cacheTtlMs: 0 });
  const annotations: { pod: PodRef; ips: string[] }[] = [];
  const inner: Datastore = {
    async allocate(r) {
      try {
        const a = await ipam.allocate({
          handle: r.handle,
          node: r.node,
          ipv4: r.ipv4,
          ipv6: r.ipv6,
          attrs: r.attrs,
          ...(r.ipv4Pools.length ? { pools: r.ipv4Pools } : {}),
        });
        return { ipv4: a.ipv4?.address, ipv6: a.ipv6?.address };
      } catch (err) {
        if (err instanceof IpamError && err.code === IPAM_ERR.POOL_EXHAUSTED)
          throw new CniError(CniErrorCode.IpamExhausted, err.message);
        throw err;
      }
    },
    releaseByHandle: async (h) => void (await ipam.releaseByHandle(h)),
    annotatePod: async (pod, ips) => void annotations.push({ pod, ips }),
    listHandles: async () => [],
    status: async () => ({ reachable: true, usablePool: true, detail: '' }),
    close: async () => {},
  };
  return { ds, ipam, inner, annotations };
}

const req = (c: string, extra: Partial<AllocateRequest> = {}): AllocateRequest => ({
  handle: `podnet.${c}.eth0`,
  node: 'n1',
  ipv4: true,
  ipv6: false,
  ipv4Pools: [],
  ipv6Pools: [],
  attrs: { node: 'n1', containerID: c, ifname: 'eth0', namespace: 'default', pod: `pod-${c}` },
  ...extra,
});

const by = () => ({ cacheDir: join(dir, 'cache'), network: 'podnet' });

function spares(
  w: { ipam: SpareIpam; inner: Datastore },
  count = 2,
  metrics?: ReturnType<typeof createMetrics>,
) {
  return new SpareAddresses(
    {
      node: 'n1',
      count,
      journal: join(dir, 'journal'),
      log,
      retryMs: { first: 5, max: 20 },
      annotationWaitMs: 2_000,
      replayCheckMs: 20,
      ...(metrics ? { metrics } : {}),
    },
    w.ipam,
    w.inner,
  );
}

/** Waits (boundedly) until the spares of kind '4' reach n. */
async function refilled(s: SpareAddresses, n: number) {
  for (let i = 0; i < 200 && (s.available()['4'] ?? 0) < n; i++) await new Promise((r) => setTimeout(r, 5));
  expect(s.available()['4']).toBe(n);
}

/** The result cache entry an ADD leaves when it completes. */
function completed(c: string, ip: string) {
  new ResultCache(join(dir, 'cache')).put({
    kind: 'podnet-attachment',
    network: 'podnet',
    containerId: c,
    ifname: 'eth0',
    handle: `podnet.${c}.eth0`,
    pod: { namespace: 'default', name: `pod-${c}` },
    plan: { netns: '/x', hostIf: 'h', podIf: 'eth0', mtu: 1500, addresses: [`${ip}/32`] } as never,
    result: { cniVersion: '1.0.0' } as never,
    createdAt: new Date().toISOString(),
  });
}

describe('spare addresses', () => {
  it('answers from a spare made ahead, then records it for the pod in the background', async () => {
    const w = await world();
    const metrics = createMetrics();
    const s = spares(w, 2, metrics);
    await s.loaded();
    // Nothing set aside yet: the first ADD allocates through IPAM, and spares are made after it.
    const first = await s.allocate(req('c1'), by());
    expect(first.taken).toBeUndefined();
    await refilled(s, 2);
    const made = (await w.ipam.sparesOf('n1')).map((x) => x.addresses[0]!.address);
    expect(made).toHaveLength(2);

    const got = await s.allocate(req('c2'), by());
    expect(got.taken).toBeDefined();
    expect(made).toContain(got.alloc.ipv4);
    // The journal holds the take before the answer.
    expect(readFileSync(join(dir, 'journal'), 'utf8')).toContain('"op":"take"');
    expect(s.annotateLater(got.taken!, { namespace: 'default', name: 'pod-c2' }, [got.alloc.ipv4!])).toBe(
      true,
    );
    await s.settled();
    // The pod's handle holds the address, with the pod's attributes; the annotation followed.
    const again = await w.ipam.allocate({ handle: 'podnet.c2.eth0', node: 'n1' });
    expect(again.ipv4!.address).toBe(got.alloc.ipv4);
    const block = (await w.ds.blocks.list()).items[0]!;
    expect(block.spec.attributes).toContainEqual({
      handleID: 'podnet.c2.eth0',
      secondary: { node: 'n1', containerID: 'c2', ifname: 'eth0', namespace: 'default', pod: 'pod-c2' },
    });
    expect(w.annotations).toEqual([{ pod: { namespace: 'default', name: 'pod-c2' }, ips: [got.alloc.ipv4] }]);
    expect(readFileSync(join(dir, 'journal'), 'utf8')).toBe('');
    await refilled(s, 2);
    expect(await w.ipam.check()).toEqual([]);
    expect(s.stats).toMatchObject({ given: 1, missed: 1, transferred: 1 });

    // DEL right after an ADD that took a spare: released once recorded, nothing left held.
    const third = await s.allocate(req('c3'), by());
    expect(third.taken).toBeDefined();
    expect((await metrics.cniSparePending.get()).values[0]?.value).toBe(1);
    await s.releaseByHandle('podnet.c3.eth0');
    const held = (await w.ds.blocks.list()).items[0]!.spec.attributes.map((a) => a.handleID);
    expect(held).not.toContain('podnet.c3.eth0');
    await s.settled();
    await refilled(s, 2);
    const count = async (result: string) =>
      (await metrics.cniSpareAllocations.get()).values.find((v) => v.labels.result === result)?.value;
    expect(await count('given')).toBe(2);
    expect(await count('missed')).toBe(1);
    expect((await metrics.cniSpares.get()).values).toEqual([{ labels: { families: '4' }, value: 2 }]);
    expect((await metrics.cniSparePending.get()).values[0]?.value).toBe(0);
    s.close();
  });

  it('only ADDs for its node that name no pools take spares', async () => {
    const w = await world();
    const s = spares(w);
    await s.loaded();
    await s.allocate(req('c1'), by());
    await refilled(s, 2);
    expect((await s.allocate(req('c2', { node: 'n2' }), by())).taken).toBeUndefined();
    expect((await s.allocate(req('c3', { ipv4Pools: ['p'] }), by())).taken).toBeUndefined();
    expect(s.available()['4']).toBe(2);
    s.close();
  });

  it('after a crash, completes the records of finished ADDs and frees the spares of unfinished ones', async () => {
    const w = await world();
    // The API write of every transfer fails: the crash comes before any record is completed.
    const down: SpareIpam = {
      allocate: (r) => w.ipam.allocate(r),
      sparesOf: (n) => w.ipam.sparesOf(n),
      allocatable: (n, b) => w.ipam.allocatable(n, b),
      releaseByHandle: (h) => w.ipam.releaseByHandle(h),
      transfer: async () => {
        throw new K8sError(K8S_ERR.UNREACHABLE, 'connect ECONNREFUSED');
      },
    };
    const a = spares({ ipam: down, inner: w.inner }, 3);
    await a.loaded();
    await a.allocate(req('c0'), by());
    await refilled(a, 3);
    const done = await a.allocate(req('c1'), by());
    const lost = await a.allocate(req('c2'), by());
    const late = await a.allocate(req('c4'), by());
    expect(a.annotateLater(done.taken!, { namespace: 'default', name: 'pod-c1' }, [done.alloc.ipv4!])).toBe(
      true,
    );
    a.close();
    // c1's ADD completed (its result is cached); c2's did not (the shim ran the standalone plugin).
    completed('c1', done.alloc.ipv4!);

    const b = spares(w);
    await b.loaded();
    // c2's spare is held until the checks for its result have run out (the agent before may still
    // have been running its ADD).
    expect(b.stats).toMatchObject({ replayed: 1, cancelled: 0 });
    // The records still being decided stay in the journal.
    expect(readFileSync(join(dir, 'journal'), 'utf8')).toContain('"handle":"podnet.c4.eth0"');
    // c4's ADD was still running in the agent before: its result appears during the checks.
    completed('c4', late.alloc.ipv4!);
    for (let i = 0; i < 200 && b.stats.cancelled === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(b.stats).toMatchObject({ replayed: 2, cancelled: 1 });
    await b.settled();
    expect((await w.ipam.allocate({ handle: 'podnet.c4.eth0', node: 'n1' })).ipv4!.address).toBe(
      late.alloc.ipv4,
    );
    const c1 = await w.ipam.allocate({ handle: 'podnet.c1.eth0', node: 'n1' });
    expect(c1.ipv4!.address).toBe(done.alloc.ipv4);
    expect(w.annotations).toContainEqual({
      pod: { namespace: 'default', name: 'pod-c1' },
      ips: [done.alloc.ipv4],
    });
    // c2's spare is free again; c1's is never given again.
    const free = (await w.ipam.sparesOf('n1')).map((x) => x.addresses[0]!.address);
    expect(free).toContain(lost.alloc.ipv4);
    expect(free).not.toContain(done.alloc.ipv4);
    expect(free).not.toContain(late.alloc.ipv4);
    const next = await b.allocate(req('c3'), by());
    expect(next.alloc.ipv4).not.toBe(done.alloc.ipv4);
    b.annotateLater(next.taken!, { namespace: 'default', name: 'pod-c3' }, [next.alloc.ipv4!]);
    await b.settled();
    expect(await w.ipam.check()).toEqual([]);
    b.close();
  });

  it('gives a spare back when its pool no longer serves the node, and when the pools run out', async () => {
    // A /30 pool in /30 blocks: four addresses in all.
    const w = await world('10.9.0.0/30', 30);
    const s = spares(w, 2);
    await s.loaded();
    await s.allocate(req('c1'), by());
    await refilled(s, 2);
    // Three of four are held (c1 and two spares): a request the spares cannot serve (it names the
    // pool) takes the fourth, and the next one gets the spares released and succeeds.
    await s.allocate(req('c2', { ipv4Pools: ['p'] }), by());
    const squeezed = await s.allocate(req('c3', { ipv4Pools: ['p'] }), by());
    expect(squeezed.taken).toBeUndefined();
    expect(squeezed.alloc.ipv4).toMatch(/^10\.9\.0\./);
    expect(s.available()['4']).toBe(0);
    expect(await w.ipam.sparesOf('n1')).toHaveLength(0);
    s.close();

    const w2 = await world();
    const t = spares(w2, 1);
    await t.loaded();
    await t.allocate(req('c1'), by());
    await refilled(t, 1);
    const p = await w2.ds.pools.get('p');
    await w2.ds.pools.replace({ ...p, spec: { ...p.spec, disabled: true } });
    const r = await t.allocate(req('c2'), by()).catch((err: Error) => err);
    // The pool is disabled: the spare is not given, and IPAM refuses as it would without spares.
    expect(r).toBeInstanceOf(Error);
    for (let i = 0; i < 100 && (await w2.ipam.sparesOf('n1')).length > 0; i++)
      await new Promise((x) => setTimeout(x, 5));
    expect(await w2.ipam.sparesOf('n1')).toEqual([]);
    t.close();
  });

  it('keeps the journal short when a record stays open, and gives spares while the pools cannot be read', async () => {
    const w = await world('10.9.0.0/20', 26);
    let apiDown = false;
    const ipam: SpareIpam = {
      allocate: (r) => w.ipam.allocate(r),
      sparesOf: (n) => w.ipam.sparesOf(n),
      allocatable: async (n, b) => {
        if (apiDown) throw new K8sError(K8S_ERR.UNREACHABLE, 'connect ECONNREFUSED');
        return w.ipam.allocatable(n, b);
      },
      releaseByHandle: (h) => w.ipam.releaseByHandle(h),
      transfer: async (from, to, node, blocks, attrs) => {
        if (to === 'podnet.bad.eth0') throw new IpamError(IPAM_ERR.HANDLE_BUSY, 'another allocation owns it');
        return w.ipam.transfer(from, to, node, blocks, attrs);
      },
    };
    const s = spares({ ipam, inner: w.inner });
    await s.loaded();
    await s.allocate(req('c0'), by());
    await refilled(s, 2);
    const bad = await s.allocate(req('bad'), by());
    expect(bad.taken).toBeDefined();
    s.annotateLater(bad.taken!, { namespace: 'default', name: 'pod-bad' }, [bad.alloc.ipv4!]);
    await s.settled();
    // 120 pods come and go (three lines each): the file is rewritten with the open record only.
    for (let i = 0; i < 120; i++) {
      await refilled(s, 2);
      const got = await s.allocate(req(`p${i}`), by());
      expect(got.taken).toBeDefined();
      s.annotateLater(got.taken!, { namespace: 'default', name: `pod-p${i}` }, [got.alloc.ipv4!]);
      await s.settled();
      await s.releaseByHandle(`podnet.p${i}.eth0`);
    }
    const lines = readFileSync(join(dir, 'journal'), 'utf8').split('\n').filter(Boolean);
    expect(lines.length).toBeLessThan(260);
    expect(lines[0]).toContain('"handle":"podnet.bad.eth0"');
    // The refused spare is never given again.
    expect((await w.ipam.sparesOf('n1')).map((x) => x.addresses[0]!.address)).toContain(bad.alloc.ipv4);
    // The API server does not answer: an ADD still gets a spare.
    await refilled(s, 2);
    apiDown = true;
    const offline = await s.allocate(req('off'), by());
    expect(offline.taken).toBeDefined();
    expect(offline.alloc.ipv4).not.toBe(bad.alloc.ipv4);
    apiDown = false;
    s.annotateLater(offline.taken!, { namespace: 'default', name: 'pod-off' }, [offline.alloc.ipv4!]);
    await s.settled();
    s.close();
  });
});
