// LoadBalancer address allocation over real HTTP against a Kubernetes API server: the embedded one
// by default, or the cluster KUBECONFIG names (unchanged). Services of type LoadBalancer get
// addresses from LoadBalancerPools in status.loadBalancer.ingress; a requested address that is
// taken is reported (condition, Event) and honoured once its holder is gone; two Services with one
// sharing key share an address when their ports do not clash; bad pools are reported and the good
// ones keep working; two allocators racing, then a leader change, never hand out an address twice.
import { fileURLToPath } from 'node:url';
import type { V1Service } from '@kubernetes/client-node';
import {
  installCrds,
  KubeClient,
  LB_ANNOTATIONS,
  LOADBALANCERADDRESS,
  LOADBALANCERPOOL,
  loadCrdFiles,
} from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventRecorder, TokenBucket } from './events.js';
import { LB_CONDITION, LbAllocator } from './lb-controller.js';
import { LeaderElector } from './leader.js';

const CRD_DIR = fileURLToPath(new URL('../../../deploy/crds', import.meta.url));
const RUN = `lb${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const NS = RUN;
let cluster: TestCluster;
let client: KubeClient;
const pools: string[] = [];
const allocators: LbAllocator[] = [];

async function waitFor<T>(what: string, get: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function allocator(id: string): LbAllocator {
  const c = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  const recorder = new EventRecorder({ client: c, identity: id, limiter: new TokenBucket(50, 50) });
  const a = new LbAllocator({
    client: c,
    recorder,
    ...(process.env.PODNET_TEST_LOG ? { logger: pino({ level: 'debug' }) } : {}),
  });
  allocators.push(a);
  return a;
}

async function pool(name: string, spec: Record<string, unknown>) {
  pools.push(name);
  await client.custom.createClusterCustomObject({
    group: 'podnet.io',
    version: 'v1alpha1',
    plural: 'loadbalancerpools',
    body: { apiVersion: 'podnet.io/v1alpha1', kind: 'LoadBalancerPool', metadata: { name }, spec },
  });
}

async function service(
  name: string,
  spec: Record<string, unknown> = {},
  annotations: Record<string, string> = {},
): Promise<V1Service> {
  return client.core.createNamespacedService({
    namespace: NS,
    body: {
      metadata: { name, annotations },
      spec: { type: 'LoadBalancer', ports: [{ port: 80 }], selector: { app: name }, ...spec },
    } as V1Service,
  });
}

const ingressOf = async (name: string) =>
  (
    (await client.core.readNamespacedServiceStatus({ name, namespace: NS })).status?.loadBalancer?.ingress ??
    []
  ).map((i) => i.ip);

/** The Service's addresses once it has `n` of them. */
const addresses = (name: string, n = 1) =>
  waitFor(`${n} address(es) for ${name}`, async () => {
    const ips = await ingressOf(name);
    return ips.length === n ? (ips as string[]) : undefined;
  });

async function condition(name: string) {
  const s = await client.core.readNamespacedServiceStatus({ name, namespace: NS });
  return s.status?.conditions?.find((c) => c.type === LB_CONDITION);
}

async function events(name: string) {
  const all = await client.core.listNamespacedEvent({ namespace: NS });
  return all.items
    .filter((e) => e.involvedObject.name === name)
    .map((e) => `${e.type} ${e.reason}: ${e.message}`);
}

/** Every LoadBalancerAddress of our pools: no address twice, and who holds each. */
async function allocationTable() {
  const all = (await client.resource(LOADBALANCERADDRESS).list()).items.filter((a) =>
    pools.includes(a.spec.pool),
  );
  return all.map((a) => ({
    address: a.spec.address,
    pool: a.spec.pool,
    holders: a.spec.services.map((s) => s.name).sort(),
  }));
}

beforeAll(async () => {
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  await installCrds(client, { crds: loadCrdFiles(CRD_DIR) });
  await client.core.createNamespace({ body: { metadata: { name: NS } } });
});

afterAll(async () => {
  for (const a of allocators) await a.stop();
  await client.core.deleteNamespace({ name: NS }).catch(() => {});
  for (const a of (
    await client
      .resource(LOADBALANCERADDRESS)
      .list()
      .catch(() => ({ items: [] }))
  ).items)
    if (pools.includes(a.spec.pool))
      await client
        .resource(LOADBALANCERADDRESS)
        .delete(a.metadata.name)
        .catch(() => {});
  for (const p of pools)
    await client
      .resource(LOADBALANCERPOOL)
      .delete(p)
      .catch(() => {});
  await client.custom
    .deleteNamespacedCustomObject({
      group: 'coordination.k8s.io',
      version: 'v1',
      plural: 'leases',
      namespace: NS,
      name: `${RUN}-lease`,
    })
    .catch(() => {});
  await cluster?.close();
});

describe('LoadBalancer address allocation', () => {
  it('gives addresses, honours and reports requests, shares, reports bad pools, and releases only once the Service is gone', async () => {
    await pool(`${RUN}-v4`, { addresses: ['198.18.0.0/29'], avoidBuggyIPs: true });
    await pool(`${RUN}-v6`, { addresses: ['2001:db8:18::10-2001:db8:18::1f'] });
    await pool(`${RUN}-x-overlap`, { addresses: ['198.18.0.4-198.18.0.9'] });
    const a = allocator('node-a');
    a.onStartedLeading();

    // one address per family the Service asks for (two on a dual-stack cluster)
    const web = await service('web', { ipFamilyPolicy: 'PreferDualStack' });
    const fams = web.spec?.ipFamilies ?? ['IPv4'];
    const webIps = await addresses('web', fams.length);
    expect(webIps[0]).toBe(fams[0] === 'IPv6' ? '2001:db8:18::10' : '198.18.0.1'); // .0 avoided
    if (fams.length === 2) expect(webIps).toContain('2001:db8:18::10');
    expect((await condition('web'))?.status).toBe('True');

    // the overlapping pool is refused with the field and value; the first one keeps serving
    const overlap = await waitFor('the overlap condition', async () => {
      const p = (await client.custom.getClusterCustomObject({
        group: 'podnet.io',
        version: 'v1alpha1',
        plural: 'loadbalancerpools',
        name: `${RUN}-x-overlap`,
      })) as {
        status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
      };
      return p.status?.conditions?.find((c) => c.type === 'Ready');
    });
    expect(overlap).toMatchObject({
      status: 'False',
      reason: 'Overlap',
      message: `spec.addresses[0]: "198.18.0.4-198.18.0.9" overlaps LoadBalancerPool "${RUN}-v4" (spec.addresses[0]: "198.18.0.0/29")`,
    });
    await pool(`${RUN}-y-invalid`, { addresses: ['198.18.1.0/33'] });
    const invalid = await waitFor('the invalid pool condition', async () => {
      const p = (await client.custom.getClusterCustomObject({
        group: 'podnet.io',
        version: 'v1alpha1',
        plural: 'loadbalancerpools',
        name: `${RUN}-y-invalid`,
      })) as {
        status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
      };
      return p.status?.conditions?.find((c) => c.type === 'Ready');
    });
    expect(invalid).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(invalid.message).toContain('spec.addresses');
    expect(invalid.message).toContain('"198.18.1.0/33"');
    await waitFor('the pool Warning Event', async () => {
      const all = await client.core.listNamespacedEvent({ namespace: 'default' });
      return all.items.some((e) => e.involvedObject.name === `${RUN}-y-invalid` && e.reason === 'InvalidSpec')
        ? true
        : undefined;
    });
    const v4Status = await waitFor('the v4 pool status', async () => {
      const p = await client.resource(LOADBALANCERPOOL).get(`${RUN}-v4`);
      return p.status?.addressesInUse === 1 ? p.status : undefined;
    });
    expect(v4Status).toMatchObject({ addressesFree: '6' }); // .0-.7 without .0 (avoidBuggyIPs), one in use
    // requested: free → honoured; taken → reported; released only once the holder is gone
    await service('first', { loadBalancerIP: '198.18.0.5' });
    expect(await addresses('first')).toEqual(['198.18.0.5']);
    await service('second', {}, { [LB_ANNOTATIONS.addresses]: '198.18.0.5' });
    const taken = await waitFor('the second Service condition', async () => {
      const c = await condition('second');
      return c?.status === 'False' ? c : undefined;
    });
    expect(taken).toMatchObject({
      reason: 'RequestedAddressTaken',
      message: `requested address 198.18.0.5 is held by ${NS}/first`,
    });
    expect(await ingressOf('second')).toEqual([]);
    await waitFor('the Warning Event', async () =>
      (await events('second')).includes(
        `Warning RequestedAddressTaken: requested address 198.18.0.5 is held by ${NS}/first`,
      )
        ? true
        : undefined,
    );
    await client.core.deleteNamespacedService({ name: 'first', namespace: NS });
    expect(await addresses('second')).toEqual(['198.18.0.5']);
    expect((await condition('second'))?.status).toBe('True');

    // sharing: same key and no port clash → one address; a clash → another one
    const key = { [LB_ANNOTATIONS.sharingKey]: 'shop' };
    await service('shop-http', {}, key);
    const [shared] = await addresses('shop-http');
    await service('shop-https', { ports: [{ port: 443 }] }, key);
    expect(await addresses('shop-https')).toEqual([shared]);
    await service('shop-clash', {}, key);
    const [other] = await addresses('shop-clash');
    expect(other).not.toBe(shared);

    const table = await allocationTable();
    expect(table.find((r) => r.address === shared)?.holders).toEqual(['shop-http', 'shop-https']);
    const plain = table.filter((r) => r.address !== shared);
    expect(plain.every((r) => r.holders.length === 1)).toBe(true);
    expect(new Set(table.map((r) => r.address)).size).toBe(table.length);

    // the ports recorded for sharing follow the Service's
    await client.core.patchNamespacedService({
      name: 'shop-https',
      namespace: NS,
      body: [{ op: 'replace', path: '/spec/ports/0/port', value: 8443 }],
    });
    await waitFor('the recorded ports', async () => {
      const a = (await client.resource(LOADBALANCERADDRESS).list()).items.find(
        (x) => x.spec.address === shared,
      );
      const h = a?.spec.services.find((x) => x.name === 'shop-https');
      return h?.ports.join() === 'TCP/8443' ? true : undefined;
    });

    // not a LoadBalancer any more: its address goes back
    await client.core.patchNamespacedService({
      name: 'shop-clash',
      namespace: NS,
      body: [{ op: 'replace', path: '/spec/type', value: 'ClusterIP' }],
    });
    await waitFor('the release', async () =>
      (await allocationTable()).some((r) => r.address === other) ? undefined : true,
    );
    await waitFor('the ingress cleared', async () =>
      (await ingressOf('shop-clash')).length === 0 ? true : undefined,
    );
    await a.stop();
  }, 60_000);

  it('never hands out an address twice: two allocators racing, then a leader change', async () => {
    await pool(`${RUN}-race`, { addresses: ['198.19.0.0/27'] });
    const a = allocator('node-a');
    const b = allocator('node-b');
    // split brain on purpose: both think they lead
    a.onStartedLeading();
    b.onStartedLeading();
    const names = Array.from({ length: 12 }, (_, i) => `race-${i}`);
    await Promise.all(names.map((n) => service(n, {}, {})));
    const got = await Promise.all(names.map((n) => addresses(n)));
    const flat = got.map((x) => x[0]);
    expect(new Set(flat).size).toBe(names.length);
    await a.idle();
    await b.idle();
    const raced = (await allocationTable()).filter((r) => r.holders.some((h) => h.startsWith('race-')));
    expect(raced.every((r) => r.holders.length === 1)).toBe(true);
    expect(raced).toHaveLength(names.length); // each Service holds exactly one: extras were given back
    await a.stop();
    await b.stop();

    // a leader change through the Lease: the first holder dies, the second takes over
    const electors = ['node-a', 'node-b'].map((id) => {
      const alloc = allocator(id);
      const c = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
      return {
        alloc,
        elector: new LeaderElector({
          client: c,
          namespace: NS,
          name: `${RUN}-lease`,
          identity: id,
          leaseDurationMs: 3000,
          renewDeadlineMs: 2000,
          retryPeriodMs: 250,
          onStartedLeading: () => alloc.onStartedLeading(),
          onStoppedLeading: () => alloc.onStoppedLeading(),
        }),
      };
    });
    electors[0]!.elector.start();
    await waitFor('node-a leading', async () => (electors[0]!.alloc.isLeading() ? true : undefined));
    electors[1]!.elector.start();
    await service('before-change');
    await addresses('before-change');
    await electors[0]!.elector.stop({ release: false });
    await electors[0]!.alloc.stop();
    await service('after-change');
    await waitFor('node-b leading', async () => (electors[1]!.alloc.isLeading() ? true : undefined));
    await addresses('after-change');
    await electors[1]!.elector.stop();
    const all = await allocationTable();
    expect(new Set(all.map((r) => r.address)).size).toBe(all.length);
    const mine = [...names, 'before-change', 'after-change'];
    const race = all.filter((r) => r.holders.some((h) => mine.includes(h)));
    expect(race.every((r) => r.holders.length === 1)).toBe(true);
    expect(race.map((r) => r.holders[0]).sort()).toEqual(mine.sort());
  });
  it('reconciles Services side by side without two taking one address; when the pool runs out, the rest say so and get an address once one is freed', async () => {
    // The earlier tests' pools serve every Service: gone, so this one is all there is.
    for (const p of pools) await client.resource(LOADBALANCERPOOL).delete(p);
    // 8 addresses (.0 and .7 included), 12 Services created at once, 8 workers.
    await pool(`${RUN}-side`, {
      addresses: ['198.19.1.0/29'],
      serviceSelector: 'side=yes',
    });
    const a = allocator('node-c');
    a.onStartedLeading();
    const names = Array.from({ length: 12 }, (_, i) => `side-${i}`);
    await Promise.all(
      names.map((n) =>
        client.core.createNamespacedService({
          namespace: NS,
          body: {
            metadata: { name: n, labels: { side: 'yes' } },
            spec: { type: 'LoadBalancer', ports: [{ port: 80 }], selector: { app: n } },
          } as V1Service,
        }),
      ),
    );
    const states = () =>
      Promise.all(
        names.map(async (n) => ({ n, ips: await ingressOf(n), cond: (await condition(n))?.reason })),
      );
    const settled = await waitFor('every Service allocated or refused', async () => {
      await a.idle();
      const st = await states();
      return st.every((x) => x.ips.length === 1 || x.cond === 'NoAddressAvailable') ? st : undefined;
    });
    const given = settled.filter((x) => x.ips.length === 1);
    expect(given).toHaveLength(8);
    expect(new Set(given.map((x) => x.ips[0])).size).toBe(8);
    const refused = settled.filter((x) => x.ips.length === 0).map((x) => x.n);
    expect(refused).toHaveLength(4);
    // Freeing one address gives it to one of the refused.
    await client.core.deleteNamespacedService({ name: given[0]!.n, namespace: NS });
    const freed = given[0]!.ips[0];
    const taker = await waitFor('a refused Service to get the freed address', async () => {
      for (const n of refused) if ((await ingressOf(n))[0] === freed) return n;
      return undefined;
    });
    expect(refused).toContain(taker);
    await a.stop();
    const table = (await allocationTable()).filter((r) => r.pool === `${RUN}-side`);
    expect(table).toHaveLength(8);
    expect(table.every((r) => r.holders.length === 1)).toBe(true);
  });
});
