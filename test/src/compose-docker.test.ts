// compose.yaml under a real Docker engine gives the lab `npm run lab` gives: Debian's dockerd in a
// network namespace of its own (scripts/docker-tier.sh), the images built from deploy/docker/ over
// locally made base images, `docker-compose up` on the unchanged compose.yaml, pods made through the
// CNI plugin in the node containers, BGP Established, 36/36 IPv4 and IPv6 reachability (client → pod
// through the ToR), kubectl on the Docker host against the API server over HTTPS, the frr profile, and `docker-compose down -v` leaving nothing behind.
// Skipped, with the reason in its name, where dockerd cannot start (not root, no docker.io,
// docker-compose or mmdebstrap, or dockerd fails).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DockerLab, type PeerRow, parseCompose, summary, validateComposeSpec } from '@podnet/lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const composeFile = join(repo, 'compose.yaml');
const tier = join(repo, 'scripts', 'docker-tier.sh');
const project = `pndtest${process.pid}`;
const tierEnv = { ...process.env, PODNET_DOCKER_NS: 'pnd-test' };
// A current kubectl, extracted by scripts/fetch-tools.sh.
const kubectlBin = join(repo, 'node_modules/.cache/kubectl-trixie/kubectl');

/** Starts dockerd (synchronously, at collection) and returns DOCKER_HOST, or why it cannot. */
function startDocker(): { host?: string; skip?: string } {
  if (process.getuid?.() !== 0) return { skip: 'not root' };
  const dirs = (process.env.PATH ?? '').split(':');
  for (const bin of ['dockerd', 'docker-compose', 'mmdebstrap', 'nsenter']) {
    if (!dirs.some((d) => d && existsSync(join(d, bin))))
      return {
        skip: `${bin} is not installed (docker.io, docker-compose, mmdebstrap: scripts/debian-packages.txt)`,
      };
  }
  if (!existsSync('/usr/bin/docker')) return { skip: "/usr/bin/docker (docker.io's CLI) is not installed" };
  const r = spawnSync(tier, ['start'], { env: tierEnv, encoding: 'utf8', timeout: 90_000 });
  const host = /DOCKER_HOST=(\S+)/.exec(r.stdout ?? '')?.[1];
  if (r.status !== 0 || !host)
    return {
      skip: `dockerd did not start: ${(r.stderr || String(r.error)).trim().split('\n').slice(-3).join(' | ')}`,
    };
  return { host };
}

describe('compose.yaml', () => {
  const doc = parse(readFileSync(composeFile, 'utf8'), { merge: true }) as Record<string, unknown>;

  it('is valid against the Compose Specification schema (what docker compose v2 checks)', () => {
    expect(validateComposeSpec(doc)).toEqual([]);
  });

  it("sets each container's LAB_GATEWAY_V4/V6 to the service's x-podnet.gateway", () => {
    const project = parseCompose(readFileSync(composeFile, 'utf8'));
    const withGateway = project.services.filter((s) => s.gateway.ipv4 || s.gateway.ipv6);
    expect(withGateway.map((s) => s.name)).toContain('node-a');
    for (const s of withGateway) {
      expect({ name: s.name, v4: s.environment.LAB_GATEWAY_V4, v6: s.environment.LAB_GATEWAY_V6 }).toEqual({
        name: s.name,
        v4: s.gateway.ipv4,
        v6: s.gateway.ipv6,
      });
    }
  });
});

const docker = startDocker();
const env = { ...process.env, DOCKER_HOST: docker.host ?? '', PODNET_DOCKER: '/usr/bin/docker' };
const established = (rows: PeerRow[]) => rows.filter((r) => r.state === 'up' || r.state === 'Established');

