// `npm run lab -- --cluster real`: builds (or finds) the Kubernetes binaries, brings the real
// cluster up, deploys the test pods and prints them with the reachability of every pair.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { LabError, LabErrorCode } from '../errors.js';
import { table } from '../report.js';
import { cachedKubeBinDir, RealCluster, type RealClusterConfig } from './real.js';

export async function realClusterUp(config: RealClusterConfig): Promise<number> {
  const say = config.log ?? (() => {});
  let binDir = cachedKubeBinDir(config.repoRoot);
  if (!binDir) {
    say(
      'Kubernetes binaries not cached: building them once (scripts/kube-build.sh; tens of minutes on 2 cores)',
    );
    const r = spawnSync(join(config.repoRoot, 'scripts', 'kube-build.sh'), [], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    binDir = cachedKubeBinDir(config.repoRoot);
    if (r.status !== 0 || !binDir)
      throw new LabError(LabErrorCode.missingBuild, `scripts/kube-build.sh failed (exit ${r.status})`);
  }
  say(`Kubernetes binaries: ${binDir}`);
  const cluster = new RealCluster({ ...config, kubeBinDir: binDir });
  try {
    await cluster.up();
  } catch (err) {
    say(
      'up failed; what came up is left for inspection (logs in <state dir>/logs). Remove it with: npm run lab -- down',
    );
    throw err;
  }
  const perNode = cluster.lab.project.settings.podsPerNode;
  const replicas = perNode * cluster.lab.nodes.length;
  if (replicas === 0) return 0;
  await cluster.deployTestPods(replicas);
  const pods = await cluster.waitForPods('app=podnet-lab-test', replicas);
  say(`✓ ${pods.length} test pods Running and Ready (Deployment podnet-lab-test, spread by the scheduler)`);
  console.log(
    `\n${table(
      ['pod', 'node', 'status.podIP', 'podnet.io/podIP'],
      pods.map((p) => [p.name, p.node, p.ip, p.annotatedIp ?? '-']),
    )}`,
  );
  const bad = await cluster.unreachable(pods);
  const total =
    pods.length * (pods.length - 1) +
    pods.length * cluster.lab.plan.services.filter((s) => s.role === 'client').length;
  console.log(`\nreachability IPv4 (pod ↔ pod, client → pod via the ToR): ${total - bad.length}/${total} ok`);
  for (const b of bad) console.log(`  unreachable: ${b}`);
  say(`real cluster is up (state in ${config.stateDir}). Remove it with: npm run lab -- down`);
  return bad.length === 0 ? 0 : 1;
}
