// Typed access and informers against a Kubernetes API server over HTTP: the embedded server by
// default, or the real cluster named by KUBECONFIG (the suite runs unchanged against both).
// Everything this suite creates carries a per-run label and unique names.
import diagnostics from 'node:diagnostics_channel';
import { type TestCluster, testCluster } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { apiWithCrds, CRD_DIR, logCapture, testRun, waitFor } from './__fixtures__/api.js';
import { KubeClient } from './client.js';
import { K8S_ERR, K8sError, SchemaError } from './errors.js';
import { coreSource, Informer, type InformerEvent, resourceSource } from './informer.js';
import { installCrds, loadCrdFiles } from './install.js';
import { BGPCONFIGURATION, BGPPEER, IPPOOL } from './resources.js';
import type { IPPool } from './schemas.js';

const { run: RUN, labels: runLabel, selector: runSelector } = testRun('k8s');

let cluster: TestCluster;
let client: KubeClient;
const created: { pools: string[]; peers: string[]; pods: string[] } = { pools: [], peers: [], pods: [] };

function pool(name: string, cidr: string, extra: Record<string, string> = {}) {
  created.pools.push(name);
  return { metadata: { name, labels: { ...runLabel, ...extra } }, spec: { cidr } };
}

beforeAll(async () => {
  ({ cluster, client } = await apiWithCrds({ historySize: 30, bookmarkIntervalMs: 300 }));
});

afterAll(async () => {
  const pools = client?.resource(IPPOOL);
  for (const name of created.pools) await pools?.delete(name).catch(() => {});
  for (const name of created.peers)
    await client
      ?.resource(BGPPEER)
      .delete(name)
      .catch(() => {});
  for (const name of created.pods)
    await client?.core
      .deleteNamespacedPod({ namespace: 'default', name, gracePeriodSeconds: 0 })
      .catch(() => {});
  await cluster?.close();
});

