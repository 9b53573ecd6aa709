// `kubectl apply -k deploy/` on an empty API server, with the kubectl on PATH and with Debian 12's
// kubectl 1.20 (kustomize v2.0.3), as an operator runs it: one pass creates the CRDs, the
// namespace, RBAC, the ConfigMap and the DaemonSet; the default IPPool and BGPConfiguration follow
// in a second apply (kubectl maps every object of one apply before creating any, so custom
// resources of CRDs that do not exist yet are refused: the last test shows it). Each kubectl
// missing here is skipped, saying how to get it.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubernetesObjectApi } from '@kubernetes/client-node';
import { KubeClient } from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const DEPLOY = join(REPO, 'deploy');

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}
function versionOf(bin: string): string {
  const r = spawnSync(bin, ['version', '--client', '-o', 'json'], { encoding: 'utf8', timeout: 20_000 });
  try {
    return (JSON.parse(r.stdout) as { clientVersion: { gitVersion: string } }).clientVersion.gitVersion;
  } catch {
    return 'unknown';
  }
}

const debian = join(REPO, 'node_modules/.cache/kubectl-debian/kubectl');
const onPath = which('kubectl');
const kubectls: { label: string; bin: string | undefined; missing: string }[] = [
  {
    label: 'the kubectl on PATH',
    bin: onPath,
    missing: 'no kubectl on PATH (Debian: apt-get install kubernetes-client, or scripts/fetch-kubectl.sh)',
  },
  {
    label: "Debian 12's kubectl 1.20",
    bin: existsSync(debian) ? debian : undefined,
    missing: `${debian} is missing: run scripts/fetch-kubectl.sh (extracts Debian's kubernetes-client)`,
  },
];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let cluster: TestCluster | undefined;
let home: string | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
  if (home) rmSync(home, { recursive: true, force: true });
  home = undefined;
});

