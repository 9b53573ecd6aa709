// Status conditions and Events over real HTTP against a Kubernetes API server: the embedded one by
// default, or the cluster KUBECONFIG names (unchanged). Two agents' status writers campaign for one
// Lease; only the holder writes IPPool and BGPPeer conditions, and a new holder takes over when the
// first one dies. Each agent reports only its own Node's annotations.
import { fileURLToPath } from 'node:url';
import { BGPPEER, IPPOOL, installCrds, KubeClient, loadCrdFiles } from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventRecorder, TokenBucket } from './events.js';
import { LeaderElector } from './leader.js';
import { NodeAnnotationReporter } from './node-events.js';
import { StatusWriter } from './status-writer.js';

const CRD_DIR = fileURLToPath(new URL('../../../deploy/crds', import.meta.url));
const RUN = `cond${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
let cluster: TestCluster;
let client: KubeClient;
const made = { pools: [] as string[], peers: [] as string[], configs: [] as string[], nodes: [] as string[] };

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Cond {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

type Plural = 'ippools' | 'bgppeers' | 'bgpconfigurations';
const KIND: Record<Plural, string> = {
  ippools: 'IPPool',
  bgppeers: 'BGPPeer',
  bgpconfigurations: 'BGPConfiguration',
};

async function ready(plural: Plural, name: string): Promise<Cond | undefined> {
  const o = (await client.custom.getClusterCustomObject({
    group: 'podnet.io',
    version: 'v1alpha1',
    plural,
    name,
  })) as { status?: { conditions?: Cond[] } };
  return o.status?.conditions?.find((c) => c.type === 'Ready');
}

async function eventsFor(name: string) {
  const all = await client.core.listNamespacedEvent({ namespace: 'default' });
  return all.items
    .filter((e) => e.involvedObject.name === name)
    .map((e) => ({ kind: e.involvedObject.kind, type: e.type, reason: e.reason, message: e.message ?? '' }));
}

/** One agent's cluster-wide part: its elector and the writer it runs while it leads. */
function agent(id: string, lease: string) {
  const c = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  const limiter = new TokenBucket(20, 20);
  const recorder = new EventRecorder({ client: c, identity: id, limiter });
  const writer = new StatusWriter({ client: c, recorder, limiter });
  const elector = new LeaderElector({
    client: c,
    namespace: 'default',
    name: lease,
    identity: id,
    leaseDurationMs: 3000,
    renewDeadlineMs: 2000,
    retryPeriodMs: 250,
    onStartedLeading: () => writer.start(),
    onStoppedLeading: () => void writer.stop(),
  });
  return {
    elector,
    writer,
    recorder,
    /** The process dies: no release, nothing more written. */
    async kill() {
      await elector.stop({ release: false });
      await writer.stop();
    },
  };
}

beforeAll(async () => {
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  await installCrds(client, { crds: loadCrdFiles(CRD_DIR) });
});

afterAll(async () => {
  for (const n of made.pools)
    await client
      .resource(IPPOOL)
      .delete(n)
      .catch(() => {});
  for (const n of made.peers)
    await client
      .resource(BGPPEER)
      .delete(n)
      .catch(() => {});
  for (const name of made.nodes) await client.core.deleteNode({ name }).catch(() => {});
  await client.custom
    .deleteNamespacedCustomObject({
      group: 'coordination.k8s.io',
      version: 'v1',
      plural: 'leases',
      namespace: 'default',
      name: `${RUN}-status`,
    })
    .catch(() => {});
  await cluster?.close();
});

/** Creates a custom object as a user would (raw, so an invalid spec reaches the server). */
async function createRaw(plural: Plural, name: string, spec: Record<string, unknown>) {
  ({ ippools: made.pools, bgppeers: made.peers, bgpconfigurations: made.configs })[plural].push(name);
  await client.custom.createClusterCustomObject({
    group: 'podnet.io',
    version: 'v1alpha1',
    plural,
    body: { apiVersion: 'podnet.io/v1alpha1', kind: KIND[plural], metadata: { name }, spec },
  });
}

describe('status conditions and Events for the objects podnet reads', () => {
  it('marks bad IPPools, BGPPeers and BGPConfigurations Ready=False with the field and the value, good ones Ready=True, from one elected writer that hands over', async () => {
    const base = `${RUN}-a-base`;
    const half = `${RUN}-b-half`; // newer than base and after it by name: set aside either way
    const bad = `${RUN}-c-bad`;
    const peerBad = `${RUN}-peer-bad`;
    const peerOk = `${RUN}-peer-ok`;
    await createRaw('ippools', base, { cidr: '100.80.0.0/16' });
    await createRaw('ippools', half, { cidr: '100.80.128.0/17', disabled: true });
    await createRaw('ippools', bad, { cidr: '100.81.0.1/16' });
    await createRaw('bgppeers', peerBad, { peerIP: '10.0.0.300', asNumber: 65000 });
    await createRaw('bgppeers', peerOk, { peerIP: '192.0.2.1', asNumber: 65001 });
    const cfgBad = `node.${RUN}-x`;
    const cfgOk = `node.${RUN}-y`;
    await createRaw('bgpconfigurations', cfgBad, { holdTime: 2 });
    await createRaw('bgpconfigurations', cfgOk, { holdTime: 9, keepaliveTime: 3 });

    const a = agent('node-a', `${RUN}-status`);
    const b = agent('node-b', `${RUN}-status`);
    a.elector.start();
    await waitFor('node-a to lead', () => a.elector.isLeader());
    b.elector.start();
    try {
      await waitFor('every condition', async () => {
        const all = await Promise.all([
          ready('ippools', base),
          ready('ippools', half),
          ready('ippools', bad),
          ready('bgppeers', peerBad),
          ready('bgppeers', peerOk),
          ready('bgpconfigurations', cfgBad),
          ready('bgpconfigurations', cfgOk),
        ]);
        return all.every((c) => c !== undefined);
      });
      expect(await ready('ippools', base)).toMatchObject({ status: 'True', reason: 'Valid' });
      const h = await ready('ippools', half);
      expect(h).toMatchObject({ status: 'False', reason: 'Overlap' });
      expect(h?.message).toContain(`IPPool ${half} spec.cidr 100.80.128.0/17 overlaps IPPool ${base}`);
      const x = await ready('ippools', bad);
      expect(x).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
      expect(x?.message).toContain('spec.cidr: "100.81.0.1/16" is not a valid network CIDR');
      const pb = await ready('bgppeers', peerBad);
      expect(pb).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
      expect(pb?.message).toContain('spec.peerIP: "10.0.0.300" is not an IP address');
      expect(await ready('bgppeers', peerOk)).toMatchObject({ status: 'True', reason: 'Valid' });
      const cb = await ready('bgpconfigurations', cfgBad);
      expect(cb).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
      expect(cb?.message).toContain('spec.holdTime: hold time 2 must be 0 or at least 3 seconds');
      expect(await ready('bgpconfigurations', cfgOk)).toMatchObject({ status: 'True', reason: 'Valid' });
      expect(b.elector.isLeader()).toBe(false);
      expect(b.writer.writes).toBe(0);

      // One Warning Event per unusable object, none for the good ones.
      await waitFor('the warnings', async () => (await eventsFor(cfgBad)).length > 0);
      expect(await eventsFor(cfgBad)).toEqual([
        { kind: 'BGPConfiguration', type: 'Warning', reason: 'InvalidSpec', message: cb?.message },
      ]);
      expect(await eventsFor(cfgOk)).toEqual([]);
      expect(await eventsFor(half)).toEqual([
        { kind: 'IPPool', type: 'Warning', reason: 'Overlap', message: h?.message },
      ]);
      expect(await eventsFor(bad)).toEqual([
        { kind: 'IPPool', type: 'Warning', reason: 'InvalidSpec', message: x?.message },
      ]);
      expect(await eventsFor(peerBad)).toEqual([
        { kind: 'BGPPeer', type: 'Warning', reason: 'InvalidSpec', message: pb?.message },
      ]);
      expect(await eventsFor(base)).toEqual([]);
      expect(await eventsFor(peerOk)).toEqual([]);

      // The writer dies; the other agent takes the lease once it expires and acts on a fix.
      await a.kill();
      await waitFor('node-b to lead', () => b.elector.isLeader());
      await client.custom.patchClusterCustomObject(
        {
          group: 'podnet.io',
          version: 'v1alpha1',
          plural: 'ippools',
          name: bad,
          body: { spec: { cidr: '100.81.0.0/16' } },
        },
        (await import('@kubernetes/client-node')).setHeaderOptions(
          'Content-Type',
          'application/merge-patch+json',
        ),
      );
      await waitFor(
        'the fixed pool to be Ready',
        async () => (await ready('ippools', bad))?.status === 'True',
      );
      await waitFor('the recovery Event', async () => (await eventsFor(bad)).length === 2);
      expect((await eventsFor(bad))[1]).toMatchObject({ type: 'Normal', reason: 'Valid' });
      // The new writer found the conditions written before it and rewrote none of them.
      expect(b.writer.writtenKeys.filter((k) => k.includes(RUN))).toEqual([`IPPool/${bad}`]);
      expect(await eventsFor(half)).toHaveLength(1);
    } finally {
      await a.kill();
      await b.elector.stop();
      await b.writer.stop();
    }
  }, 60_000);

  it("reports invalid podnet annotations on the agent's own Node as a Warning Event naming the annotation and the value", async () => {
    const name = `${RUN}-node`;
    made.nodes.push(name);
    await client.core.createNode({
      body: { metadata: { name, annotations: { 'podnet.io/ipv4-address': '10.0.0.300/24' } } },
    });
    const c = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
    const recorder = new EventRecorder({ client: c, identity: name, limiter: new TokenBucket(5, 5) });
    const r = new NodeAnnotationReporter({ client: c, nodeName: name, recorder });
    r.start();
    try {
      await waitFor('the Warning', async () => (await eventsFor(name)).length === 1);
      const [ev] = await eventsFor(name);
      expect(ev).toMatchObject({ kind: 'Node', type: 'Warning', reason: 'InvalidAnnotation' });
      expect(ev?.message).toContain(
        'annotation podnet.io/ipv4-address: "10.0.0.300/24" is not an IPv4 address',
      );
      await client.annotateNode(name, { 'podnet.io/ipv4-address': '10.0.0.30/24' });
      await waitFor('the Normal Event', async () => (await eventsFor(name)).length === 2);
      expect((await eventsFor(name))[1]).toMatchObject({ type: 'Normal', reason: 'AnnotationsValid' });
      expect(r.problems()).toEqual([]);
    } finally {
      await r.stop();
    }
  }, 30_000);
});
