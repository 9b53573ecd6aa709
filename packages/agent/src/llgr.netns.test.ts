// Long-lived graceful restart (RFC 9494) through the agent, in network namespaces: two nodes that
// learn each other's blocks only through two FRR route reflectors (mesh off, BGPPeers with
// longLivedGracefulRestart). Both reflectors die at once (SIGKILL): past their restart time the
// nodes keep the routes as LLGR_STALE, the kernel keeps them, and pods still reach each other.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BGPCONFIGURATION, BGPPEER } from '@podnet/k8s';
import { PODNET_PROTO } from '@podnet/routes';
import { exec, type Netns, vethPair, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT, AgentLab, CNI } from './__fixtures__/netns-agent.js';

const lab = new AgentLab('llgr');
let fabric: Netns;
let ports = 0;

interface Node {
  name: string;
  ip: string;
  ns: Netns;
  kubeconfig: string;
}
const nodes = new Map<string, Node>();
const pods = new Map<string, { ns: Netns; ip: string }>();
const reflectors: { name: string; ip: string; bgpd: number }[] = [];

async function onFabric(name: string, ip: string): Promise<Netns> {
  const ns = await lab.nets.create(name);
  const port = `f${ports++}`;
  await vethPair(ns, 'eth0', fabric, port);
  await fabric.ip('link', 'set', port, 'master', 'br0');
  await ns.ip('addr', 'add', `${ip}/24`, 'dev', 'eth0');
  return ns;
}

/** FRR (zebra + bgpd) as a route reflector for the nodes, with GR 2 s and LLGR 3600 s. */
async function startReflector(name: string, ip: string): Promise<void> {
  const ns = await onFabric(name, ip);
  const dir = join(lab.work, name);
  mkdirSync(dir, { recursive: true });
  const clients = [...nodes.values()].map((n) => n.ip);
  writeFileSync(
    join(dir, 'bgpd.conf'),
    [
      'frr defaults traditional',
      `hostname ${name}`,
      'log stdout informational',
      'router bgp 64512',
      ` bgp router-id ${ip}`,
      ' bgp cluster-id 10.99.0.20',
      ' bgp graceful-restart',
      ' bgp graceful-restart restart-time 2',
      ' bgp long-lived-graceful-restart stale-time 3600',
      ...clients.flatMap((c) => [
        ` neighbor ${c} remote-as 64512`,
        ` neighbor ${c} timers 3 9`,
        ` neighbor ${c} timers connect 1`,
      ]),
      ' address-family ipv4 unicast',
      ...clients.map((c) => `  neighbor ${c} route-reflector-client`),
      ' exit-address-family',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'zebra.conf'), `hostname ${name}\n`);
  writeFileSync(join(dir, 'vtysh.conf'), '');
  chmodSync(dir, 0o777);
  for (const f of ['bgpd.conf', 'zebra.conf', 'vtysh.conf']) chmodSync(join(dir, f), 0o644);
  const zsock = join(dir, 'zserv.api');
  const common = ['--vty_socket', dir, '-z', zsock];
  lab.logged(
    ns.spawn('/usr/lib/frr/zebra', ['-f', join(dir, 'zebra.conf'), '-i', join(dir, 'zebra.pid'), ...common]),
    `${name}.zebra.log`,
  );
  await waitFor(`${name} zebra socket`, async () => (await exec('test', ['-S', zsock])).code === 0, {
    timeoutMs: 20_000,
  });
  const bgpd = lab.logged(
    ns.spawn('/usr/lib/frr/bgpd', ['-f', join(dir, 'bgpd.conf'), '-i', join(dir, 'bgpd.pid'), ...common]),
    `${name}.bgpd.log`,
  );
  reflectors.push({ name, ip, bgpd: bgpd.pid! });
}

async function addNode(name: string, ip: string): Promise<Node> {
  const ns = await onFabric(name.replace('-', ''), ip);
  // Off-fabric traffic would go to a router that is not there: only BGP routes reach the other node.
  await ns.ip('route', 'add', 'default', 'via', '10.99.0.1', 'dev', 'eth0');
  const { kubeconfig } = await lab.kubeconfigIn(ns, name);
  await lab.client.core.createNode({
    body: { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name } } },
  });
  const node = { name, ip, ns, kubeconfig };
  nodes.set(name, node);
  return node;
}

function startAgent(node: Node): void {
  lab.logged(
    node.ns.spawn(
      process.execPath,
      lab.agentArgv(node.name, node.kubeconfig, ['--resync-interval', '10s', '--log-level', 'debug']),
    ),
    `${node.name}.agent.log`,
  );
}

async function addPod(nodeName: string, name: string): Promise<string> {
  const node = nodes.get(nodeName)!;
  await lab.client.core.createNamespacedPod({
    namespace: 'default',
    body: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default' },
      spec: { nodeName, containers: [{ name: 'pause', image: 'pause' }] },
    },
  });
  const podNs = await lab.nets.create(name.replace('-', ''));
  const result = await lab.cniAdd(
    node.ns,
    podNs,
    { name, containerId: `c-${name}-${process.pid}` },
    {
      kubeconfig: node.kubeconfig,
      nodeName,
      cacheDir: join(lab.work, `${nodeName}-cni-cache`),
      logFile: join(lab.work, `${nodeName}-cni.log`),
    },
  );
  const ip = result.ips[0]!.address.split('/')[0]!;
  pods.set(name, { ns: podNs, ip });
  return ip;
}

