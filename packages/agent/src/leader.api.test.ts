// Leader election over real HTTP against a Kubernetes API server: the embedded one by default, or
// the cluster KUBECONFIG names (unchanged). Two electors campaign for one Lease, as two agents do.
import { KubeClient, toK8sError } from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaderElector, type LeaderElectorOptions } from './leader.js';

const RUN = `le${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const NS = 'default';
let cluster: TestCluster;
let client: KubeClient;
const leases: string[] = [];

async function waitFor(what: string, check: () => boolean, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function readLease(name: string) {
  return (await client.custom.getNamespacedCustomObject({
    group: 'coordination.k8s.io',
    version: 'v1',
    plural: 'leases',
    namespace: NS,
    name,
  })) as { spec: { holderIdentity?: string; leaseTransitions?: number } };
}

function elector(name: string, identity: string, extra: Partial<LeaderElectorOptions> = {}) {
  const log: string[] = [];
  const e = new LeaderElector({
    client: new KubeClient({ kubeconfigPath: cluster.kubeconfigPath }),
    namespace: NS,
    name,
    identity,
    leaseDurationMs: 3000,
    renewDeadlineMs: 2000,
    retryPeriodMs: 250,
    onStartedLeading: () => log.push('start'),
    onStoppedLeading: () => log.push('stop'),
    ...extra,
  });
  return { e, log };
}

beforeAll(async () => {
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
});

afterAll(async () => {
  for (const name of leases)
    await client.custom
      .deleteNamespacedCustomObject({
        group: 'coordination.k8s.io',
        version: 'v1',
        plural: 'leases',
        namespace: NS,
        name,
      })
      .catch((err) => toK8sError(err, 'cleanup'));
  await cluster?.close();
});

describe('leader election on a coordination.k8s.io/v1 Lease', () => {
  it('elects one of two candidates and hands over when the holder dies, after the lease expires', async () => {
    const name = `${RUN}-die`;
    leases.push(name);
    const a = elector(name, 'node-a');
    const b = elector(name, 'node-b');
    a.e.start();
    await waitFor('node-a to lead', () => a.e.isLeader());
    b.e.start();
    // b has read the lease held by a several times and still does not lead.
    await waitFor('node-b to try three times', () => b.e.attempts >= 3);
    expect(b.e.isLeader()).toBe(false);
    expect(a.e.isLeader()).toBe(true);
    expect(b.e.holder()).toBe('node-a');
    // The holder dies: no release, no more renewals.
    await a.e.stop({ release: false });
    await waitFor('node-b to take over', () => b.e.isLeader());
    const lease = await readLease(name);
    expect(lease.spec.holderIdentity).toBe('node-b');
    expect(lease.spec.leaseTransitions).toBe(1);
    expect(a.log).toEqual(['start', 'stop']);
    expect(b.log).toEqual(['start']);
    await b.e.stop();
  }, 30_000);

  it('hands over at once when the holder stops gracefully and releases the lease', async () => {
    const name = `${RUN}-release`;
    leases.push(name);
    // A lease of 60 s: b can lead within the wait below only because a released it.
    const long = { leaseDurationMs: 60_000, renewDeadlineMs: 10_000, retryPeriodMs: 250 };
    const a = elector(name, 'node-a', long);
    const b = elector(name, 'node-b', long);
    a.e.start();
    await waitFor('node-a to lead', () => a.e.isLeader());
    b.e.start();
    await waitFor('node-b to try twice', () => b.e.attempts >= 2);
    expect(b.e.isLeader()).toBe(false);
    await a.e.stop();
    expect((await readLease(name)).spec.holderIdentity ?? '').toBe('');
    await waitFor('node-b to take over', () => b.e.isLeader(), 15_000);
    expect((await readLease(name)).spec.holderIdentity).toBe('node-b');
    await b.e.stop();
  }, 30_000);

  it('never lets two candidates lead at once while they race for a free lease', async () => {
    const name = `${RUN}-race`;
    leases.push(name);
    const all = ['n1', 'n2', 'n3', 'n4'].map((id) => elector(name, id));
    let both = false;
    const timer = setInterval(() => {
      if (all.filter((x) => x.e.isLeader()).length > 1) both = true;
    }, 5);
    try {
      for (const x of all) x.e.start();
      await waitFor('a leader', () => all.some((x) => x.e.isLeader()));
      // Several more rounds of every candidate trying.
      await waitFor('every candidate to try four times', () => all.every((x) => x.e.attempts >= 4));
      expect(all.filter((x) => x.e.isLeader())).toHaveLength(1);
      expect(both).toBe(false);
    } finally {
      clearInterval(timer);
      for (const x of all) await x.e.stop();
    }
  }, 30_000);
});