describe('typed resource client', () => {
  it('creates, reads back with defaults applied, and lists by label', async () => {
    const pools = client.resource(IPPOOL);
    const p = await pools.create(pool(`${RUN}-a`, '100.64.0.0/20'));
    expect(p.spec).toMatchObject({
      cidr: '100.64.0.0/20',
      blockSize: 26,
      natOutgoing: false,
      nodeSelector: 'all()',
    });
    expect(p.metadata.resourceVersion).toBeTruthy();
    const got = await pools.get(`${RUN}-a`);
    expect(got.spec.cidr).toBe('100.64.0.0/20');
    const list = await pools.list({ labelSelector: runSelector });
    expect(list.items.map((i) => i.metadata.name)).toContain(`${RUN}-a`);
    expect(list.resourceVersion).toBeTruthy();
  });

  it('installs the CRDs with their schema defaults, so the server defaults objects written by anyone', async () => {
    const stored = await client.extensions.readCustomResourceDefinition({ name: 'ippools.podnet.io' });
    const spec = stored.spec.versions[0]?.schema?.openAPIV3Schema?.properties?.spec;
    expect(spec?.properties?.nodeSelector?._default).toBe('all()');
    // A raw object without the defaulted fields, bypassing our typed client's own defaulting.
    const name = `${RUN}-raw`;
    created.pools.push(name);
    const obj = (await client.custom.createClusterCustomObject({
      group: 'podnet.io',
      version: 'v1alpha1',
      plural: 'ippools',
      body: {
        apiVersion: 'podnet.io/v1alpha1',
        kind: 'IPPool',
        metadata: { name },
        spec: { cidr: '100.64.48.0/20' },
      },
    })) as IPPool;
    expect(obj.spec.nodeSelector).toBe('all()');
  });

  it('maps API failures to typed errors: NOT_FOUND, ALREADY_EXISTS, CONFLICT', async () => {
    const pools = client.resource(IPPOOL);
    const codeOf = async (p: Promise<unknown>) => {
      try {
        await p;
        return 'no error';
      } catch (err) {
        expect(err).toBeInstanceOf(K8sError);
        return (err as K8sError).code;
      }
    };
    expect(await codeOf(pools.get(`${RUN}-missing`))).toBe(K8S_ERR.NOT_FOUND);
    const p = await pools.create(pool(`${RUN}-b`, '100.64.16.0/20'));
    expect(await codeOf(pools.create(pool(`${RUN}-b`, '100.64.16.0/20')))).toBe(K8S_ERR.ALREADY_EXISTS);
    const updated = await pools.replace({ ...p, spec: { ...p.spec, disabled: true } });
    expect(updated.spec.disabled).toBe(true);
    expect(Number(updated.metadata.resourceVersion)).not.toBe(Number(p.metadata.resourceVersion));
    // A write based on the old version loses: compare-and-swap.
    expect(await codeOf(pools.replace({ ...p, spec: { ...p.spec, natOutgoing: true } }))).toBe(
      K8S_ERR.CONFLICT,
    );
    expect(await codeOf(pools.delete(`${RUN}-b`, { resourceVersion: p.metadata.resourceVersion! }))).toBe(
      K8S_ERR.CONFLICT,
    );
    const patched = await pools.patch(`${RUN}-b`, { spec: { natOutgoing: true } });
    expect(patched.spec).toMatchObject({ natOutgoing: true, disabled: true });
    await pools.delete(`${RUN}-b`, { resourceVersion: patched.metadata.resourceVersion! });
    expect(await codeOf(pools.get(`${RUN}-b`))).toBe(K8S_ERR.NOT_FOUND);
  });

  it('reuses one pooled connection for every verb, DELETE with a precondition included', async () => {
    // A fresh client; node reports every new client socket on this channel.
    const c = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
    let connects = 0;
    const onConnect = () => connects++;
    diagnostics.subscribe('net.client.socket', onConnect);
    try {
      const pools = c.resource(IPPOOL);
      await pools.list({ labelSelector: runSelector });
      const first = connects;
      for (let i = 0; i < 10; i++) {
        const name = `${RUN}-conn-${i}`;
        const made = await pools.create(pool(name, `10.${140 + i}.0.0/16`));
        await pools.get(name);
        const replaced = await pools.replace({ ...made, spec: { ...made.spec, disabled: true } });
        await pools.replace(made).catch((err) => expect(err).toMatchObject({ code: K8S_ERR.CONFLICT }));
        await pools.patch(name, { metadata: { annotations: { touched: 'yes' } } });
        await pools
          .delete(name, { resourceVersion: replaced.metadata.resourceVersion! })
          .catch((err) => expect(err).toMatchObject({ code: K8S_ERR.CONFLICT }));
        await pools.delete(name, { resourceVersion: (await pools.get(name)).metadata.resourceVersion! });
        await pools.get(name).catch((err) => expect(err).toMatchObject({ code: K8S_ERR.NOT_FOUND }));
        await c.listPods({ fieldSelector: 'spec.nodeName=nowhere' });
      }
      expect(first).toBeGreaterThanOrEqual(1);
      // A second connection may open when a request goes out just before the previous response is
      // fully processed; a connection per DELETE would be 20 here.
      expect(connects - first).toBeLessThanOrEqual(2);
    } finally {
      diagnostics.unsubscribe('net.client.socket', onConnect);
      await c.close();
    }
  });

  it('gives the same objects and typed errors over direct requests and through client-node', async () => {
    for (const directRequests of [true, false]) {
      const c = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath, directRequests });
      try {
        const pools = c.resource(IPPOOL);
        const name = `${RUN}-via-${directRequests ? 'direct' : 'client-node'}`;
        const made = await pools.create(pool(name, directRequests ? '10.150.0.0/16' : '10.151.0.0/16'));
        expect(made.spec).toMatchObject({ blockSize: 26, disabled: false });
        expect(await pools.get(name)).toEqual(made);
        const codeOf = (p: Promise<unknown>) =>
          p.then(
            () => 'no error',
            (e: K8sError) => e.code,
          );
        expect(await codeOf(pools.create(pool(name, '10.152.0.0/16')))).toBe(K8S_ERR.ALREADY_EXISTS);
        const replaced = await pools.replace({ ...made, spec: { ...made.spec, disabled: true } });
        expect(replaced.spec.disabled).toBe(true);
        expect(await codeOf(pools.replace(made))).toBe(K8S_ERR.CONFLICT);
        expect(await codeOf(pools.delete(name, { resourceVersion: made.metadata.resourceVersion! }))).toBe(
          K8S_ERR.CONFLICT,
        );
        await pools.delete(name, { resourceVersion: replaced.metadata.resourceVersion! });
        expect(await codeOf(pools.get(name))).toBe(K8S_ERR.NOT_FOUND);
        expect(await codeOf(pools.delete(name))).toBe(K8S_ERR.NOT_FOUND);
      } finally {
        await c.close();
      }
    }
  });

  it('refuses to send an invalid object, naming the field', async () => {
    const pools = client.resource(IPPOOL);
    await expect(pools.create(pool(`${RUN}-bad`, '100.64.0.0/99'))).rejects.toThrow(SchemaError);
    await expect(pools.create(pool(`${RUN}-bad`, '100.64.0.0/99'))).rejects.toThrow(/spec\.cidr/);
  });

  it('gets K8S_ERR_INVALID when the server rejects an object against the CRD schema', async () => {
    const body = {
      apiVersion: 'podnet.io/v1alpha1',
      kind: 'IPPool',
      metadata: { name: `${RUN}-typed`, labels: runLabel },
      spec: { cidr: '100.64.32.0/20', natOutgoing: 'yes' },
    };
    created.pools.push(`${RUN}-typed`);
    const err = await client.custom
      .createClusterCustomObject({ group: 'podnet.io', version: 'v1alpha1', plural: 'ippools', body })
      .then(() => undefined)
      .catch((e) => e);
    expect(err).toBeDefined();
    const { toK8sError } = await import('./client.js');
    expect(toK8sError(err, 'create').code).toBe(K8S_ERR.INVALID);
  });

  it('keeps BGPPeer gracefulRestartNotification through the CRD schema and rejects a non-boolean', async () => {
    const peers = client.resource(BGPPEER);
    const name = `${RUN}-nbit`;
    created.peers.push(name);
    const made = await peers.create({
      metadata: { name, labels: runLabel },
      spec: { peerIP: '10.0.0.1', asNumber: 65000, gracefulRestartNotification: true },
    });
    expect(made.spec.gracefulRestartNotification).toBe(true);
    expect((await peers.get(name)).spec.gracefulRestartNotification).toBe(true);
    const { toK8sError } = await import('./client.js');
    created.peers.push(`${RUN}-nbit-bad`);
    const err = await client.custom
      .createClusterCustomObject({
        group: 'podnet.io',
        version: 'v1alpha1',
        plural: 'bgppeers',
        body: {
          apiVersion: 'podnet.io/v1alpha1',
          kind: 'BGPPeer',
          metadata: { name: `${RUN}-nbit-bad`, labels: runLabel },
          spec: { peerIP: '10.0.0.1', asNumber: 65000, gracefulRestartNotification: 'yes' },
        },
      })
      .then(() => undefined)
      .catch((e) => e);
    const e = toK8sError(err, 'create');
    expect(e.code).toBe(K8S_ERR.INVALID);
    expect(e.message).toContain('gracefulRestartNotification');
  });

  it('serves and validates IPPool isolated and BGPConfiguration natOutgoingExclusions against the CRD schema', async () => {
    const pools = client.resource(IPPOOL);
    const p = await pools.create({
      ...pool(`${RUN}-iso`, '100.64.48.0/20'),
      spec: { cidr: '100.64.48.0/20', isolated: true },
    });
    expect(p.spec).toMatchObject({ isolated: true, natOutgoing: false });
    expect((await pools.get(`${RUN}-iso`)).spec.isolated).toBe(true);
    const configs = client.resource(BGPCONFIGURATION);
    const name = `node.${RUN}-excl`;
    const c = await configs.create({
      metadata: { name, labels: runLabel },
      spec: { natOutgoingExclusions: [{ cidr: '172.16.0.0/12' }] },
    });
    expect(c.spec.natOutgoingExclusions).toEqual([{ cidr: '172.16.0.0/12' }]);
    await configs.delete(name);
    const invalid = async (plural: string, kind: string, spec: Record<string, unknown>) => {
      const body = {
        apiVersion: 'podnet.io/v1alpha1',
        kind,
        metadata: { name: `${RUN}-bad-${plural}`, labels: runLabel },
        spec,
      };
      const { toK8sError } = await import('./client.js');
      const err = await client.custom
        .createClusterCustomObject({ group: 'podnet.io', version: 'v1alpha1', plural, body })
        .then(() => undefined)
        .catch((e) => e);
      return toK8sError(err, 'create');
    };
    created.pools.push(`${RUN}-bad-ippools`);
    const e1 = await invalid('ippools', 'IPPool', { cidr: '100.64.64.0/20', isolated: 'yes' });
    expect(e1.code).toBe(K8S_ERR.INVALID);
    expect(e1.message).toContain('spec.isolated');
    const e2 = await invalid('bgpconfigurations', 'BGPConfiguration', { natOutgoingExclusions: [{}] });
    expect(e2.code).toBe(K8S_ERR.INVALID);
    expect(e2.message).toContain('natOutgoingExclusions');
  });

  it('reports an unreachable server as K8S_ERR_UNREACHABLE', async () => {
    const kc = client.kc;
    const { KubeConfig } = await import('@kubernetes/client-node');
    const dead = new KubeConfig();
    dead.loadFromOptions({
      clusters: [{ name: 'dead', server: 'http://127.0.0.1:9', skipTLSVerify: true }],
      users: [{ name: 'u', token: 'x' }],
      contexts: [{ name: 'c', cluster: 'dead', user: 'u' }],
      currentContext: 'c',
    });
    expect(kc).toBeDefined();
    const c = new KubeClient({ kubeConfig: dead });
    await expect(c.resource(IPPOOL).get('x')).rejects.toMatchObject({ code: K8S_ERR.UNREACHABLE });
  });
});

