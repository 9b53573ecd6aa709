// Applies deploy/ (the kustomize base and the examples) to the embedded API server (or the cluster
// KUBECONFIG names) over HTTP, as `kubectl apply` would: CRDs first, then the objects the server
// serves. The kinds listed below are not applied here: RBAC, ServiceAccounts, ConfigMaps and the
// DaemonSet go through kubectl itself in deploy.kubectl.test.ts, the admission policy (which the
// embedded server does not serve) through deploy.admission.test.ts, and all of them through the
// Kubernetes schemas in deploy.test.ts; the list is explicit so nothing is skipped silently.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeClient } from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const DEPLOY = join(dirname(fileURLToPath(import.meta.url)), '../../../deploy');
const NOT_APPLIED_HERE = new Set([
  'ServiceAccount',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  'ConfigMap',
  'DaemonSet',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
]);

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec?: Record<string, unknown>;
  [k: string]: unknown;
}

function load(dir: string): { file: string; obj: Obj }[] {
  return readdirSync(dir)
    .sort()
    .flatMap((f) => {
      const p = join(dir, f);
      // deploy/observability: Prometheus rules and a Grafana dashboard, not Kubernetes objects.
      if (statSync(p).isDirectory()) return f === 'observability' ? [] : load(p);
      if (!/\.ya?ml$/.test(f) || f === 'kustomization.yaml') return [];
      return parseAllDocuments(readFileSync(p, 'utf8'))
        .map((d) => d.toJS() as Obj)
        .filter(Boolean)
        .map((obj) => ({ file: relative(DEPLOY, p), obj }));
    });
}

let cluster: TestCluster;
let client: KubeClient;
const all = load(DEPLOY);
const plurals = new Map<string, string>();

async function apply(o: Obj): Promise<unknown> {
  const create = async () => {
    switch (o.kind) {
      case 'CustomResourceDefinition':
        return client.extensions.createCustomResourceDefinition({ body: o as never });
      case 'Namespace':
        return client.core.createNamespace({ body: o as never });
      case 'Secret':
        return client.core.createNamespacedSecret({
          namespace: o.metadata.namespace ?? 'default',
          body: o as never,
        });
      default: {
        const [group, version] = o.apiVersion.split('/');
        const plural = plurals.get(`${group}/${o.kind}`);
        if (!plural) throw new Error(`no CRD in deploy/crds defines ${o.apiVersion} ${o.kind}`);
        return client.custom.createClusterCustomObject({ group: group!, version: version!, plural, body: o });
      }
    }
  };
  try {
    return await create();
  } catch (err) {
    if ((err as { code?: number }).code !== 409) throw err;
    // Exists (an example overriding the base's default): replace it, as kubectl apply would.
    const [group, version] = o.apiVersion.split('/');
    const plural = plurals.get(`${group}/${o.kind}`)!;
    const cur = (await client.custom.getClusterCustomObject({
      group: group!,
      version: version!,
      plural,
      name: o.metadata.name,
    })) as Obj;
    return client.custom.replaceClusterCustomObject({
      group: group!,
      version: version!,
      plural,
      name: o.metadata.name,
      body: { ...o, metadata: { ...o.metadata, resourceVersion: cur.metadata.resourceVersion } },
    });
  }
}

beforeAll(async () => {
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
}, 60_000);
afterAll(() => cluster?.close());

describe('deploy/ applied to an API server', () => {
  it('every kind is either applied here or known to be validated by schema only', () => {
    for (const { file, obj } of all) {
      const applied =
        ['CustomResourceDefinition', 'Namespace', 'Secret'].includes(obj.kind) ||
        obj.apiVersion.startsWith('podnet.io/');
      expect(applied || NOT_APPLIED_HERE.has(obj.kind), `${file}: ${obj.kind}`).toBe(true);
    }
  });

  it('accepts the CRDs, then every podnet object, Namespace and Secret, and serves them back', async () => {
    const crds = all.filter((d) => d.obj.kind === 'CustomResourceDefinition');
    expect(crds.length).toBe(9);
    for (const { obj } of crds) {
      await apply(obj);
      const spec = obj.spec as { group: string; names: { kind: string; plural: string } };
      plurals.set(`${spec.group}/${spec.names.kind}`, spec.names.plural);
    }
    const order = (o: Obj) => (o.kind === 'Namespace' ? 0 : o.kind === 'Secret' ? 1 : 2);
    const rest = all
      .filter((d) => d.obj.kind !== 'CustomResourceDefinition' && !NOT_APPLIED_HERE.has(d.obj.kind))
      .sort((a, b) => order(a.obj) - order(b.obj));
    const applied: string[] = [];
    for (const { file, obj } of rest) {
      try {
        await apply(obj);
      } catch (err) {
        throw new Error(
          `${file}: ${obj.kind}/${obj.metadata.name} rejected: ${(err as { body?: unknown }).body ?? err}`,
        );
      }
      applied.push(`${obj.kind}/${obj.metadata.name}`);
    }
    expect(applied).toEqual(
      expect.arrayContaining([
        'Namespace/podnet-system',
        'IPPool/default-ipv4',
        'BGPConfiguration/default',
        'BGPPeer/tor-r1',
        'LoadBalancerPool/public',
        'LoadBalancerPool/edge-reserved',
      ]),
    );
    const pool = (await client.custom.getClusterCustomObject({
      group: 'podnet.io',
      version: 'v1alpha1',
      plural: 'ippools',
      name: 'default-ipv4',
    })) as Obj;
    expect(pool.spec).toMatchObject({ cidr: '10.244.0.0/16', blockSize: 26 });
    const peer = (await client.custom.getClusterCustomObject({
      group: 'podnet.io',
      version: 'v1alpha1',
      plural: 'bgppeers',
      name: 'tor-r1',
    })) as Obj;
    expect(peer.spec).toMatchObject({ peerIP: '10.0.0.1', asNumber: 65000, nodeSelector: 'rack=r1' });
  });

  it('rejects an object that breaks its CRD schema (the check can fail)', async () => {
    const err = await apply({
      apiVersion: 'podnet.io/v1alpha1',
      kind: 'IPPool',
      metadata: { name: 'broken' },
      spec: { cidr: '10.1.0.0/16', blockSize: 'big' },
    }).then(
      () => undefined,
      (e: { code?: number }) => e,
    );
    expect(err?.code, 'the API server answers 422 Invalid').toBe(422);
  });
});
