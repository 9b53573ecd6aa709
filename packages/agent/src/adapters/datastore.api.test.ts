// The agent's datastore adapter over real HTTP (the embedded API server, or KUBECONFIG's cluster).
import { fileURLToPath } from 'node:url';
import { IPPOOL, installCrds, KubeClient, loadCrdFiles } from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeDatastore } from './datastore.js';

const CRD_DIR = fileURLToPath(new URL('../../../../deploy/crds', import.meta.url));
const RUN = `ds${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
let cluster: TestCluster;
let client: KubeClient;

beforeAll(async () => {
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  await installCrds(client, { crds: loadCrdFiles(CRD_DIR) });
});

afterAll(async () => {
  for (const n of [`${RUN}-a`, `${RUN}-b`])
    await client
      ?.resource(IPPOOL)
      .delete(n)
      .catch(() => {});
  await cluster?.close();
});

describe('KubeDatastore', () => {
  it('gives the agent no pool that IPAM set aside for overlapping an older one', async () => {
    await client.resource(IPPOOL).create({ metadata: { name: `${RUN}-a` }, spec: { cidr: '100.90.0.0/16' } });
    // Newer (and after it by name, should both share a creation second), inside it, not exported.
    await client.resource(IPPOOL).create({
      metadata: { name: `${RUN}-b` },
      spec: { cidr: '100.90.128.0/17', disabled: true, disableBGPExport: true },
    });
    const ds = new KubeDatastore(client, {
      nodeName: `${RUN}-n`,
      namespace: 'default',
      logger: pino({ level: 'silent' }),
    });
    await ds.start(() => {});
    try {
      for (let i = 0; i < 600 && !ds.synced(); i++) await new Promise((r) => setTimeout(r, 25));
      expect(ds.synced()).toBe(true);
      const ours = ds.snapshot().pools.filter((p) => p.name.startsWith(RUN));
      expect(ours.map((p) => [p.name, p.disableBGPExport])).toEqual([[`${RUN}-a`, false]]);
    } finally {
      await ds.stop();
    }
  }, 30_000);
});
