// The data path without the agent: pods wired by the real CNI plugin reach their gateway
// (169.254.1.1) while the agent, whose userspace ARP responder answers for it, is stopped: with
// their neighbour caches flushed and their timers short, and for a pod added while the agent is
// down. Starting the agent again changes none of the pods' routes and neighbours.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { type Netns, vethPair, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT, AgentLab, CNI, STATUS_URL } from './__fixtures__/netns-agent.js';
import type { AgentStatus } from './status.js';

const NODE = 'node-gw';
const NODE_IP = '10.98.0.11';

const lab = new AgentLab('gateway');
let node: Netns;
let kubeconfig: string;
const pods = new Map<string, { ns: Netns; ip: string; hostIf: string }>();

function startAgent(): ChildProcess {
  return lab.logged(
    node.spawn(
      process.execPath,
      lab.agentArgv(NODE, kubeconfig, ['--arp-mode', 'userspace', '--log-level', 'debug']),
    ),
    'agent.log',
  );
}

async function status(): Promise<AgentStatus | undefined> {
  const r = await node.exec('curl', ['-sf', '--max-time', '3', `${STATUS_URL}/status`]);
  return r.code === 0 ? (JSON.parse(r.stdout) as AgentStatus) : undefined;
}

async function addPod(name: string): Promise<void> {
  await lab.client.core.createNamespacedPod({
    namespace: 'default',
    body: { metadata: { name }, spec: { nodeName: NODE, containers: [{ name: 'c', image: 'x' }] } },
  });
  const ns = await lab.nets.create(name.replace('-', ''));
  const result = await lab.cniAdd(
    node,
    ns,
    { name, containerId: `c-${name}` },
    { kubeconfig, nodeName: NODE, arpMode: 'userspace', cacheDir: join(lab.work, 'cni-cache') },
  );
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
  // The kernel keeps the local table itself, from the addresses: the IPv6 link-local address (and
  // its local route) appears only after duplicate address detection, whenever that ends. So the
  // pods' global addresses are compared, and the routes of every table but local.
  const routes = async (ns: Netns, family: '-4' | '-6') =>
    (await ns.ipJson<{ table?: string }[]>(family, 'route', 'show', 'table', 'all')).filter(
      (r) => r.table !== 'local',
    );
  for (const [name, p] of pods) {
    const addrs = await p.ns.ipJson<{ ifname: string; addr_info: { local: string; prefixlen: number }[] }[]>(
      'addr',
      'show',
      'scope',
      'global',
    );
    out[name] = {
      addresses: addrs.map((l) => ({
        ifname: l.ifname,
        addrs: l.addr_info.map((a) => `${a.local}/${a.prefixlen}`),
      })),
      routes4: await routes(p.ns, '-4'),
      routes6: await routes(p.ns, '-6'),
      permanentNeighbours: await p.ns.ipJson('neigh', 'show', 'nud', 'permanent'),
    };
    const toPod = await node.ipJson<{ dst: string; dev: string; scope?: string }[]>('route', 'show', p.ip);
    out[`${name}@node`] = toPod.map((r) => ({ dst: r.dst, dev: r.dev, scope: r.scope }));
  }
  return out;
}

beforeAll(async () => {
  await lab.start([AGENT, CNI], { cidr: '10.247.0.0/16', blockSize: 26 });
  await lab.client.core.createNamespace({ body: { metadata: { name: 'default' } } }).catch(() => undefined);
  await lab.client.core.createNode({
    body: { metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } } },
  });
  // The node: one uplink with an address (the agent's), on a segment of its own; no default route.
  node = await lab.nets.create('gwnode');
  const fabric = await lab.nets.create('gwfab');
  await vethPair(node, 'eth0', fabric, 'f0');
  await node.ip('addr', 'add', `${NODE_IP}/24`, 'dev', 'eth0');
  await fabric.ip('addr', 'add', '10.98.0.1/24', 'dev', 'f0');
  ({ kubeconfig } = await lab.kubeconfigIn(node, 'node'));
}, 120_000);

afterAll(() => lab.stop(), 60_000);

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
    await lab.procs.stop(agent, 10_000);
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