describe.skipIf(docker.skip !== undefined)(
  `compose.yaml under Docker${docker.skip ? ` (skipped: ${docker.skip})` : ''}`,
  () => {
    let lab: DockerLab;
    const log = (line: string) => console.log(`[compose-docker] ${line}`);
    const dockerJson = (args: string[]) =>
      execFileSync('/usr/bin/docker', args, { env, encoding: 'utf8' }).trim().split('\n').filter(Boolean);

    beforeAll(async () => {
      const t0 = Date.now();
      execFileSync(tier, ['images'], {
        env: { ...tierEnv, ...env },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      log(`images ready in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      lab = new DockerLab({ composeFile, project, env, noBuild: true, log });
      await lab.up();
    }, 1_800_000);

    afterAll(async () => {
      if (lab) await lab.down().catch(() => {});
      spawnSync(tier, ['stop'], { env: tierEnv, stdio: 'inherit' });
    }, 240_000);

    it('establishes the BGP sessions between the ToR and every node (IPv4 and IPv6)', async () => {
      const rows = await lab.waitForSessions();
      expect(
        established(rows)
          .map((r) => r.peer)
          .sort(),
      ).toEqual(['node_a_v4', 'node_a_v6', 'node_b_v4', 'node_b_v6', 'node_c_v4', 'node_c_v6']);
    }, 600_000);

    it('reaches every pod from every pod and from the client, IPv4 and IPv6: 36/36 each', async () => {
      expect(lab.pods.length).toBe(6);
      for (const family of [4, 6] as const) {
        const s = summary(await lab.waitForReachability(family));
        expect({ family, ok: s.ok, total: s.total, failed: s.failed }).toEqual({
          family,
          ok: 36,
          total: 36,
          failed: [],
        });
      }
    }, 600_000);

    it("routes the client to the pods through the ToR (its default route, not Docker's)", async () => {
      const pod = lab.pods[0];
      for (const [ip, via] of [
        [pod?.ipv4, '10.89.0.254'],
        [pod?.ipv6, 'fd00:89::fe'],
      ] as const) {
        const r = await lab.exec('client', ['ip', 'route', 'get', ip ?? '']);
        expect(r.stdout).toContain(`via ${via}`);
      }
    });

    it("serves the API over HTTPS: kubectl on the Docker host lists the lab's pods with the kubeconfig the lab gives", async (ctx) => {
      // The Docker host is dockerd's network namespace here (scripts/docker-tier.sh): kubectl runs
      // there, against the API server's fabric address, checking its certificate with the CA.
      if (!existsSync(kubectlBin)) ctx.skip(`${kubectlBin} is missing: run scripts/fetch-tools.sh`);
      const text = await lab.hostKubeconfig();
      expect(text).toMatch(/server: "https:\/\/10\.88\.0\.2:6443"/);
      expect(text).toContain('certificate-authority-data');
      expect(text).not.toContain('insecure-skip-tls-verify');
      const dir = mkdtempSync(join(tmpdir(), 'pnd-kubectl-'));
      try {
        const kc = join(dir, 'kubeconfig');
        writeFileSync(kc, text, { mode: 0o600 });
        const r = spawnSync(
          'nsenter',
          [
            `--net=/var/run/netns/${tierEnv.PODNET_DOCKER_NS}`,
            kubectlBin,
            '--request-timeout',
            '20s',
            'get',
            'pods',
            '-A',
            '-o',
            'json',
          ],
          {
            env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: kc },
            encoding: 'utf8',
            timeout: 60_000,
          },
        );
        log(`kubectl get pods -A: exit ${r.status} ${r.stderr.trim()}`);
        expect(r.status, r.stderr).toBe(0);
        const names = (JSON.parse(r.stdout) as { items: { metadata: { name: string } }[] }).items
          .map((p) => p.metadata.name)
          .sort();
        expect(names).toEqual(lab.pods.map((p) => p.name).sort());
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('runs the CNI launcher in the agent image where it is installed', async () => {
      const r = await lab.exec('node-a', ['/app/packages/cni/dist/podnet-cni'], {
        env: { CNI_COMMAND: 'VERSION' },
        input: '',
      });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).supportedVersions).toContain('1.0.0');
    });

    it('adds the frr profile: tor-frr peers with every node and learns the pod blocks', async () => {
      const frr = new DockerLab({ composeFile, project, env, noBuild: true, profiles: ['frr'], log });
      await frr.up();
      const rows = (await frr.waitForSessions()).filter((r) => r.router === 'tor-frr');
      expect(established(rows).length).toBe(6);
      expect(rows.some((r) => /^[1-9]\d* prefixes in/.test(r.info))).toBe(true);
      const s = summary(await frr.waitForReachability(4));
      expect(s.ok).toBe(36);
    }, 600_000);

    it('leaves no container, network or volume after docker-compose down -v', async () => {
      await lab.down();
      const filter = ['--filter', `label=com.docker.compose.project=${project}`];
      expect(dockerJson(['ps', '-a', '-q', ...filter])).toEqual([]);
      expect(dockerJson(['network', 'ls', '-q', ...filter])).toEqual([]);
      expect(dockerJson(['volume', 'ls', '-q', ...filter])).toEqual([]);
    }, 600_000);
  },
);
