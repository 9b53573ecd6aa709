// The CNI plugin's credential as the DaemonSet installs it (item: no long-lived shared token on
// every host): a short-lived TokenRequest token (not bound to the agent's pod: a real API server
// binds a pod only to the pod's own service account, docs/real-cluster.md), written 0600, named by the plugin's
// kubeconfig through tokenFile, renewed at 80% of its lifetime. Runs against the API server over
// HTTP (the embedded one, or KUBECONFIG's) and runs the installed plugin as the kubelet would.
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IPPOOL, installCrds, KubeClient } from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { FakeClock } from '../../bgp/src/__fixtures__/clock.js';
import {
  CNI_TOKEN_NAME,
  CniTokenRefresher,
  type IssuedToken,
  requestTokenVia,
  type TokenRequestSpec,
} from './cni-token.js';
import { defaultPluginBundle } from './install-cni.js';

const log = pino({ level: 'silent' });
const CLI = fileURLToPath(new URL('../dist/podnet-agent.js', import.meta.url));
const run = Math.random().toString(36).slice(2, 8);
const ns = `podnet-tok-${run}`;
const nodeName = `tok-node-${run}`;
const podName = `podnet-agent-${run}`;
let cluster: TestCluster;
let client: KubeClient;
let root: string;
let server: string;
let caPem: Buffer;

interface Claims {
  aud: string[];
  exp: number;
  iat: number;
  jti: string;
  sub: string;
  'kubernetes.io': { namespace: string; pod?: { name: string; uid: string }; node?: { name: string } };
}
const claimsOf = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Claims;

function spec(over: Partial<TokenRequestSpec> = {}): TokenRequestSpec {
  return {
    namespace: ns,
    serviceAccount: 'podnet-cni',
    audiences: [],
    expirationSeconds: 900,
    ...over,
  };
}

/**
 * Runs the installed plugin's STATUS as the kubelet would: it reads the kubeconfig and the token
 * and asks the API server (asynchronously: the embedded server answers from this process).
 */
async function pluginStatus(
  binDir: string,
  confDir: string,
  cacheDir: string,
): Promise<{ code: number | null; out: string }> {
  const conflist = JSON.parse(readFileSync(join(confDir, '10-podnet.conflist'), 'utf8')) as {
    name: string;
    plugins: Record<string, unknown>[];
  };
  const conf = { ...conflist.plugins[0], cniVersion: '1.1.0', name: conflist.name, cacheDir };
  const child = spawn(join(binDir, 'podnet'), [], {
    cwd: root,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: 'STATUS', CNI_PATH: binDir },
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  child.stdin.end(JSON.stringify(conf));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, out };
}

/** Runs the built podnet-agent with only the given environment (asynchronously, see pluginStatus). */
async function runAgent(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, out };
}

beforeAll(async () => {
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath, logger: log });
  const kc = parseYaml(readFileSync(cluster.kubeconfigPath, 'utf8')) as {
    clusters: { cluster: { server: string; 'certificate-authority-data'?: string } }[];
  };
  server = kc.clusters[0]!.cluster.server;
  caPem = Buffer.from(kc.clusters[0]!.cluster['certificate-authority-data'] ?? '', 'base64');
  await installCrds(client);
  await client.core.createNamespace({ body: { metadata: { name: ns } } });
  await client.core.createNamespacedServiceAccount({
    namespace: ns,
    body: { metadata: { name: 'podnet-cni' } },
  });
  await client.core.createNode({ body: { metadata: { name: nodeName } } });
  await client.core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: podName },
      spec: { nodeName, containers: [{ name: 'agent', image: 'podnet/agent:test' }] },
    },
  });
  await client.resource(IPPOOL).create({
    apiVersion: 'podnet.io/v1alpha1',
    kind: 'IPPool',
    metadata: { name: `tok-${run}` },
    spec: { cidr: '10.213.0.0/16', blockSize: 26 },
  } as never);
  root = mkdtempSync(join(tmpdir(), 'podnet-cni-token-'));
}, 60_000);