const ping = (from: string, to: string) =>
  pods
    .get(from)!
    .ns.exec('ping', ['-c', '1', '-W', '2', pods.get(to)!.ip])
    .then((r) => r.code === 0);

const blockOf = (ip: string) => {
  const p = ip.split('.').map(Number);
  return `${p[0]}.${p[1]}.${p[2]}.${p[3]! & 0xc0}/26`;
};

async function hasRouteVia(node: Node, block: string, gw: string): Promise<boolean> {
  const rs = await node.ns.ipJson<{ dst: string; gateway?: string; nexthops?: { gateway: string }[] }[]>(
    'route',
    'show',
    'proto',
    String(PODNET_PROTO),
  );
  return rs.some((r) => r.dst === block && (r.gateway === gw || r.nexthops?.some((n) => n.gateway === gw)));
}

/** The agent's log lines of `event` (the bgp-ts speaker logs through the agent's logger). */
function logged(node: Node, event: string): { peer?: string; routes?: number; msg?: string }[] {
  return readFileSync(join(lab.work, `${node.name}.agent.log`), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes(`"${event}"`))
    .map((l) => JSON.parse(l) as { event?: string; peer?: string; routes?: number })
    .filter((e) => e.event === event);
}

beforeAll(async () => {
  await lab.start([AGENT, CNI], { cidr: '10.244.0.0/16', blockSize: 26 });
  await lab.client.core.createNamespace({ body: { metadata: { name: 'default' } } }).catch(() => undefined);
  await lab.client.core
    .createNamespace({ body: { metadata: { name: 'podnet-system' } } })
    .catch(() => undefined);
  await lab.client.resource(BGPCONFIGURATION).create({
    metadata: { name: 'default' },
    spec: {
      nodeToNodeMesh: false,
      holdTime: 9,
      keepaliveTime: 3,
      gracefulRestart: { enabled: true, restartTime: 15 },
    },
  });
  fabric = await lab.nets.create('fabric');
  await fabric.ip('link', 'add', 'br0', 'type', 'bridge');
  await fabric.ip('link', 'set', 'br0', 'up');
  await addNode('node-a', '10.99.0.11');
  await addNode('node-b', '10.99.0.12');
  for (const [name, ip] of [
    ['rr1', '10.99.0.21'],
    ['rr2', '10.99.0.22'],
  ] as const) {
    await startReflector(name, ip);
    await lab.client.resource(BGPPEER).create({
      metadata: { name },
      spec: { peerIP: ip, asNumber: 64512, longLivedGracefulRestart: { staleTime: 3600 } },
    });
  }
  for (const n of nodes.values()) startAgent(n);
  await addPod('node-a', 'pod-a1');
  await addPod('node-b', 'pod-b1');
}, 180_000);

afterAll(() => lab.stop(), 60_000);

describe('long-lived graceful restart through the agent', () => {
  it('keeps cross-node routes past the restart time when both route reflectors die at once', async () => {
    const [a, b] = [nodes.get('node-a')!, nodes.get('node-b')!];
    const [blockA, blockB] = [blockOf(pods.get('pod-a1')!.ip), blockOf(pods.get('pod-b1')!.ip)];
    await waitFor(`node-a routes ${blockB} via node-b (reflected)`, () => hasRouteVia(a, blockB, b.ip), {
      timeoutMs: 90_000,
      intervalMs: 500,
    });
    await waitFor(`node-b routes ${blockA} via node-a (reflected)`, () => hasRouteVia(b, blockA, a.ip), {
      timeoutMs: 30_000,
      intervalMs: 500,
    });
    await waitFor('pod-a1 pings pod-b1', () => ping('pod-a1', 'pod-b1'), { timeoutMs: 30_000 });

    for (const rr of reflectors) process.kill(rr.bgpd, 'SIGKILL');
    // Each node's GR timer for each reflector (its 2 s restart time) runs out, and the routes
    // become LLGR_STALE instead of going: the speaker logs it per peer.
    for (const n of [a, b])
      await waitFor(
        `${n.name} keeps both reflectors' routes as LLGR_STALE`,
        () =>
          reflectors.every((rr) =>
            logged(n, 'llgr-stale').some((e) => e.peer === rr.ip && (e.routes ?? 0) > 0),
          ),
        { timeoutMs: 60_000, intervalMs: 500 },
      );
    for (const n of [a, b])
      expect(new Set(logged(n, 'gr-timeout').map((e) => e.peer))).toEqual(
        new Set(reflectors.map((rr) => rr.ip)),
      );
    expect(await hasRouteVia(a, blockB, b.ip)).toBe(true);
    expect(await hasRouteVia(b, blockA, a.ip)).toBe(true);
    expect(await ping('pod-a1', 'pod-b1')).toBe(true);
    expect(await ping('pod-b1', 'pod-a1')).toBe(true);
  }, 240_000);
});
