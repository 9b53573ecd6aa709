// `kubectl apply -k deploy/` on an empty API server, as an operator runs it, with a current kubectl
// (Debian trixie's) and with Debian 12's kubectl 1.20 (kustomize v2.0.3): one pass creates the
// CRDs, the namespace, RBAC, the ConfigMap and the DaemonSet. The default IPPool and
// BGPConfiguration are then created by the agent's start-up code (defaults.ts) over HTTP against
// that server, from the shipped agent.yaml: kubectl cannot create custom resources of CRDs created
// in the same apply (the last test shows it). scripts/fetch-tools.sh (run by scripts/install.sh)
// extracts both kubectl builds from Debian's packages; a missing one is skipped, saying so.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { KubernetesObjectApi } from '@kubernetes/client-node';
import { BGPCONFIGURATION, IPPOOL, installCrds, KubeClient, loadCrdFiles } from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { loadConfig } from './config.js';
import { type DefaultsConfig, ensureDefaultObjects } from './defaults.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const DEPLOY = join(REPO, 'deploy');

function versionOf(bin: string): string {
  const r = spawnSync(bin, ['version', '--client', '-o', 'json'], { encoding: 'utf8', timeout: 20_000 });
  try {
    return (JSON.parse(r.stdout) as { clientVersion: { gitVersion: string } }).clientVersion.gitVersion;
  } catch {
    return 'unknown';
  }
}

function fetched(dir: string, what: string) {
  const bin = join(REPO, 'node_modules/.cache', dir, 'kubectl');
  return {
    label: what,
    bin: existsSync(bin) ? bin : undefined,
    missing: `${bin} is missing: run scripts/fetch-tools.sh (extracts it from Debian's package)`,
  };
}
const kubectls = [
  fetched('kubectl-trixie', "Debian trixie's current kubectl"),
  fetched('kubectl-debian', "Debian 12's kubectl 1.20"),
];
const current = kubectls[0]!;

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
    `creates every object of the base in one pass on an empty API server; the agent then creates the default pool and BGP configuration once${bin ? '' : ` (skipped: ${missing})`}`,
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

      // The agent's start-up creation, from the shipped agent.yaml, over HTTP: exactly one default
      // pool and BGPConfiguration; a second run (another agent, or a restart) changes nothing.
      const client = new KubeClient({ kubeconfigPath: cluster!.kubeconfigPath });
      const defaults = shippedDefaults();
      expect(defaults.defaultIpv4PoolCidr).toBe('10.244.0.0/16');
      const logs = capture();
      const made = await ensureDefaultObjects(client, defaults, logs.log);
      expect(made).toEqual({ created: ['IPPool/default-ipv4', 'BGPConfiguration/default'], existing: [] });
      expect(logs.lines().filter((l) => /^created the default/.test(l.msg))).toEqual([
        expect.objectContaining({
          kind: 'IPPool',
          name: 'default-ipv4',
          cidr: '10.244.0.0/16',
          blockSize: 26,
        }),
        expect.objectContaining({ kind: 'BGPConfiguration', name: 'default', asNumber: 64512 }),
      ]);
      const pools = (await client.resource(IPPOOL).list()).items;
      expect(pools.map((p) => [p.metadata.name, p.spec.cidr, p.spec.blockSize])).toEqual([
        ['default-ipv4', '10.244.0.0/16', 26],
      ]);
      const bgp = (await client.resource(BGPCONFIGURATION).list()).items;
      expect(bgp.map((c) => [c.metadata.name, c.spec.asNumber, c.spec.nodeToNodeMesh])).toEqual([
        ['default', 64512, true],
      ]);
      const again1 = await ensureDefaultObjects(client, defaults, logs.log);
      expect(again1).toEqual({ created: [], existing: ['IPPool/default-ipv4', 'BGPConfiguration/default'] });
      expect((await client.resource(IPPOOL).list()).items.map((p) => p.metadata.resourceVersion)).toEqual(
        pools.map((p) => p.metadata.resourceVersion),
      );
      expect(
        (await client.resource(BGPCONFIGURATION).list()).items.map((c) => c.metadata.resourceVersion),
      ).toEqual(bgp.map((c) => c.metadata.resourceVersion));
      await client.close();

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
        const lastEnv = '              value: /var/run/podnet/cni-timings\n          ports:\n';
        expect(ds, 'the edit below finds the agent env’s last entry').toContain(lastEnv);
        writeFileSync(
          join(copy, 'daemonset.yaml'),
          ds
            .replaceAll('image: podnet/agent:0.1.0', 'image: podnet/agent:0.1.1')
            .replace(
              lastEnv,
              lastEnv.replace('ports:', '').trimEnd() +
                '\n            - name: PODNET_LOG_LEVEL\n              value: debug\n          ports:\n',
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
          'PODNET_CNI_SOCKET',
          'PODNET_CNI_SPARE_ADDRESSES',
          'PODNET_CNI_HOST_CONF_DIR',
          'PODNET_CNI_CONF_DIR',
          'PODNET_CNI_TIMING_DIR',
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
  it.skipIf(!current.bin)(
    `are refused by kubectl on an empty server (why the agent creates the default pool)${current.bin ? '' : ` (skipped: ${current.missing})`}`,
    async () => {
      const { kubectl } = await emptyServer();
      const r = await kubectl(current.bin!, [
        'apply',
        '-f',
        'deploy/crds/podnet.io_ippools.yaml',
        '-f',
        'deploy/examples/ippool-default.yaml',
      ]);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toContain('customresourcedefinition.apiextensions.k8s.io/ippools.podnet.io created');
      expect(r.stderr).toMatch(/no matches for kind "IPPool"/);
    },
    60_000,
  );
});

