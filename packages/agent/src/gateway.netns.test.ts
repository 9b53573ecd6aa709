// The data path without the agent: pods wired by the real CNI plugin reach their gateway
// (169.254.1.1) while the agent, whose userspace ARP responder answers for it, is stopped: with
// their neighbour caches flushed and their timers short, and for a pod added while the agent is
// down. Starting the agent again changes none of the pods' routes and neighbours.
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IPPOOL, installCrds, KubeClient } from '@podnet/k8s';
import {
  cleanupStale,
  exec,
  type Netns,
  NetnsSet,
  ProcessGroup,
  type TestCluster,
  type Tunnel,
  testCluster,
  tunnelIntoNetns,
  vethPair,
  waitFor,
} from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { AgentStatus } from './status.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const AGENT = join(ROOT, 'packages/agent/dist/cli.js');
const CNI = join(ROOT, 'packages/cni/dist/podnet-cni.js');
const WORK = join(tmpdir(), `podnet-gateway-test-${process.pid}`);
const API_PORT = 6443;
const NODE = 'node-gw';
const NODE_IP = '10.98.0.11';

const nets = new NetnsSet();
const procs = new ProcessGroup();
let cluster: TestCluster;
let client: KubeClient;
let tunnel: Tunnel | undefined;
let node: Netns;
let kubeconfig: string;
const pods = new Map<string, { ns: Netns; ip: string; hostIf: string }>();

function startAgent(): ChildProcess {
  const log = createWriteStream(join(WORK, 'agent.log'), { flags: 'a' });
  const child = procs.add(
    node.spawn(process.execPath, [
      AGENT,
      '--node-name',
      NODE,
      '--kubeconfig',
      kubeconfig,
      '--ip-autodetection-method',
      'interface=eth0',
      '--status-listen',
      '127.0.0.1:9099',
      '--arp-mode',
      'userspace',
      '--log-level',
      'debug',
    ]),
  );
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  return child;
}

async function status(): Promise<AgentStatus | undefined> {
  const r = await node.exec('curl', ['-sf', '--max-time', '3', 'http://127.0.0.1:9099/status']);
  return r.code === 0 ? (JSON.parse(r.stdout) as AgentStatus) : undefined;
}

