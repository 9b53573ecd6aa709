// The netfilter layer for real: a podnet-agent in a node namespace keeps `inet podnet` for the
// IPPools of the embedded API server; pod namespaces behind it send UDP to an "external"
// namespace and to each other, and a receiver reports the source address it sees. `nft -j list
// ruleset`, run by the test, is the independent reader of the table and of its drop counters.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BGPCONFIGURATION, IPPOOL } from '@podnet/k8s';
import { type Netns, run, vethPair, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT, AgentLab, STATUS_URL } from './__fixtures__/netns-agent.js';
import type { AgentStatus } from './status.js';

const PEER = join(dirname(fileURLToPath(import.meta.url)), '__fixtures__/udp-peer.mjs');
const PORT = 5599;
const NODE4 = '203.0.113.1';
const EXT4 = '203.0.113.2';
const NODE6 = '2001:db8:e::1';
const EXT6 = '2001:db8:e::2';
/** An address of the external namespace inside natOutgoingExclusions. */
const EXCLUDED4 = '198.51.100.2';
const POD1 = { v4: '10.60.0.5', v6: 'fd60::5' };
const POD2 = { v4: '10.60.0.6' };
const ISO = { v4: '10.61.0.5' };

const lab = new AgentLab('nat');
let node: Netns;
let ext: Netns;
let pod1: Netns;
let pod2: Netns;
let iso: Netns;
let agent: ChildProcess;
let kubeconfig: string;
const heard = new Map<string, { tag: string; from: string }[]>();

type Item = Record<string, Record<string, unknown>>;
async function ruleset(ns: Netns): Promise<Item[]> {
  return (JSON.parse(await ns.run('nft', ['-j', 'list', 'ruleset'])) as { nftables: Item[] }).nftables;
}
const ofTable = (items: Item[], table: string, kind: string) =>
  items.filter((i) => i[kind] && i[kind].table === table).map((i) => i[kind]!);
/** The elements of a set of inet podnet as nft prints them (`10.60.0.0/16`, a bare address). */
function elements(items: Item[], set: string): string[] {
  const s = ofTable(items, 'podnet', 'set').find((x) => x.name === set);
  return ((s?.elem as unknown[]) ?? []).map((e) => {
    const p = (e as { prefix?: { addr: string; len: number } }).prefix;
    return p ? `${p.addr}/${p.len}` : String(e);
  });
}
/** Packets counted by the rule of inet podnet whose comment is `comment`. */
function counted(items: Item[], comment: string): number {
  const r = ofTable(items, 'podnet', 'rule').find((x) => x.comment === comment);
  if (!r) return -1;
  const c = (r.expr as Record<string, { packets: number }>[]).find((e) => e.counter);
  return c?.counter?.packets ?? -1;
}
const ruleHandles = (items: Item[]) => ofTable(items, 'podnet', 'rule').map((r) => `${r.chain}#${r.handle}`);

/** Starts the UDP receiver in `ns`; what it hears is collected under `ns.name`. */
async function listen(ns: Netns): Promise<void> {
  const child = lab.logged(ns.spawn(process.execPath, [PEER, 'listen', String(PORT)]), `${ns.name}.peer.log`);
  const got: { tag: string; from: string }[] = [];
  heard.set(ns.name, got);
  let buf = '';
  let listening = false;
  child.stdout?.on('data', (b: Buffer) => {
    buf += b.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = JSON.parse(buf.slice(0, i)) as { tag: string; from: string; listening?: number };
      buf = buf.slice(i + 1);
      if (line.listening) listening = true;
      else got.push(line);
    }
  });
  await waitFor(`receiver in ${ns.name}`, () => listening);
}

let seq = 0;
/** Sends a tagged datagram from `from` to `host`; resolves with the source address the receiver saw. */
async function sourceSeen(from: Netns, to: Netns, host: string): Promise<string> {
  const tag = `t${++seq}`;
  await from.run(process.execPath, [PEER, 'send', host, String(PORT), tag]);
  const m = await waitFor(
    `${tag} heard in ${to.name}`,
    () => heard.get(to.name)?.find((x) => x.tag === tag),
    {
      timeoutMs: 20_000,
    },
  );
  return m.from;
}