afterAll(async () => {
  if (client) {
    await client.core.deleteNamespace({ name: ns }).catch(() => {});
    await client.core.deleteNode({ name: nodeName }).catch(() => {});
    await client
      .resource(IPPOOL)
      .delete(`tok-${run}`)
      .catch(() => {});
  }
  await cluster?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('the CNI credential', () => {
  it('is a short-lived token in a 0600 file the kubeconfig names; the plugin uses it and caches no copy', async () => {
    const bundle = defaultPluginBundle();
    if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run the build of @podnet/cni first`);
    const binDir = join(root, 'host/opt/cni/bin');
    const confDir = join(root, 'host/etc/cni/net.d');
    const saDir = join(root, 'serviceaccount');
    mkdirSync(confDir, { recursive: true });
    mkdirSync(saDir);
    writeFileSync(join(saDir, 'ca.crt'), caPem);

    // `podnet-agent install-cni` as the DaemonSet's init container runs it (its environment).
    const api = new URL(server);
    const installed = await runAgent(['install-cni', '--kubeconfig', cluster.kubeconfigPath], {
      NODENAME: nodeName,
      POD_NAME: podName,
      PODNET_NAMESPACE: ns,
      PODNET_CNI_BIN_DIR: binDir,
      PODNET_CNI_CONF_DIR: confDir,
      PODNET_CNI_TOKEN_DIR: saDir,
      PODNET_CNI_TOKEN_EXPIRATION: '15m',
      KUBERNETES_SERVICE_HOST: api.hostname,
      KUBERNETES_SERVICE_PORT: api.port,
    });
    expect(installed.code, installed.out).toBe(0);

    const mode = (f: string) => statSync(join(confDir, f)).mode & 0o777;
    expect(mode(CNI_TOKEN_NAME), 'token file mode').toBe(0o600);
    expect(mode('podnet-kubeconfig'), 'kubeconfig mode').toBe(0o600);
    expect(mode('10-podnet.conflist'), 'conflist mode').toBe(0o644);
    expect(statSync(join(binDir, 'podnet')).mode & 0o777).toBe(0o755);
    expect(
      readdirSync(confDir).filter((f) => f.includes('podnet-tmp')),
      'no temp file left',
    ).toEqual([]);

    const token = readFileSync(join(confDir, CNI_TOKEN_NAME), 'utf8');
    const c = claimsOf(token);
    // No audience asked: the API server's own (the embedded server's is kubeadm's issuer).
    if (cluster.embedded) expect(c.aud).toEqual(['https://kubernetes.default.svc.cluster.local']);
    else expect(c.aud.length).toBeGreaterThan(0);
    expect(c.exp - c.iat, 'lifetime as asked').toBe(900);
    expect(c.sub).toBe(`system:serviceaccount:${ns}:podnet-cni`);
    // Not pod-bound: the API server refuses to bind a podnet-cni token to the agent's pod.
    expect(c['kubernetes.io'].pod).toBeUndefined();

    const kubeconfig = readFileSync(join(confDir, 'podnet-kubeconfig'), 'utf8');
    expect(kubeconfig).toContain(`tokenFile: ${CNI_TOKEN_NAME}`);
    expect(kubeconfig).not.toContain(token);

    // The installed plugin, run as the kubelet runs it, authenticates with the token file.
    const cacheDir = join(root, 'cni-cache');
    const ok = await pluginStatus(binDir, confDir, cacheDir);
    expect(ok.out).toBe('');
    expect(ok.code, ok.out).toBe(0);
    // Its cache (the parsed kubeconfig) holds no copy of the token.
    const cached = readdirSync(cacheDir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => readFileSync(join(e.parentPath, e.name), 'utf8'));
    expect(cached.length, 'the plugin cached the parsed kubeconfig').toBeGreaterThan(0);
    for (const text of cached) expect(text).not.toContain(token.split('.')[2]!);
  }, 120_000);

  it('asks for a new token at 80% of its lifetime, replaces the file atomically, and retries a failed request', async () => {
    await client.core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: `${podName}-2` },
        spec: { nodeName, containers: [{ name: 'agent', image: 'podnet/agent:test' }] },
      },
    });
    const dir = join(root, 'refresh');
    mkdirSync(dir);
    const clock = new FakeClock();
    clock.t = Date.now();
    const registry = new Registry();
    let failNext = false;
    const request = requestTokenVia(client.core);
    const writes: IssuedToken[] = [];
    let wrote: () => void = () => {};
    const refresher = new CniTokenRefresher({
      spec: spec({ audiences: ['podnet-test'] }),
      request: async (s) => {
        if (failNext) {
          failNext = false;
          throw new Error('injected TokenRequest failure');
        }
        return request(s);
      },
      dir,
      log,
      registry,
      clock,
      onWrite: (t) => {
        writes.push(t);
        wrote();
      },
    });
    const nextWrite = () => new Promise<void>((r) => (wrote = r));
    const first = await refresher.start();
    // The server stamps the expiry from its own (real) clock, which has moved on from the fake
    // clock's start by the request's round trip.
    const roundTrip = Date.now() - clock.t;
    expect(claimsOf(first.token).aud).toEqual(['podnet-test']);
    const delay = refresher.nextDelay(first);
    // 80% of the 900 s lifetime, give or take the request's round trip.
    expect(delay).toBeGreaterThan(0.8 * 900_000 - 60_000);
    expect(delay).toBeLessThanOrEqual(0.8 * (900_000 + roundTrip));
    expect(clock.pending).toBe(1);

    // Just before the deadline nothing is asked; at it, a new token replaces the file.
    clock.advance(delay - 1);
    expect(writes.length).toBe(1);
    const second = nextWrite();
    clock.advance(1);
    await second;
    expect(writes.length).toBe(2);
    const file = join(dir, CNI_TOKEN_NAME);
    expect(readFileSync(file, 'utf8')).toBe(writes[1]!.token);
    expect(claimsOf(writes[1]!.token).jti).not.toBe(claimsOf(first.token).jti);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    // A failed request keeps the old file, counts the failure and retries after 1 s.
    await waitFor(() => clock.pending === 1); // the next refresh is scheduled
    failNext = true;
    clock.advance(refresher.nextDelay(writes[1]!));
    expect(clock.pending, 'the refresh timer fired').toBe(0);
    await waitFor(() => clock.pending === 1); // the retry is scheduled
    expect(readFileSync(file, 'utf8')).toBe(writes[1]!.token);
    expect(
      (await registry.getSingleMetric('podnet_cni_token_refresh_failures')!.get()).values[0]!.value,
    ).toBe(1);
    const third = nextWrite();
    clock.advance(1000);
    await third;
    expect(readFileSync(file, 'utf8')).toBe(writes[2]!.token);
    expect(
      (await registry.getSingleMetric('podnet_cni_token_refresh_failures')!.get()).values[0]!.value,
    ).toBe(0);
    refresher.stop();
    expect(clock.pending).toBe(0);
  }, 60_000);
});

/** Waits for a condition driven by promise callbacks (bounded: 200 turns of the event loop). */
async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setImmediate(r));
  expect(cond()).toBe(true);
}
