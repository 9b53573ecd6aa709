// The agent image of the real-cluster mode, built from the repository as users build it
// (deploy/docker/Dockerfile) by the Docker tier's offline builder (scripts/docker-tier.sh: a
// dockerd of its own in a network namespace, local base images, this checkout's built tree as the
// npm stage), written with `docker save` and imported into every node's containerd with
// `ctr images import`. The builder's dockerd runs only for the build and is stopped by its pid.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { LabError, LabErrorCode } from '../errors.js';
import { exec } from '../sh.js';

/** The builder's Docker data root (images and build cache kept between runs). */
export const DEFAULT_BUILDER_ROOT = '/var/lib/podnet-cluster-docker';

/** The image deploy/daemonset.yaml's agent container names (what `kubectl apply -k deploy/` runs). */
export function daemonSetImage(repoRoot: string): string {
  const file = join(repoRoot, 'deploy', 'daemonset.yaml');
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const ds = doc.toJS() as {
      kind?: string;
      spec?: { template?: { spec?: { containers?: { name: string; image?: string }[] } } };
    } | null;
    if (ds?.kind !== 'DaemonSet') continue;
    const image = ds.spec?.template?.spec?.containers?.find((c) => c.name === 'agent')?.image;
    if (image) return image;
  }
  throw new LabError(LabErrorCode.composeInvalid, `${file}: no DaemonSet with an agent container image`);
}

/**
 * Builds `ref` from deploy/docker/Dockerfile and writes it to `out` (docker-archive). Serialised by
 * a lock on the builder's data root, so two labs never run two dockerds on one root.
 */
export async function buildAgentArchive(o: {
  repoRoot: string;
  ref: string;
  out: string;
  /** Network namespace of the builder's dockerd (removed again by `docker-tier.sh stop`). */
  ns: string;
  root?: string;
  timeoutMs?: number;
}): Promise<void> {
  const tier = join(o.repoRoot, 'scripts', 'docker-tier.sh');
  const root = o.root ?? process.env.PODNET_CLUSTER_DOCKER_ROOT ?? DEFAULT_BUILDER_ROOT;
  mkdirSync(root, { recursive: true });
  // start prints DOCKER_HOST=…; stop runs on every exit (it ends that dockerd by its pidfile's pid).
  const script = [
    'set -e',
    `trap '"$0" stop >/dev/null 2>&1 || true' EXIT`,
    'eval "$("$0" start)"',
    'export DOCKER_HOST',
    '"$0" agent-archive "$1" "$2"',
  ].join('\n');
  const r = await exec('flock', [`${root}.lock`, 'sh', '-c', script, tier, o.ref, o.out], {
    env: { ...process.env, PODNET_DOCKER_NS: o.ns, PODNET_DOCKER_ROOT: root },
    timeoutMs: o.timeoutMs ?? 900_000,
  });
  if (r.code !== 0 || !existsSync(o.out))
    throw new LabError(
      LabErrorCode.command,
      `building the agent image ${o.ref} (scripts/docker-tier.sh agent-archive) exited ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).slice(-2000)}`,
    );
}

/** Stops a builder dockerd a killed lab left behind (by the pid in its pidfile; idempotent). */
export async function stopBuilder(repoRoot: string, ns: string): Promise<void> {
  if (!existsSync(`/run/podnet-docker-${ns}`) && !existsSync(`/var/run/netns/${ns}`)) return;
  await exec(join(repoRoot, 'scripts', 'docker-tier.sh'), ['stop'], {
    env: { ...process.env, PODNET_DOCKER_NS: ns },
    timeoutMs: 60_000,
  });
}
