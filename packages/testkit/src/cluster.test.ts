import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { testCluster } from './cluster.js';

describe('testCluster', () => {
  it('gives a kubeconfig that client-node can use, and cleans up on close', async () => {
    const cluster = await testCluster();
    try {
      expect(cluster.embedded).toBe(!process.env.KUBECONFIG);
      const kc = new KubeConfig();
      kc.loadFromFile(cluster.kubeconfigPath);
      const namespaces = await kc.makeApiClient(CoreV1Api).listNamespace();
      expect(namespaces.items.map((n) => n.metadata?.name)).toContain('default');
    } finally {
      await cluster.close();
    }
  });
});