/** The default-object options of the shipped agent.yaml (deploy/configmap.yaml), as the agent loads them. */
function shippedDefaults(): DefaultsConfig {
  const cm = parseYaml(readFileSync(join(DEPLOY, 'configmap.yaml'), 'utf8')) as {
    data: Record<string, string>;
  };
  return loadConfig({
    argv: ['--config', '/etc/podnet/agent.yaml'],
    env: {},
    readFile: () => cm.data['agent.yaml']!,
    hostname: () => 'node-a',
  }).config;
}

/** A logger whose JSON lines the test reads. */
function capture() {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      out.push(String(chunk));
      done();
    },
  });
  const log = pino({ level: 'info' }, stream);
  return {
    log,
    lines: () =>
      out
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { msg: string; [k: string]: unknown }),
  };
}

describe("the agent's default objects on a server with CRDs only (defaults.ts over HTTP)", () => {
  async function crdsOnly(): Promise<KubeClient> {
    await emptyServer();
    const client = new KubeClient({ kubeconfigPath: cluster!.kubeconfigPath });
    await installCrds(client, { crds: loadCrdFiles(join(DEPLOY, 'crds')) });
    return client;
  }

  it('creates no default pool when any IPPool exists, and never changes an existing BGPConfiguration', async () => {
    const client = await crdsOnly();
    await client.resource(IPPOOL).create({
      metadata: { name: 'rack-pool' },
      spec: { cidr: '172.20.0.0/16', blockSize: 28 },
    });
    const mine = await client.resource(BGPCONFIGURATION).create({
      metadata: { name: 'default' },
      spec: { asNumber: 65010, nodeToNodeMesh: false },
    });
    const logs = capture();
    const r = await ensureDefaultObjects(
      client,
      { ...shippedDefaults(), defaultIpv6PoolCidr: 'fd00:10:244::/48' },
      logs.log,
    );
    expect(r).toEqual({ created: [], existing: ['BGPConfiguration/default'] });
    expect(logs.lines().map((l) => l.msg)).toContain('IPPools exist; no default pool created');
    expect((await client.resource(IPPOOL).list()).items.map((p) => p.metadata.name)).toEqual(['rack-pool']);
    const bgp = await client.resource(BGPCONFIGURATION).get('default');
    expect(bgp.metadata.resourceVersion).toBe(mine.metadata.resourceVersion);
    expect([bgp.spec.asNumber, bgp.spec.nodeToNodeMesh]).toEqual([65010, false]);
    await client.close();
  }, 60_000);

  it('creates both families when configured, and agents racing on an empty server make one of each', async () => {
    const client = await crdsOnly();
    const cfg: DefaultsConfig = {
      ...shippedDefaults(),
      defaultIpv6PoolCidr: 'fd00:10:244::/48',
      defaultAsNumber: 65001,
    };
    const quiet = pino({ level: 'silent' });
    const results = await Promise.all([1, 2, 3].map(() => ensureDefaultObjects(client, cfg, quiet)));
    // Every agent succeeds; each object is created by exactly one of them (409 for the others).
    for (const key of ['IPPool/default-ipv4', 'IPPool/default-ipv6', 'BGPConfiguration/default']) {
      expect(results.filter((r) => r.created.includes(key)).length, key).toBe(1);
    }
    const pools = (await client.resource(IPPOOL).list()).items;
    expect(pools.map((p) => [p.metadata.name, p.spec.cidr, p.spec.blockSize]).sort()).toEqual([
      ['default-ipv4', '10.244.0.0/16', 26],
      ['default-ipv6', 'fd00:10:244::/48', 122],
    ]);
    expect((await client.resource(BGPCONFIGURATION).get('default')).spec.asNumber).toBe(65001);
    await client.close();
  }, 60_000);

  it('creates nothing of a family whose CIDR is none', async () => {
    const client = await crdsOnly();
    const r = await ensureDefaultObjects(
      client,
      { ...shippedDefaults(), defaultIpv4PoolCidr: undefined },
      pino({ level: 'silent' }),
    );
    expect(r.created).toEqual(['BGPConfiguration/default']);
    expect((await client.resource(IPPOOL).list()).items).toEqual([]);
    await client.close();
  }, 60_000);
});
