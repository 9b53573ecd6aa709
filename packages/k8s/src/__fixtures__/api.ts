// What the API tests share: a test API server (embedded, or KUBECONFIG's cluster) with podnet's
// CRDs from deploy/crds, a per-run label for what a file creates, a bounded wait on a condition
// the informers update, and a logger whose lines the test reads.
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { type TestCluster, testCluster } from '@podnet/testkit';
import pino from 'pino';
import { KubeClient } from '../client.js';
import { installCrds, loadCrdFiles } from '../install.js';

export const CRD_DIR = fileURLToPath(new URL('../../../../deploy/crds', import.meta.url));

/** The test API server and a client for it, with podnet's CRDs installed. */
export async function apiWithCrds(
  opts: Parameters<typeof testCluster>[0] = {},
): Promise<{ cluster: TestCluster; client: KubeClient }> {
  const cluster = await testCluster(opts);
  const client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  await installCrds(client, { crds: loadCrdFiles(CRD_DIR) });
  return { cluster, client };
}

/** A name prefix unique to this run (`tag` + pid + time) and its `podnet.io/test-run` label and selector. */
export function testRun(tag: string): { run: string; labels: Record<string, string>; selector: string } {
  const run = `${tag}${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
  return { run, labels: { 'podnet.io/test-run': run }, selector: `podnet.io/test-run=${run}` };
}

/** Waits until `check()` holds, looking every 25 ms, for at most `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A debug-level logger and the JSON lines it wrote. */
export function logCapture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}