describe('informer', () => {
  it('lists, syncs, then follows adds, updates and deletes of only the selected objects', async () => {
    const pools = client.resource(IPPOOL);
    await pools.create(pool(`${RUN}-i1`, '100.65.0.0/20', { informer: 'one' }));
    await pools.create(pool(`${RUN}-other`, '100.65.16.0/20', { informer: 'two' }));
    const inf = new Informer(client, resourceSource(client, IPPOOL), {
      labelSelector: `${runSelector},informer=one`,
    });
    const events: InformerEvent<IPPool>[] = [];
    inf.on((e) => events.push(e));
    inf.start();
    try {
      await inf.synced;
      expect(inf.hasSynced).toBe(true);
      expect(inf.list().map((p) => p.metadata.name)).toEqual([`${RUN}-i1`]);
      await pools.create(pool(`${RUN}-i2`, '100.65.32.0/20', { informer: 'one' }));
      await pools.create(pool(`${RUN}-other2`, '100.65.48.0/20', { informer: 'two' }));
      await pools.patch(`${RUN}-i1`, { spec: { disabled: true } });
      await pools.delete(`${RUN}-i2`);
      await waitFor('the delete of i2', () => events.some((e) => e.type === 'deleted'));
      await waitFor('the update of i1', () => inf.get(`${RUN}-i1`)?.spec.disabled === true);
      const seen = events.map((e) =>
        e.type === 'synced' ? 'synced' : `${e.type}:${'object' in e ? e.object.metadata.name : ''}`,
      );
      expect(seen).toEqual([
        `added:${RUN}-i1`,
        'synced',
        `added:${RUN}-i2`,
        `modified:${RUN}-i1`,
        `deleted:${RUN}-i2`,
      ]);
      expect(inf.list().map((p) => p.metadata.name)).toEqual([`${RUN}-i1`]);
    } finally {
      await inf.stop();
    }
  });

  it('resumes from its resourceVersion after the watch connection ends, without relisting', async () => {
    const pools = client.resource(IPPOOL);
    const inf = new Informer(client, resourceSource(client, IPPOOL), {
      labelSelector: `${runSelector},informer=resume`,
      watchTimeoutSeconds: 1, // the server closes every watch after a second
    });
    const added: string[] = [];
    inf.on((e) => {
      if (e.type === 'added') added.push(e.object.metadata.name);
    });
    inf.start();
    try {
      await inf.synced;
      for (let i = 0; i < 3; i++) {
        await pools.create(pool(`${RUN}-r${i}`, `100.66.${i * 16}.0/20`, { informer: 'resume' }));
        await new Promise((r) => setTimeout(r, 1300)); // across a watch reconnect
      }
      await waitFor('three adds', () => added.length === 3);
      expect(added).toEqual([`${RUN}-r0`, `${RUN}-r1`, `${RUN}-r2`]);
      expect(inf.counts.watches).toBeGreaterThanOrEqual(3);
      expect(inf.counts.lists).toBe(1);
    } finally {
      await inf.stop();
    }
  });

  /**
   * Writes objects the informer does not select, so it gets no events, only BOOKMARKs carrying newer
   * versions. The informer asks for short watches (WATCH_S): kube-apiserver 1.20 sends a bookmark
   * only 2 s before a watch's deadline (later releases also about once a minute), the embedded
   * server here every 300 ms, so on either kind a bookmark arrives within one watch.
   */
  async function bookmarkMovesVersion(c: KubeClient, tag: string) {
    const WATCH_S = 6;
    const pools = c.resource(IPPOOL);
    const inf = new Informer(c, resourceSource(c, IPPOOL), {
      labelSelector: `${runSelector},informer=bookmark-${tag}`,
      watchTimeoutSeconds: WATCH_S,
    });
    const events: string[] = [];
    inf.on((e) => events.push(e.type));
    inf.start();
    try {
      await inf.synced;
      const listed = BigInt(inf.lastResourceVersion);
      const name = `${RUN}-bm-${tag}`;
      created.pools.push(name);
      await pools.create({
        metadata: { name, labels: { ...runLabel, informer: `elsewhere-${tag}` } },
        spec: { cidr: '100.69.0.0/20' },
      });
      for (let i = 0; i < 3; i++) await pools.patch(name, { metadata: { annotations: { n: String(i) } } });
      // Bounded by a few watch lifetimes; the bookmark comes before the first one ends.
      await waitFor(
        'a bookmark past the list version',
        () => BigInt(inf.lastResourceVersion) > listed,
        4 * WATCH_S * 1000,
      );
      expect(inf.counts.bookmarks).toBeGreaterThan(0);
      expect(events).toEqual(['synced']);
      expect(inf.counts.lists).toBe(1);
      expect(inf.counts.errors).toBe(0);
    } finally {
      await inf.stop();
    }
  }

  it('moves its resourceVersion forward on BOOKMARKs while nothing it selects changes', async () => {
    await bookmarkMovesVersion(client, 'a');
  }, 60_000);

  it('moves its resourceVersion forward on a server that bookmarks only before a watch times out (kube-apiserver 1.20)', async () => {
    // Against a real cluster the test above already runs on that server as it is.
    if (!cluster.embedded) return;
    const old = await testCluster({ bookmarkMode: 'before-timeout' });
    const c = new KubeClient({ kubeconfigPath: old.kubeconfigPath });
    try {
      await installCrds(c, { crds: loadCrdFiles(CRD_DIR) });
      await bookmarkMovesVersion(c, 'b');
    } finally {
      await c.close();
      await old.close();
    }
  }, 60_000);

  it('relists when its resourceVersion is too old (410 Gone) and emits what changed', async () => {
    const pools = client.resource(IPPOOL);
    await pools.create(pool(`${RUN}-g0`, '100.67.0.0/20', { informer: 'gone' }));
    // Push the embedded server's history (30 events) past the version the informer resumes from.
    for (let i = 0; i < 35; i++)
      await pools.patch(`${RUN}-g0`, { metadata: { annotations: { n: String(i) } } });
    const inf = new Informer(client, resourceSource(client, IPPOOL), {
      labelSelector: `${runSelector},informer=gone`,
      resumeFrom: '1',
    });
    const events: string[] = [];
    inf.on((e) => events.push(e.type));
    inf.start();
    try {
      await inf.synced;
      expect(inf.counts.lists).toBe(1);
      expect(inf.list().map((p) => p.metadata.name)).toEqual([`${RUN}-g0`]);
      expect(events).toEqual(['added', 'synced']);
      await pools.create(pool(`${RUN}-g1`, '100.67.16.0/20', { informer: 'gone' }));
      await waitFor('g1 after the relist', () => inf.get(`${RUN}-g1`) !== undefined);
    } finally {
      await inf.stop();
    }
  });

  it('logs and skips an object that fails its schema, and keeps running', async () => {
    const { logger, lines } = logCapture();
    const inf = new Informer(client, resourceSource(client, IPPOOL), {
      labelSelector: `${runSelector},informer=invalid`,
      logger,
    });
    inf.start();
    try {
      await inf.synced;
      // The CRD schema only says "string": the server stores it, our zod schema refuses it.
      const body = {
        apiVersion: 'podnet.io/v1alpha1',
        kind: 'IPPool',
        metadata: { name: `${RUN}-v0`, labels: { ...runLabel, informer: 'invalid' } },
        spec: { cidr: 'not-a-cidr' },
      };
      created.pools.push(`${RUN}-v0`);
      await client.custom.createClusterCustomObject({
        group: 'podnet.io',
        version: 'v1alpha1',
        plural: 'ippools',
        body,
      });
      await client.resource(IPPOOL).create(pool(`${RUN}-v1`, '100.68.0.0/20', { informer: 'invalid' }));
      await waitFor('the valid pool', () => inf.get(`${RUN}-v1`) !== undefined);
      expect(inf.get(`${RUN}-v0`)).toBeUndefined();
      expect(inf.counts.invalid).toBe(1);
      const warn = lines.find((l) => l.msg === 'skipping invalid object');
      expect(warn).toBeDefined();
      expect(JSON.stringify(warn)).toContain('spec.cidr');
      expect(JSON.stringify(warn)).toContain('not-a-cidr');
    } finally {
      await inf.stop();
    }
  });

  it('backs off and keeps trying while the API server is unreachable, and stops for good', async () => {
    const { KubeConfig } = await import('@kubernetes/client-node');
    const dead = new KubeConfig();
    dead.loadFromOptions({
      clusters: [{ name: 'dead', server: 'http://127.0.0.1:9', skipTLSVerify: true }],
      users: [{ name: 'u', token: 'x' }],
      contexts: [{ name: 'c', cluster: 'dead', user: 'u' }],
      currentContext: 'c',
    });
    const c = new KubeClient({ kubeConfig: dead });
    const { logger, lines } = logCapture();
    const inf = new Informer(c, resourceSource(c, IPPOOL), {
      logger,
      initialBackoffMs: 20,
      maxBackoffMs: 100,
    });
    inf.start();
    await waitFor('three failed attempts', () => inf.counts.errors >= 3, 10_000);
    expect(inf.hasSynced).toBe(false);
    const warn = lines.find((l) => l.msg === 'informer error, backing off');
    expect(warn).toMatchObject({ code: K8S_ERR.UNREACHABLE });
    await inf.stop(); // ends the backoff sleep instead of waiting it out
    const errors = inf.counts.errors;
    await new Promise((r) => setTimeout(r, 300));
    expect(inf.counts.errors).toBe(errors);
  });

  it("watches only one node's pods with a spec.nodeName field selector", async () => {
    const nodeA = `${RUN}-node-a`;
    const mkPod = async (name: string, nodeName: string) => {
      created.pods.push(name);
      await client.core.createNamespacedPod({
        namespace: 'default',
        body: {
          metadata: { name, labels: runLabel },
          spec: { nodeName, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.9' }] },
        },
      });
    };
    await mkPod(`${RUN}-p1`, nodeA);
    await mkPod(`${RUN}-p2`, `${RUN}-node-b`);
    const inf = new Informer(client, coreSource(client, 'Pod'), {
      fieldSelector: `spec.nodeName=${nodeA}`,
      labelSelector: runSelector,
    });
    inf.start();
    try {
      await inf.synced;
      expect(inf.list().map((p) => p.metadata?.name)).toEqual([`${RUN}-p1`]);
      await mkPod(`${RUN}-p3`, nodeA);
      await mkPod(`${RUN}-p4`, `${RUN}-node-b`);
      await waitFor('p3', () => inf.get(`default/${RUN}-p3`) !== undefined);
      expect(inf.get(`default/${RUN}-p4`)).toBeUndefined();
      expect(inf.list()).toHaveLength(2);
    } finally {
      await inf.stop();
    }
  });
});
