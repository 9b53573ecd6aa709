// PolicySync over real HTTP (the embedded API server, or KUBECONFIG's cluster): it lists and watches
// Pods, Namespaces and NetworkPolicies cluster-wide, and a namespace label, a pod address or a
// policy change reaches the fragment without a restart, through one debounced call.
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { KubeClient } from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PolicyFragment, PolicySync } from './policy-sync.js';

const RUN = `np${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const X = `${RUN}-x`;
const Y = `${RUN}-y`;
let cluster: TestCluster;
let client: KubeClient;

const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

beforeAll(async () => {
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  for (const name of [X, Y]) await client.core.createNamespace({ body: { metadata: { name } } });
});

afterAll(async () => {
  for (const name of [X, Y]) await client?.core.deleteNamespace({ name }).catch(() => {});
  await cluster?.close();
});

async function pod(
  namespace: string,
  name: string,
  node: string,
  ip: string,
  labels: Record<string, string>,
) {
  await client.core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name, labels },
      spec: { nodeName: node, containers: [{ name: 'c', image: 'pause' }] },
    },
  });
  await setIp(namespace, name, ip);
}

async function setIp(namespace: string, name: string, ip: string) {
  const p = await client.core.readNamespacedPod({ namespace, name });
  p.status = { ...p.status, phase: 'Running', podIP: ip, podIPs: [{ ip }] };
  await client.core.replaceNamespacedPodStatus({ namespace, name, body: p });
}

const peers = (f: PolicyFragment) =>
  f.sets.filter((s) => !s.name.startsWith('np-node')).flatMap((s) => s.elements ?? []);

async function until(what: string, ok: () => boolean) {
  for (let i = 0; i < 400; i++) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('PolicySync (real API server)', () => {
  it('follows namespace labels, pod addresses and policies live, with debounced calls', async () => {
    await pod(X, 'a', `${RUN}-n1`, '10.77.1.1', { pod: 'a' });
    await pod(Y, 'b', `${RUN}-n2`, '10.77.2.1', { pod: 'b' });
    let calls = 0;
    const sync = new PolicySync(client, {
      node: `${RUN}-n1`,
      log: pino({ level: 'silent' }),
      onChange: () => calls++,
      debounceMs: 10,
      maxDelayMs: 100,
    });
    sync.start();
    try {
      await until('synced', () => sync.synced());
      await until('first call', () => calls > 0);
      expect(sync.fragment([]).chains.filter((c) => c.name.startsWith('np-in-'))).toEqual([]);

      await client.custom.createNamespacedCustomObject({
        group: 'networking.k8s.io',
        version: 'v1',
        plural: 'networkpolicies',
        namespace: X,
        body: {
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { name: 'from-blue' },
          spec: {
            podSelector: { matchLabels: { pod: 'a' } },
            ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }],
          },
        },
      });
      await until('pod a isolated', () => sync.fragment([]).chains.some((c) => c.name.startsWith('np-in-')));
      expect(peers(sync.fragment([]))).toEqual([]);

      let before = calls;
      await client.core.patchNamespace({ name: Y, body: { metadata: { labels: { team: 'blue' } } } }, merge);
      await until('namespace label applied', () => peers(sync.fragment([])).includes('10.77.2.1'));
      expect(calls).toBeGreaterThan(before);

      before = calls;
      await setIp(Y, 'b', '10.77.2.9');
      await until('new pod address applied', () => peers(sync.fragment([])).includes('10.77.2.9'));
      expect(peers(sync.fragment([]))).not.toContain('10.77.2.1');
      expect(calls).toBeGreaterThan(before);

      before = calls;
      await client.core.patchNamespacedPod(
        { namespace: Y, name: 'b', body: { metadata: { labels: { pod: 'b2' } } } },
        merge,
      );
      await until('pod label change seen', () => sync.pods.get(`${Y}/b`)?.labels.pod === 'b2');
      await until('and called', () => calls > before);

      await client.custom.deleteNamespacedCustomObject({
        group: 'networking.k8s.io',
        version: 'v1',
        plural: 'networkpolicies',
        namespace: X,
        name: 'from-blue',
      });
      await until('policy gone', () => !sync.fragment([]).chains.some((c) => c.name.startsWith('np-in-')));
    } finally {
      await sync.stop();
    }
  });
});
