// ServiceSync over real HTTP against a Kubernetes API server (the embedded one by default, or the
// cluster KUBECONFIG names): its snapshot hands out the same arrays until a Service or an
// EndpointSlice changes, and a new array for the list that changed only.
import { KubeClient } from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceSync } from './service-sync.js';

const NS = `ss${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
let cluster: TestCluster;
let client: KubeClient;
let sync: ServiceSync | undefined;

const until = async (what: string, f: () => boolean) => {
  for (let i = 0; i < 600 && !f(); i++) await new Promise((r) => setTimeout(r, 50));
  if (!f()) throw new Error(`timed out waiting for ${what}`);
};

beforeAll(async () => {
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  await client.core.createNamespace({ body: { metadata: { name: NS } } });
});

afterAll(async () => {
  await sync?.stop();
  await client.core.deleteNamespace({ name: NS }).catch(() => {});
  await cluster?.close();
});

describe('ServiceSync snapshot', () => {
  it('is the same arrays until a list changes, then a new array for that list only', async () => {
    sync = new ServiceSync(client, { log: pino({ level: 'silent' }) });
    let changes = 0;
    sync.start(() => changes++);
    await until('synced', () => sync!.synced());
    const a = sync.snapshot();
    expect(sync.snapshot().services).toBe(a.services);
    expect(sync.snapshot().slices).toBe(a.slices);
    const seen = changes;
    await client.core.createNamespacedService({
      namespace: NS,
      body: {
        metadata: { name: 'web' },
        spec: { type: 'ClusterIP', ports: [{ port: 80, protocol: 'TCP' }] },
      },
    });
    await until('the Service', () =>
      sync!.snapshot().services.some((s) => s.namespace === NS && s.name === 'web'),
    );
    expect(changes).toBeGreaterThan(seen);
    const b = sync.snapshot();
    expect(b.services).not.toBe(a.services);
    expect(b.slices).toBe(a.slices);
    expect(sync.snapshot().services).toBe(b.services);
  });
});
