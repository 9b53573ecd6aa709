// `podnetctl policy NAMESPACE/POD` against an API server over real HTTP (the embedded one, or the
// cluster named by KUBECONFIG): the policies selecting the pod and its effective allow list.
import { KubeClient } from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCtl } from './cli-main.js';

let cluster: TestCluster;

async function ctl(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await runCtl([...argv, '--kubeconfig', cluster.kubeconfigPath], {
    env: {},
    stdout: (s) => {
      out += s;
    },
    stderr: (s) => {
      err += s;
    },
  });
  return { code, out, err };
}

beforeAll(async () => {
  cluster = await testCluster();
  const client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  const { core, custom } = client;
  for (const ns of ['ctl-x', 'ctl-y'])
    await core.createNamespace({ body: { metadata: { name: ns, labels: { team: ns.slice(4) } } } });
  const pods: [string, string, string, number][] = [
    ['ctl-x', 'a', '10.0.1.1', 8080],
    ['ctl-y', 'b', '10.0.2.2', 9090],
  ];
  for (const [namespace, name, ip, web] of pods) {
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name, labels: { pod: name } },
        spec: {
          nodeName: 'n1',
          containers: [{ name: 'c', image: 'x', ports: [{ name: 'web', containerPort: web }] }],
        },
      },
    });
    const created = await core.readNamespacedPod({ namespace, name });
    await core.replaceNamespacedPodStatus({
      namespace,
      name,
      body: { ...created, status: { ...created.status, podIP: ip, podIPs: [{ ip }] } },
    });
  }
  await custom.createNamespacedCustomObject({
    group: 'networking.k8s.io',
    version: 'v1',
    namespace: 'ctl-x',
    plural: 'networkpolicies',
    body: {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'from-y' },
      spec: {
        podSelector: {},
        ingress: [
          { from: [{ namespaceSelector: { matchLabels: { team: 'y' } } }], ports: [{ port: 'web' }] },
        ],
      },
    },
  });
  await client.close();
});
afterAll(() => cluster?.close());

describe('podnetctl policy', () => {
  it('lists the selecting policies and the allow list, named ports resolved on the pod', async () => {
    const r = await ctl('policy', 'ctl-x/a', '-o', 'json');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({
      pod: 'ctl-x/a',
      node: 'n1',
      policies: ['ctl-x/from-y'],
      ingressIsolated: true,
      egressIsolated: false,
      allow: [
        {
          direction: 'ingress',
          policy: 'ctl-x/from-y',
          rule: 0,
          peers: '10.0.2.2',
          ports: 'TCP/8080 (web=TCP/8080)',
        },
      ],
    });
    const table = await ctl('policy', 'ctl-x/a');
    expect(table.out).toContain('Ingress: isolated: only the rows below');
    expect(table.out).toContain('Egress: not isolated: everything allowed');
    expect(table.out).toMatch(/ingress\s+ctl-x\/from-y\s+0\s+10\.0\.2\.2\s+TCP\/8080/);
  });

  it('says when no policy selects the pod, and refuses a pod it cannot find', async () => {
    const r = await ctl('policy', 'ctl-y/b');
    expect(r.out).toContain('Selected by: no NetworkPolicy');
    const missing = await ctl('policy', 'ctl-y/nope');
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('pod ctl-y/nope not found');
    const bad = await ctl('policy', 'just-a-name');
    expect(bad.code).toBe(2);
  });
});