/** Sends from `from` to `host`; resolves once the drop rule `comment` counted it; returns the tag. */
async function dropped(from: Netns, host: string, comment: string): Promise<string> {
  const before = counted(await ruleset(node), comment);
  expect(before).toBeGreaterThanOrEqual(0);
  const tag = `t${++seq}`;
  await from.run(process.execPath, [PEER, 'send', host, String(PORT), tag]);
  await waitFor(
    `${tag} counted by "${comment}"`,
    async () => counted(await ruleset(node), comment) >= before + 3,
    { timeoutMs: 20_000 },
  );
  return tag;
}

/** A pod namespace wired like podnet's CNI does: /32 and /128 on eth0, the node as gateway. */
async function addPod(tag: string, ips: { v4: string; v6?: string }): Promise<Netns> {
  const pod = await lab.nets.create(tag);
  const host = `pn${tag}`;
  await vethPair(node, host, pod, 'eth0');
  await node.sysctl(`net.ipv4.conf.${host}.proxy_arp`, 1);
  await node.ip('addr', 'add', 'fe80::1/64', 'dev', host, 'nodad');
  await node.ip('route', 'add', `${ips.v4}/32`, 'dev', host);
  await pod.ip('addr', 'add', `${ips.v4}/32`, 'dev', 'eth0');
  await pod.ip('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
  await pod.ip('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
  if (ips.v6) {
    await node.ip('-6', 'route', 'add', `${ips.v6}/128`, 'dev', host);
    await pod.ip('-6', 'addr', 'add', `${ips.v6}/128`, 'dev', 'eth0', 'nodad');
    await pod.ip('-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0');
  }
  return pod;
}

// Tables of others in the node's namespace: podnet must leave them exactly as they are.
const OTHERS = `table inet hostfw {
  chain forward { type filter hook forward priority filter; policy accept; ct state invalid drop; }
}
table ip nat {
  chain postrouting { type nat hook postrouting priority srcnat; ip saddr 192.0.2.0/24 masquerade; }
}
`;
let othersBefore = '';
const others = async () =>
  `${await node.run('nft', ['-j', 'list', 'table', 'inet', 'hostfw'])}${await node.run('nft', ['-j', 'list', 'table', 'ip', 'nat'])}`;

async function status(): Promise<AgentStatus> {
  return JSON.parse(
    await node.run('curl', ['-sf', '--max-time', '3', `${STATUS_URL}/status`]),
  ) as AgentStatus;
}

beforeAll(async () => {
  await lab.start([AGENT], { cidr: '10.60.0.0/16', blockSize: 26 });
  const pools = lab.client.resource(IPPOOL);
  await pools.patch('pods', { spec: { natOutgoing: true } });
  await pools.create({ metadata: { name: 'pods6' }, spec: { cidr: 'fd60::/48', natOutgoing: true } });
  await pools.create({ metadata: { name: 'iso' }, spec: { cidr: '10.61.0.0/16', isolated: true } });
  await lab.client.resource(BGPCONFIGURATION).create({
    metadata: { name: 'default' },
    spec: { natOutgoingExclusions: [{ cidr: '198.51.100.0/24' }] },
  });
  await lab.client.core
    .createNamespace({ body: { metadata: { name: 'podnet-system' } } })
    .catch(() => undefined);

  node = await lab.nets.create('node');
  ext = await lab.nets.create('ext');
  await vethPair(node, 'eth0', ext, 'eth0');
  await node.ip('addr', 'add', `${NODE4}/24`, 'dev', 'eth0');
  await node.ip('-6', 'addr', 'add', `${NODE6}/64`, 'dev', 'eth0', 'nodad');
  await ext.ip('addr', 'add', `${EXT4}/24`, 'dev', 'eth0');
  await ext.ip('-6', 'addr', 'add', `${EXT6}/64`, 'dev', 'eth0', 'nodad');
  await ext.ip('addr', 'add', `${EXCLUDED4}/32`, 'dev', 'lo');
  // Like a real node, a default route (kernel proxy ARP answers the pods' 169.254.1.1 only for
  // destinations the node has a route to).
  await node.ip('route', 'add', 'default', 'via', EXT4);
  // The external side knows the way to the isolated pool (so only podnet's rule stops it), not to the others.
  await ext.ip('route', 'add', '10.61.0.0/16', 'via', NODE4);
  await node.sysctl('net.ipv4.ip_forward', 1);
  await node.sysctl('net.ipv6.conf.all.forwarding', 1);
  pod1 = await addPod('p1', POD1);
  pod2 = await addPod('p2', POD2);
  iso = await addPod('iso', ISO);
  await node.run('nft', ['-f', '-'], { input: OTHERS });
  othersBefore = await others();

  ({ kubeconfig } = await lab.kubeconfigIn(node, 'nat-node'));
  await lab.client.core.createNode({
    body: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'nat-node' } },
  });
  agent = lab.logged(
    node.spawn(
      process.execPath,
      lab.agentArgv('nat-node', kubeconfig, ['--netfilter-resync-interval', '1s', '--log-level', 'debug']),
    ),
    'nat-node.agent.log',
  );
  await waitFor(
    'inet podnet with the pools',
    async () => {
      const rs = await ruleset(node);
      return (
        elements(rs, 'nat4').includes('10.60.0.0/16') && elements(rs, 'isolated4').includes('10.61.0.0/16')
      );
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  for (const ns of [ext, pod2, iso]) await listen(ns);
}, 180_000);

afterAll(() => lab.stop(), 60_000);

describe('netfilter in namespaces (podnet-agent, real nft)', () => {
  it('programs the sets of the contract from the IPPools, the Node and the BGPConfiguration', async () => {
    const rs = await ruleset(node);
    expect(elements(rs, 'pools4').sort()).toEqual(['10.60.0.0/16', '10.61.0.0/16']);
    expect(elements(rs, 'nat6')).toEqual(['fd60::/48']);
    expect(elements(rs, 'natexcl4')).toEqual(['198.51.100.0/24']);
    expect(elements(rs, 'cluster4').sort()).toEqual(['10.60.0.0/16', '10.61.0.0/16', NODE4]);
    expect(
      ofTable(rs, 'podnet', 'chain')
        .map((c) => c.name)
        .sort(),
      // np-forward: NetworkPolicy's base chain (docs/network-policy.md), there with --network-policy on
    ).toEqual(['forward', 'np-forward', 'postrouting']);
  });

  it('masquerades pod traffic to outside every pool to the node address (IPv4 and IPv6)', async () => {
    expect(await sourceSeen(pod1, ext, EXT4)).toBe(NODE4);
    expect(await sourceSeen(pod1, ext, EXT6)).toBe(NODE6);
  });

  it('never translates pod to pod, nor traffic to a natOutgoingExclusions CIDR', async () => {
    expect(await sourceSeen(pod1, pod2, POD2.v4)).toBe(POD1.v4);
    expect(await sourceSeen(pod1, ext, EXCLUDED4)).toBe(POD1.v4);
  });

  it('isolates a pool: its pod cannot reach outside, outside cannot reach it, the node can', async () => {
    const out = await dropped(iso, EXT4, 'isolated IPv4: pods to outside the cluster');
    const inn = await dropped(ext, ISO.v4, 'isolated IPv4: outside the cluster to pods');
    expect(await sourceSeen(node, iso, ISO.v4)).toBe(NODE4);
    // The drops were counted by the kernel; the receivers never heard those tags.
    expect(heard.get(ext.name)?.some((x) => x.tag === out)).toBe(false);
    expect(heard.get(iso.name)?.some((x) => x.tag === inn)).toBe(false);
  });

  it('stops translating a pool switched to natOutgoing false at runtime, by element update, without a restart', async () => {
    const before = await ruleset(node);
    await lab.client.resource(IPPOOL).patch('pods', { spec: { natOutgoing: false } });
    await waitFor(
      '10.60.0.0/16 out of nat4',
      async () => !elements(await ruleset(node), 'nat4').includes('10.60.0.0/16'),
      {
        timeoutMs: 30_000,
      },
    );
    expect(await sourceSeen(pod1, ext, EXT4)).toBe(POD1.v4);
    const after = await ruleset(node);
    expect(ruleHandles(after)).toEqual(ruleHandles(before));
    expect(elements(after, 'nat6')).toEqual(['fd60::/48']);
    expect(await sourceSeen(pod1, ext, EXT6)).toBe(NODE6);
    expect(agent.exitCode).toBeNull();
    await lab.client.resource(IPPOOL).patch('pods', { spec: { natOutgoing: true } });
    await waitFor(
      '10.60.0.0/16 back in nat4',
      async () => elements(await ruleset(node), 'nat4').includes('10.60.0.0/16'),
      {
        timeoutMs: 30_000,
      },
    );
    expect(await sourceSeen(pod1, ext, EXT4)).toBe(NODE4);
  });

  it('repairs `nft flush table inet podnet` by hand on the next resync', async () => {
    const repairs = (await status()).netfilter?.driftRepairs ?? 0;
    const rules = ofTable(await ruleset(node), 'podnet', 'rule').length;
    await node.run('nft', ['flush', 'table', 'inet', 'podnet']);
    expect(ofTable(await ruleset(node), 'podnet', 'rule')).toEqual([]);
    await waitFor(
      'the rules back',
      async () => ofTable(await ruleset(node), 'podnet', 'rule').length === rules,
      {
        timeoutMs: 30_000,
      },
    );
    expect(elements(await ruleset(node), 'nat4')).toEqual(['10.60.0.0/16']);
    const s = await waitFor(
      'the repair counted',
      async () => {
        const st = await status();
        return (st.netfilter?.driftRepairs ?? 0) > repairs ? st : undefined;
      },
      { timeoutMs: 30_000 },
    );
    expect(s.netfilter).toMatchObject({ table: 'inet podnet', applied: true });
    expect(await sourceSeen(pod1, ext, EXT4)).toBe(NODE4);
  });

  it('reports an IPPool with isolated and natOutgoing in its Ready condition and treats it as isolated', async () => {
    const pools = lab.client.resource(IPPOOL);
    await pools.create({
      metadata: { name: 'both' },
      spec: { cidr: '10.62.0.0/16', isolated: true, natOutgoing: true },
    });
    await waitFor(
      '10.62.0.0/16 isolated',
      async () => elements(await ruleset(node), 'isolated4').includes('10.62.0.0/16'),
      {
        timeoutMs: 30_000,
      },
    );
    expect(elements(await ruleset(node), 'nat4')).not.toContain('10.62.0.0/16');
    const cond = await waitFor(
      'the Ready condition of IPPool both',
      async () =>
        (await pools.get('both')).status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'False'),
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(cond.reason).toBe('ConflictingFields');
    expect(cond.message).toContain('spec.isolated: true and spec.natOutgoing: true');
    await pools.delete('both');
    await waitFor(
      '10.62.0.0/16 gone',
      async () => !elements(await ruleset(node), 'pools4').includes('10.62.0.0/16'),
      {
        timeoutMs: 30_000,
      },
    );
  });

  it('leaves the other tables of the namespace exactly as they were', async () => {
    expect(await others()).toBe(othersBefore);
  });

  it('without the nft program: keeps running, not ready with NetfilterNotApplied; the table of the last run stays', async () => {
    await lab.procs.stop(agent);
    // A PATH with `ip` (for `ip netns exec`) and nothing else: the agent cannot find `nft`.
    const bin = join(lab.work, 'bin-without-nft');
    mkdirSync(bin, { recursive: true });
    symlinkSync((await run('sh', ['-c', 'command -v ip'])).trim(), join(bin, 'ip'));
    agent = lab.logged(
      node.spawn(
        process.execPath,
        lab.agentArgv('nat-node', kubeconfig, ['--netfilter-resync-interval', '1s']),
        {
          env: { ...process.env, PATH: bin },
        },
      ),
      'nat-node-2.agent.log',
    );
    const s = await waitFor(
      'NetfilterNotApplied',
      async () => {
        const st = await status();
        return st.node.address && st.conditions.find((c) => c.type === 'NetfilterNotApplied')
          ? st
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(s.ready).toBe(false);
    expect(s.readiness.reasons.join()).toMatch(/netfilter table inet podnet not applied: cannot run nft/);
    expect(s.netfilter).toMatchObject({ applied: false });
    expect(agent.exitCode).toBeNull();
    await waitFor('the log line', () =>
      readFileSync(join(lab.work, 'nat-node-2.agent.log'), 'utf8').includes(
        'cannot program inet podnet: the nft program could not be run',
      ),
    );
    // The routing side still runs (the status endpoint answers with the node identity), and the
    // table the previous agent left keeps translating.
    expect(s.node.address).toMatch(new RegExp(`^${NODE4.replaceAll('.', '\\.')}(/24)?$`));
    expect(await sourceSeen(pod1, ext, EXT4)).toBe(NODE4);
  });
});