/** An empty embedded API server (a real cluster named by KUBECONFIG is not empty: not used here). */
async function emptyServer(): Promise<{ kubectl: (bin: string, args: string[]) => Promise<Run> }> {
  const saved = process.env.PODNET_TEST_EMBEDDED;
  process.env.PODNET_TEST_EMBEDDED = '1';
  try {
    cluster = await testCluster();
  } finally {
    if (saved === undefined) delete process.env.PODNET_TEST_EMBEDDED;
    else process.env.PODNET_TEST_EMBEDDED = saved;
  }
  home = mkdtempSync(join(tmpdir(), 'podnet-kubectl-home-'));
  const kubeconfig = cluster.kubeconfigPath;
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, KUBECONFIG: kubeconfig };
  // Asynchronous: the embedded server answers from this process.
  const kubectl = (bin: string, args: string[]) =>
    new Promise<Run>((resolve) => {
      const child = spawn(bin, args, { cwd: REPO, env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  return { kubectl };
}

interface Ctr {
  name: string;
  image: string;
  env: { name: string }[];
  livenessProbe?: unknown;
}

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

/** The objects a kustomization lists (its resources' files; every one here is a file). */
function kustomizationObjects(): Obj[] {
  const k = parseYaml(readFileSync(join(DEPLOY, 'kustomization.yaml'), 'utf8')) as {
    namespace: string;
    resources: string[];
  };
  return k.resources.flatMap((r) =>
    parseAllDocuments(readFileSync(join(DEPLOY, r), 'utf8'))
      .map((d) => d.toJS() as Obj)
      .filter(Boolean),
  );
}

async function expectServed(objs: Obj[]): Promise<void> {
  const client = new KubeClient({ kubeconfigPath: cluster!.kubeconfigPath });
  const api = KubernetesObjectApi.makeApiClient(client.kc);
  for (const o of objs) {
    const got = await api
      .read({ apiVersion: o.apiVersion, kind: o.kind, metadata: o.metadata } as never)
      .then(
        (x) => x as Obj,
        (err: unknown) => {
          throw new Error(`${o.kind}/${o.metadata.name} is not on the server: ${String(err)}`);
        },
      );
    expect(got.metadata.name).toBe(o.metadata.name);
  }
}

describe.each(kubectls)('kubectl apply -k deploy/ with $label', ({ bin, missing }) => {
  it.skipIf(!bin)(
    `creates every object of the base in one pass on an empty API server, then the default pool and BGP configuration${bin ? '' : ` (skipped: ${missing})`}`,
    async () => {
      const { kubectl } = await emptyServer();
      const version = versionOf(bin!);
      const first = await kubectl(bin!, ['apply', '-k', 'deploy/']);
      expect(first.stderr, `${version}: stderr of the first pass`).toBe('');
      expect(first.code, `${version}: ${first.stdout}`).toBe(0);
      const objs = kustomizationObjects();
      expect(first.stdout.trim().split('\n').length, first.stdout).toBe(objs.length);
      expect(first.stdout).not.toMatch(/unchanged|configured/);
      for (const kind of [
        'CustomResourceDefinition',
        'Namespace',
        'ServiceAccount',
        'ClusterRole',
        'DaemonSet',
      ])
        expect(objs.map((o) => o.kind)).toContain(kind);
      await expectServed(
        objs.map((o) =>
          ['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition'].includes(o.kind)
            ? o
            : { ...o, metadata: { ...o.metadata, namespace: 'podnet-system' } },
        ),
      );

      const config = await kubectl(bin!, [
        'apply',
        '-f',
        'deploy/ippool-default.yaml',
        '-f',
        'deploy/bgpconfiguration-default.yaml',
      ]);
      expect(config.code, `${version}: ${config.stdout}${config.stderr}`).toBe(0);
      await expectServed([
        ...parseAllDocuments(readFileSync(join(DEPLOY, 'ippool-default.yaml'), 'utf8')).map(
          (d) => d.toJS() as Obj,
        ),
        ...parseAllDocuments(readFileSync(join(DEPLOY, 'bgpconfiguration-default.yaml'), 'utf8')).map(
          (d) => d.toJS() as Obj,
        ),
      ]);

      // The CRD folder applies on its own too (it holds no kustomization.yaml)…
      const crds = await kubectl(bin!, ['apply', '-f', 'deploy/crds/']);
      expect(crds.code, `${version}: ${crds.stdout}${crds.stderr}`).toBe(0);
      // …and a second pass of the base changes nothing.
      const again = await kubectl(bin!, ['apply', '-k', 'deploy/']);
      expect(again.code, `${version}: ${again.stdout}${again.stderr}`).toBe(0);
      expect(again.stdout).not.toMatch(/created/);

      // An upgrade: the same base with a new image and one more agent variable patches the
      // DaemonSet in place (a strategic merge patch: containers merge by name, env by name).
      const copy = mkdtempSync(join(tmpdir(), 'podnet-deploy-copy-'));
      try {
        cpSync(DEPLOY, copy, { recursive: true });
        const ds = readFileSync(join(copy, 'daemonset.yaml'), 'utf8');
        writeFileSync(
          join(copy, 'daemonset.yaml'),
          ds
            .replaceAll('image: podnet/agent:0.1.0', 'image: podnet/agent:0.1.1')
            .replace(
              '              value: /host/etc/cni/net.d\n          ports:\n',
              '              value: /host/etc/cni/net.d\n            - name: PODNET_LOG_LEVEL\n              value: debug\n          ports:\n',
            ),
        );
        const upgrade = await kubectl(bin!, ['apply', '-k', copy]);
        expect(upgrade.code, `${version}: ${upgrade.stdout}${upgrade.stderr}`).toBe(0);
        expect(upgrade.stdout).toContain('daemonset.apps/podnet-agent configured');
        const client = new KubeClient({ kubeconfigPath: cluster!.kubeconfigPath });
        const got = (await KubernetesObjectApi.makeApiClient(client.kc).read({
          apiVersion: 'apps/v1',
          kind: 'DaemonSet',
          metadata: { name: 'podnet-agent', namespace: 'podnet-system' },
        } as never)) as unknown as {
          spec: { template: { spec: { containers: Ctr[]; initContainers: Ctr[] } } };
        };
        const pod = got.spec.template.spec;
        expect(pod.initContainers.map((c) => [c.name, c.image])).toEqual([
          ['node-sysctls', 'podnet/agent:0.1.1'],
          ['install-cni', 'podnet/agent:0.1.1'],
        ]);
        const agent = pod.containers.find((c) => c.name === 'agent')!;
        expect(agent.image).toBe('podnet/agent:0.1.1');
        expect(agent.env.map((e) => e.name)).toEqual([
          'NODENAME',
          'POD_NAME',
          'POD_UID',
          'PODNET_CNI_CONF_DIR',
          'PODNET_LOG_LEVEL',
        ]);
        expect(agent.livenessProbe, 'the rest of the container is kept').toBeDefined();
      } finally {
        rmSync(copy, { recursive: true, force: true });
      }
    },
    120_000,
  );
});

describe('custom resources in the same apply as their CRDs', () => {
  it.skipIf(!onPath)(
    `are refused by kubectl on an empty server (why the default pool is a second apply)${onPath ? '' : ' (skipped: no kubectl on PATH)'}`,
    async () => {
      const { kubectl } = await emptyServer();
      const r = await kubectl(onPath!, [
        'apply',
        '-f',
        'deploy/crds/podnet.io_ippools.yaml',
        '-f',
        'deploy/ippool-default.yaml',
      ]);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toContain('customresourcedefinition.apiextensions.k8s.io/ippools.podnet.io created');
      expect(r.stderr).toMatch(/no matches for kind "IPPool"/);
    },
    60_000,
  );
});