async function addPod(name: string): Promise<void> {
  await client.core.createNamespacedPod({
    namespace: 'default',
    body: { metadata: { name }, spec: { nodeName: NODE, containers: [{ name: 'c', image: 'x' }] } },
  });
  const ns = await nets.create(name.replace('-', ''));
  const conf = JSON.stringify({
    cniVersion: '1.0.0',
    name: 'podnet',
    type: 'podnet',
    kubeconfig,
    nodeName: NODE,
    arpMode: 'userspace',
    cacheDir: join(WORK, 'cni-cache'),
  });
  const env = {
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: `c-${name}`,
    CNI_NETNS: ns.path,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${name}`,
    CNI_PATH: dirname(CNI),
  };
  const r = await exec(
    'ip',
    [
      'netns',
      'exec',
      node.name,
      'env',
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      process.execPath,
      CNI,
    ],
    { input: conf, timeoutMs: 60_000 },
  );
  if (r.code !== 0) throw new Error(`podnet-cni ADD ${name} exited ${r.code}: ${r.stdout} ${r.stderr}`);
  const result = JSON.parse(r.stdout) as { ips: { address: string }[]; interfaces: { name: string }[] };
  pods.set(name, {
    ns,
    ip: result.ips[0]!.address.split('/')[0]!,
    hostIf: result.interfaces[0]!.name,
  });
}

async function ping(from: string, to: string): Promise<{ ok: boolean; why: string }> {
  const src = pods.get(from)!;
  const dst = to === 'host' ? NODE_IP : pods.get(to)!.ip;
  const r = await src.ns.exec('ping', ['-c', '1', '-W', '2', dst]);
  return {
    ok: r.code === 0,
    why: `${from} -> ${to} (${dst}): ${r.stdout}${r.stderr}\n${from} neighbours: ${await src.ns.ip('neigh', 'show')}`,
  };
}

/** What the pods' data path is made of: each pod's routes and permanent neighbours, the node's routes to them. */
async function dataPath(): Promise<unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, p] of pods) {
    out[name] = {
      routes4: await p.ns.ipJson('-4', 'route', 'show', 'table', 'all'),
      routes6: await p.ns.ipJson('-6', 'route', 'show', 'table', 'all'),
      permanentNeighbours: await p.ns.ipJson('neigh', 'show', 'nud', 'permanent'),
    };
    const toPod = await node.ipJson<{ dst: string; dev: string; scope?: string }[]>('route', 'show', p.ip);
    out[`${name}@node`] = toPod.map((r) => ({ dst: r.dst, dev: r.dev, scope: r.scope }));
  }
  return out;
}

beforeAll(async () => {
  for (const f of [AGENT, CNI])
    if (!existsSync(f))
      throw new Error(`${f} is missing: build first (npx turbo run build --filter=@podnet/agent)`);
  await cleanupStale();
  mkdirSync(WORK, { recursive: true });
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  await installCrds(client);
  await client.core.createNamespace({ body: { metadata: { name: 'default' } } }).catch(() => undefined);
  await client.resource(IPPOOL).create({
    metadata: { name: 'pods' },
    spec: { cidr: '10.247.0.0/16', blockSize: 26 },
  });
  await client.core.createNode({
    body: { metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } } },
  });
  // The node: one uplink with an address (the agent's), on a segment of its own; no default route.
  node = await nets.create('gwnode');
  const fabric = await nets.create('gwfab');
  await vethPair(node, 'eth0', fabric, 'f0');
  await node.ip('addr', 'add', `${NODE_IP}/24`, 'dev', 'eth0');
  await fabric.ip('addr', 'add', '10.98.0.1/24', 'dev', 'f0');
  const kc = parseYaml(readFileSync(cluster.kubeconfigPath, 'utf8')) as {
    clusters: { cluster: { server: string } }[];
  };
  const server = new URL(kc.clusters[0]!.cluster.server);
  tunnel = await tunnelIntoNetns(node, API_PORT, { host: server.hostname, port: Number(server.port) });
  for (const c of kc.clusters) {
    const u = new URL(c.cluster.server);
    u.hostname = '127.0.0.1';
    u.port = String(API_PORT);
    c.cluster.server = u.toString().replace(/\/$/, '');
  }
  kubeconfig = join(WORK, 'node.kubeconfig');
  writeFileSync(kubeconfig, toYaml(kc));
}, 120_000);

afterAll(async () => {
  await procs.stopAll(5000);
  await tunnel?.close();
  await nets.destroy();
  await cluster?.close();
  if (!process.env.PODNET_KEEP_TEST_LOGS) rmSync(WORK, { recursive: true, force: true });
}, 60_000);

describe('the pods keep their gateway while the agent is down', () => {
  it('existing pods and a pod added while the agent is down reach the host and each other; restarting the agent changes nothing', async () => {
    let agent = startAgent();
    await addPod('pod-1');
    await addPod('pod-2');
    await waitFor(
      "the agent's ARP responder to serve both pods",
      async () => {
        const s = await status();
        return (
          s?.arp.mode === 'userspace' &&
          ['pod-1', 'pod-2'].every((p) => s.arp.interfaces.includes(pods.get(p)!.hostIf))
        );
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    for (const [a, b] of [
      ['pod-1', 'pod-2'],
      ['pod-1', 'host'],
    ] as const) {
      const r = await ping(a, b);
      expect(r.ok, r.why).toBe(true);
    }

    // The agent goes away (crash loop, upgrade…).
    await procs.stop(agent, 10_000);
    expect(await status()).toBeUndefined();
    // Nothing else answers ARP for the gateway: proxy ARP stays off in userspace mode.
    for (const p of pods.values())
      expect((await node.run('sysctl', ['-n', `net.ipv4.conf.${p.hostIf}.proxy_arp`])).trim()).toBe('0');
    // A pod added while the agent is down.
    await addPod('pod-3');
    // Every neighbour entry that can expire does so at once: short timers, and the cache flushed.
    for (const p of pods.values()) {
      for (const [k, v] of [
        ['base_reachable_time_ms', 100],
        ['gc_stale_time', 1],
        ['delay_first_probe_time', 1],
      ] as const)
        await p.ns.sysctl(`net.ipv4.neigh.eth0.${k}`, v);
      await p.ns.ip('neigh', 'flush', 'dev', 'eth0');
      await node.ip('neigh', 'flush', 'dev', p.hostIf);
    }
    for (const [a, b] of [
      ['pod-1', 'host'],
      ['pod-2', 'host'],
      ['pod-3', 'host'],
      ['pod-1', 'pod-2'],
      ['pod-2', 'pod-1'],
      ['pod-3', 'pod-1'],
      ['pod-1', 'pod-3'],
      ['pod-2', 'pod-3'],
    ] as const) {
      const r = await ping(a, b);
      expect(r.ok, r.why).toBe(true);
    }
    // They never needed ARP for it: the gateway is a permanent entry at the host veth's MAC.
    for (const p of pods.values()) {
      const gw = await p.ns.ipJson<{ dst: string; lladdr?: string; state?: string[] }[]>(
        'neigh',
        'show',
        '169.254.1.1',
        'dev',
        'eth0',
      );
      expect(gw).toEqual([
        expect.objectContaining({ dst: '169.254.1.1', lladdr: 'ee:ee:ee:ee:ee:ee', state: ['PERMANENT'] }),
      ]);
    }

    // The agent comes back: it takes up pod-3 as well, and the data path is what it was.
    const before = (await dataPath()) as Record<string, unknown>;
    for (const [name, p] of pods) {
      // Something to compare: the node routes each pod, each pod has its gateway entry and routes.
      expect(before[`${name}@node`]).toEqual([{ dst: p.ip, dev: p.hostIf, scope: 'link' }]);
      expect(before[name]).toMatchObject({
        permanentNeighbours: [expect.objectContaining({ dst: '169.254.1.1' })],
        routes4: expect.arrayContaining([
          expect.objectContaining({ dst: 'default', gateway: '169.254.1.1' }),
        ]),
      });
    }
    agent = startAgent();
    await waitFor(
      "the restarted agent's ARP responder to serve every pod",
      async () => {
        const s = await status();
        return [...pods.values()].every((p) => s?.arp.interfaces.includes(p.hostIf));
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    await waitFor('the restarted agent to be ready', async () => (await status())?.ready === true, {
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    expect(await dataPath()).toEqual(before);
    const r = await ping('pod-3', 'pod-2');
    expect(r.ok, r.why).toBe(true);
  }, 240_000);
});
