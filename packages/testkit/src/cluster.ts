// A Kubernetes API for tests: the real cluster named by KUBECONFIG when it is set, otherwise the
// embedded @podnet/apiserver started in this process on an ephemeral port. Suites written against
// this run unchanged against a real kube-apiserver.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ApiServerOptions, startApiServer } from '@podnet/apiserver';

export interface TestCluster {
  /** The kubeconfig file to load (KubeConfig.loadFromFile). */
  kubeconfigPath: string;
  /** True when this is the embedded server, false for the cluster named by KUBECONFIG. */
  embedded: boolean;
  /** Stops the embedded server and removes its files; a no-op for a real cluster. */
  close(): Promise<void>;
}

/**
 * Options apply only to the embedded server (a real cluster is used as it is), e.g. a small
 * `historySize` to provoke 410 Gone. Set `PODNET_TEST_EMBEDDED=1` to ignore KUBECONFIG.
 */
export async function testCluster(
  opts: Omit<ApiServerOptions, 'kubeconfigPath' | 'port' | 'host'> = {},
): Promise<TestCluster> {
  const external = process.env.KUBECONFIG;
  if (external && process.env.PODNET_TEST_EMBEDDED !== '1') {
    const first = external.split(':')[0]!;
    return { kubeconfigPath: first, embedded: false, close: async () => {} };
  }
  const dir = await mkdtemp(join(tmpdir(), 'podnet-test-cluster-'));
  const kubeconfigPath = join(dir, 'kubeconfig');
  const server = await startApiServer({ ...opts, port: 0, host: '127.0.0.1', kubeconfigPath });
  return {
    kubeconfigPath,
    embedded: true,
    close: async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
