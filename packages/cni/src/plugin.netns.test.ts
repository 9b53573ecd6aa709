// The plugin as a real process, run as a runtime runs it (environment + stdin), inside a node
// namespace this test creates, against pod namespaces it creates and the embedded API server.
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { IPAMHANDLE, IPPOOL, installCrds, KubeClient } from '@podnet/k8s';
import {
  cleanupStale,
  deleteNetns,
  type Netns,
  NetnsSet,
  ProcessGroup,
  type TestCluster,
  testCluster,
  waitFor,
} from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Forward, forwardIntoNetns } from './__fixtures__/forward.js';
import { type ApiEndpoint, apiEndpoint, writePluginKubeconfig } from './__fixtures__/kubeconfig.js';
import { BUNDLE, invoke, ok, PLUGIN, requireBuiltPlugin, SCRIPT } from './__fixtures__/runner.js';
import { hostIfName } from './plan.js';

const NODE = 'node-a';
const POOL_CIDR = '10.77.0.0/16';
const lab = new NetnsSet();
const procs = new ProcessGroup();
let cluster: TestCluster;
let client: KubeClient;
let fwd: Forward;
let node: Netns;
let cacheDir: string;
let scratch: string;
let podSeq = 0;
/**
 * Inside the node namespace the API server (embedded on loopback, or the cluster KUBECONFIG names)
 * is reached through a forwarder at this address, which its certificate does not name: the plugin's
 * kubeconfig carries tls-server-name, as one for a cluster behind a load balancer or NAT would.
 */
const API_IN_NODE = '127.1.2.3';
let api: ApiEndpoint;
let pluginKubeconfig: string;

function kubeconfigVia(name: string, tlsServerName: string | null): string {
  const path = join(scratch, name);
  writePluginKubeconfig(cluster.kubeconfigPath, path, {
    server: `${api.url.protocol}//${API_IN_NODE}:${api.port}`,
    tlsServerName,
  });
  return path;
}

function conf(extra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.0.0',
    name: 'podnet',
    type: 'podnet',
    kubeconfig: pluginKubeconfig,
    nodeName: NODE,
    arpMode: 'kernel',
    cacheDir,
    logLevel: 'warn',
    ...extra,
  };
}

interface TestPod {
  ns: Netns;
  name: string;
  containerId: string;
  ref: { namespace: string; name: string };
}

async function newPod(): Promise<TestPod> {
  podSeq += 1;
  const name = `pod-${podSeq}`;
  const ns = await lab.create(`cnipod${podSeq}`);
  await client.core.createNamespacedPod({
    namespace: 'default',
    body: { metadata: { name }, spec: { nodeName: NODE, containers: [{ name: 'c', image: 'none' }] } },
  });
  return {
    ns,
    name,
    containerId: `c0ffee${podSeq.toString().padStart(4, '0')}`,
    ref: { namespace: 'default', name },
  };
}

const inv = (p: TestPod, command: 'ADD' | 'DEL' | 'CHECK', env?: Record<string, string>) => ({
  command,
  containerId: p.containerId,
  netns: p.ns.path,
  pod: p.ref,
  ...(env ? { env } : {}),
});

async function hostLinks(): Promise<string[]> {
  const links = await node.ipJson<{ ifname: string }[]>('link', 'show');
  return links.map((l) => l.ifname).filter((n) => n.startsWith('pn'));
}

async function handles(): Promise<string[]> {
  return (await client.resource(IPAMHANDLE).list()).items.map((h) => h.spec.handleID);
}

/** The pod's host interface, if it exists. */
async function hostLinkOf(p: TestPod): Promise<string | undefined> {
  const name = hostIfName(p.ref, p.containerId, 'eth0');
  return (await hostLinks()).find((l) => l === name);
}

/** The pod's allocations (IPAM handles). */
async function handlesOf(p: TestPod): Promise<string[]> {
  return (await handles()).filter((h) => h.includes(p.containerId));
}

function podIp(result: Record<string, unknown> | undefined): string {
  const ips = (result?.ips ?? []) as { address: string }[];
  const v4 = ips.find((i) => !i.address.includes(':'));
  if (!v4) throw new Error(`no IPv4 address in result ${JSON.stringify(result)}`);
  return v4.address.split('/')[0]!;
}

beforeAll(async () => {
  requireBuiltPlugin();
  await cleanupStale();
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  await installCrds(client);
  await client
    .resource(IPPOOL)
    .create({ metadata: { name: 'pool-a' }, spec: { cidr: POOL_CIDR, blockSize: 26 } });
  await client
    .resource(IPPOOL)
    .create({ metadata: { name: 'pool-v6' }, spec: { cidr: 'fd77::/48', blockSize: 122 } });
  await client.core.createNode({
    body: { metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } } },
  });
  node = await lab.create('cninode');
  // The node's uplink and default route: the MTU is detected from it, and kernel proxy ARP answers
  // for 169.254.1.1 because it is routable through an interface other than the pod's.
  await node.ip('link', 'add', 'up0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'up1');
  await node.ip('link', 'set', 'up0', 'up');
  await node.ip('link', 'set', 'up1', 'up');
  await node.ip('addr', 'add', '192.0.2.1/24', 'dev', 'up0');
  await node.ip('route', 'add', 'default', 'via', '192.0.2.2', 'dev', 'up0');
  // IPv6 forwarding is global in Linux (the agent's job on a real node).
  await node.sysctl('net.ipv6.conf.all.forwarding', 1);
  cacheDir = mkdtempSync(join(tmpdir(), 'podnet-cni-cache-'));
  scratch = mkdtempSync(join(tmpdir(), 'podnet-cni-scratch-'));
  api = apiEndpoint(cluster.kubeconfigPath);
  fwd = await forwardIntoNetns(node, api.port, api.host, API_IN_NODE);
  pluginKubeconfig = kubeconfigVia('kubeconfig', api.tlsServerName ?? api.host);
}, 120_000);

afterAll(async () => {
  await procs.stopAll();
  await fwd?.close();
  await lab.destroy();
  await cluster?.close();
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('podnet-cni as a process', () => {
  it('answers VERSION with the spec versions it supports, from the launcher and as a script', async () => {
    for (const cmd of [[PLUGIN], [process.execPath, SCRIPT]]) {
      const r = ok(await invoke(node, { command: 'VERSION' }, { cniVersion: '1.1.0' }, cmd), 'VERSION');
      expect(r.json).toEqual({
        cniVersion: '1.1.0',
        supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
      });
    }
  });

  it('gives the same kind of result from the snapshot launcher and from the script', async () => {
    const launcher = readFileSync(PLUGIN, 'utf8');
    // The build falls back to the script when it cannot make a snapshot; here it could.
    expect(launcher).toContain('--snapshot-blob');
    const a = await newPod();
    const b = await newPod();
    const ra = ok(await invoke(node, inv(a, 'ADD'), conf()), 'ADD (launcher)');
    const rb = ok(await invoke(node, inv(b, 'ADD'), conf(), [process.execPath, SCRIPT]), 'ADD (script)');
    const shape = (r: Record<string, unknown> | undefined) =>
      JSON.stringify(r, (k, v) =>
        k === 'address' || k === 'mac' || k === 'name' || k === 'sandbox' ? '*' : v,
      );
    expect(shape(ra.json)).toBe(shape(rb.json));
    ok(await invoke(node, inv(a, 'DEL'), conf(), [process.execPath, SCRIPT]), 'DEL (script)');
    ok(await invoke(node, inv(b, 'DEL'), conf()), 'DEL (launcher)');
    expect(await hostLinkOf(a)).toBeUndefined();
    expect(await hostLinkOf(b)).toBeUndefined();
    expect(await handlesOf(a)).toEqual([]);
    expect(await handlesOf(b)).toEqual([]);
  });

  it('reports STATUS ok while the API is up and the node has a pool', async () => {
    ok(await invoke(node, { command: 'STATUS' }, conf({ cniVersion: '1.1.0' })), 'STATUS');
  });

  it('reaches an API server whose certificate does not name the address dialled, through tls-server-name', async () => {
    if (api.url.protocol !== 'https:')
      throw new Error(`this test needs an HTTPS API server, not ${api.url.href}`);
    const plain = await invoke(
      node,
      { command: 'STATUS' },
      conf({
        cniVersion: '1.1.0',
        kubeconfig: kubeconfigVia('kubeconfig-no-sni', null),
        datastoreTimeoutMs: 5000,
      }),
    );
    expect(plain.code).toBe(1);
    expect(plain.json).toMatchObject({
      code: 50,
      msg: expect.stringContaining('ERR_TLS_CERT_ALTNAME_INVALID'),
    });
    expect(plain.json?.msg).toContain('set tls-server-name');
    // The embedded server's certificate names localhost (a host name: sent as SNI) and 127.0.0.1 (an
    // address: checked, not sent); a real cluster's is checked against its kubeconfig's own name.
    const names = cluster.embedded ? ['localhost', '127.0.0.1'] : [api.tlsServerName ?? api.host];
    for (const name of names) {
      ok(
        await invoke(
          node,
          { command: 'STATUS' },
          conf({ cniVersion: '1.1.0', kubeconfig: kubeconfigVia(`kubeconfig-${name}`, name) }),
        ),
        `STATUS with tls-server-name ${name}`,
      );
    }
    const wrong = await invoke(
      node,
      { command: 'STATUS' },
      conf({
        cniVersion: '1.1.0',
        kubeconfig: kubeconfigVia('kubeconfig-wrong', 'not-the-apiserver.example'),
        datastoreTimeoutMs: 5000,
      }),
    );
    expect(wrong.json).toMatchObject({
      code: 50,
      msg: expect.stringContaining('tls-server-name not-the-apiserver.example'),
    });
  });

  it('succeeds on DEL when the namespace is already gone', async () => {
    const p = await newPod();
    ok(await invoke(node, inv(p, 'ADD'), conf()), 'ADD');
    await deleteNetns(p.ns);
    ok(
      await invoke(node, { command: 'DEL', containerId: p.containerId, pod: p.ref }, conf()),
      'DEL without netns',
    );
    expect(await hostLinkOf(p)).toBeUndefined();
    expect(await handlesOf(p)).toEqual([]);
  });

  it('runs installed elsewhere as one file, with iproute2 when the rtnetlink addon is not beside it', async () => {
    const dir = mkdtempSync(join(scratch, 'opt-cni-bin-'));
    const installed = join(dir, 'podnet-cni.js');
    copyFileSync(BUNDLE, installed);
    const p = await newPod();
    const r = ok(await invoke(node, inv(p, 'ADD'), conf(), [process.execPath, installed]), 'ADD');
    expect(r.stderr).toContain('the rtnetlink addon is missing beside the plugin: using iproute2');
    const ping = await p.ns.exec('ping', ['-c', '1', '-W', '3', '192.0.2.1']);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    // With the addon beside it, the default dataplane is used and nothing is said.
    copyFileSync(join(dirname(BUNDLE), 'podnet_native.node'), join(dir, 'podnet_native.node'));
    const d = ok(await invoke(node, inv(p, 'DEL'), conf(), [process.execPath, installed]), 'DEL');
    expect(d.stderr).toBe('');
    expect(await hostLinkOf(p)).toBeUndefined();
    expect(await handlesOf(p)).toEqual([]);
  });

  it('answers bad input with spec error codes and messages naming the problem', async () => {
    const p = await newPod();
    const bad = await invoke(node, inv(p, 'ADD'), { ...conf(), cniVersion: '2.0.0' });
    expect(bad.json).toMatchObject({ code: 1, msg: expect.stringContaining('"2.0.0" is not supported') });
    const noNetns = await invoke(node, { command: 'ADD', containerId: 'x', pod: p.ref }, conf());
    expect(noNetns.json).toMatchObject({ code: 4, msg: expect.stringContaining('CNI_NETNS') });
    const badMtu = await invoke(node, inv(p, 'ADD'), conf({ mtu: 'big' }));
    expect(badMtu.json).toMatchObject({ code: 7, msg: expect.stringContaining('field mtu = "big"') });
    expect(await hostLinkOf(p)).toBeUndefined();
    expect(await handlesOf(p)).toEqual([]);
  });

  it('runs in a conflist chain with the reference portmap plugin', async () => {
    const p = await newPod();
    const name = 'podnet-chain';
    const mine = ok(await invoke(node, inv(p, 'ADD'), conf({ name })), 'podnet ADD');
    const pm = {
      cniVersion: '1.0.0',
      name,
      type: 'portmap',
      capabilities: { portMappings: true },
      runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp' }] },
    };
    const chained = ok(
      await invoke(node, inv(p, 'ADD'), { ...pm, prevResult: mine.json }, ['/usr/lib/cni/portmap']),
      'portmap ADD',
    );
    // portmap passes podnet's result through.
    expect(chained.json?.ips).toEqual(mine.json?.ips);
    const ip = podIp(chained.json);

    // A TCP service in the pod answers on the node's address through portmap's DNAT.
    const server = procs.add(
      p.ns.spawn(process.execPath, [
        '-e',
        "require('net').createServer((s) => s.end('hello from pod')).listen(8080)",
      ]),
    );
    await waitFor('the pod service to listen', async () =>
      (await p.ns.run('ss', ['-ltn'])).includes(':8080'),
    );
    const reply = await node.run(process.execPath, [
      '-e',
      "const s = require('net').connect(18080, '192.0.2.1'); let d = ''; s.on('data', (b) => (d += b)); s.on('end', () => { process.stdout.write(d); process.exit(0); }); s.on('error', (e) => { console.error(e.message); process.exit(2); }); setTimeout(() => process.exit(3), 5000);",
    ]);
    expect(reply).toBe('hello from pod');
    await procs.stop(server);
    expect(ip.startsWith('10.77.')).toBe(true);

    // (portmap's own CHECK is not run: with an IPv4-only result it looks for its IPv6 chain and fails.)
    ok(await invoke(node, inv(p, 'CHECK'), conf({ name, prevResult: chained.json })), 'podnet CHECK');
    // DEL runs the chain in reverse.
    ok(
      await invoke(node, inv(p, 'DEL'), { ...pm, prevResult: chained.json }, ['/usr/lib/cni/portmap']),
      'portmap DEL',
    );
    ok(await invoke(node, inv(p, 'DEL'), conf({ name })), 'podnet DEL');
    expect(await hostLinkOf(p)).toBeUndefined();
    expect(await handlesOf(p)).toEqual([]);
    expect(await node.run('iptables-save', ['-t', 'nat'])).not.toContain('18080');
  });
});

describe.each(['netlink', 'iproute2'])('the %s dataplane', (dataplane) => {
  it('wires two pods that ping each other through the host', async () => {
    const a = await newPod();
    const b = await newPod();
    const ra = ok(await invoke(node, inv(a, 'ADD'), conf({ dataplane })), 'ADD a');
    const rb = ok(await invoke(node, inv(b, 'ADD'), conf({ dataplane })), 'ADD b');
    const ipA = podIp(ra.json);
    const ipB = podIp(rb.json);
    expect(ipA).not.toBe(ipB);
    expect(ra.json?.cniVersion).toBe('1.0.0');

    // Pod side: eth0 with the /32, the gateway route and the default route; MTU from the uplink.
    const eth0 = await a.ns.ipJson<{ mtu: number; addr_info: { local: string; prefixlen: number }[] }[]>(
      'addr',
      'show',
      'dev',
      'eth0',
    );
    expect(eth0[0]?.mtu).toBe(1450);
    expect(eth0[0]?.addr_info.map((i) => `${i.local}/${i.prefixlen}`)).toContain(`${ipA}/32`);
    const routes = await a.ns.ipJson<{ dst: string; gateway?: string; scope?: string }[]>(
      'route',
      'show',
      'dev',
      'eth0',
    );
    expect(routes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ dst: 'default', gateway: '169.254.1.1' }),
        expect.objectContaining({ dst: '169.254.1.1', scope: 'link' }),
      ]),
    );
    // The gateway is a permanent neighbour at the host veth's MAC: no ARP is needed to reach it.
    const neigh = await a.ns.ipJson<{ dst: string; lladdr?: string; state?: string[] }[]>(
      'neigh',
      'show',
      'dev',
      'eth0',
    );
    expect(neigh).toContainEqual(
      expect.objectContaining({ dst: '169.254.1.1', lladdr: 'ee:ee:ee:ee:ee:ee', state: ['PERMANENT'] }),
    );
    // Host side: pn + 11 hex, MAC ee:ee:ee:ee:ee:ee, a /32 scope link route to the pod.
    const host = ((ra.json?.interfaces ?? []) as { name: string; mac: string }[])[0]!;
    expect(host.name).toMatch(/^pn[0-9a-f]{11}$/);
    const hostLink = await node.ipJson<{ address: string }[]>('link', 'show', 'dev', host.name);
    expect(hostLink[0]?.address).toBe('ee:ee:ee:ee:ee:ee');
    const hostRoutes = await node.ipJson<{ dst: string; scope: string }[]>('route', 'show', 'dev', host.name);
    expect(hostRoutes).toContainEqual(expect.objectContaining({ dst: ipA, scope: 'link' }));
    expect((await node.run('cat', [`/proc/sys/net/ipv4/conf/${host.name}/proxy_arp`])).trim()).toBe('1');

    // The pod carries its IP as annotations.
    const pod = await client.core.readNamespacedPod({ namespace: 'default', name: a.name });
    expect(pod.metadata?.annotations?.['podnet.io/podIP']).toBe(ipA);
    expect(pod.metadata?.annotations?.['podnet.io/podIPs']).toBe(ipA);

    const ping = await a.ns.exec('ping', ['-c', '2', '-W', '3', ipB]);
    // On failure, say what the pod's neighbour table and the node's routes looked like.
    const why =
      ping.code === 0
        ? ''
        : `\npod neigh: ${await a.ns.ip('neigh')}\nnode routes: ${await node.ip('route')}` +
          `\nglobal ARP cache (stat): ${readFileSync('/proc/net/stat/arp_cache', 'utf8').split('\n')[1] ?? ''}`;
    expect(ping.code, ping.stdout + ping.stderr + why).toBe(0);

    ok(await invoke(node, inv(a, 'DEL'), conf({ dataplane })), 'DEL a');
    ok(await invoke(node, inv(b, 'DEL'), conf({ dataplane })), 'DEL b');
  });

  it('leaves no interface, route, allocation or cache entry after ADD/CHECK/DEL cycles', async () => {
    const p = await newPod();
    for (let i = 0; i < 3; i++) {
      const r = ok(await invoke(node, inv(p, 'ADD'), conf({ dataplane })), `ADD #${i}`);
      // A repeated ADD returns the same result.
      const again = ok(await invoke(node, inv(p, 'ADD'), conf({ dataplane })), `ADD again #${i}`);
      expect(again.json).toEqual(r.json);
      ok(await invoke(node, inv(p, 'CHECK'), conf({ dataplane, prevResult: r.json })), `CHECK #${i}`);
      ok(await invoke(node, inv(p, 'DEL'), conf({ dataplane })), `DEL #${i}`);
      // DEL is idempotent.
      ok(await invoke(node, inv(p, 'DEL'), conf({ dataplane })), `DEL again #${i}`);
    }
    expect(await hostLinks()).toEqual([]);
    const routes = await node.ipJson<{ dst: string }[]>('route', 'show');
    expect(routes.filter((r) => r.dst.startsWith('10.77.'))).toEqual([]);
    expect(await handles()).toEqual([]);
    expect(readdirSync(cacheDir).filter((f) => f.endsWith('.json'))).toEqual([]);
    expect(
      await p.ns.ipJson<{ ifname: string }[]>('link', 'show').then((l) => l.map((x) => x.ifname)),
    ).toEqual(['lo']);
    // 15 plugin processes: on a shared, loaded machine this outlasts the default 30 s.
  }, 120_000);

  it('wires dual-stack pods: /128 with a default route via the host veth link-local, ping6 between them', async () => {
    const a = await newPod();
    const b = await newPod();
    const dual = conf({ dataplane, ipam: { assign_ipv6: true } });
    const ra = ok(await invoke(node, inv(a, 'ADD'), dual), 'ADD a');
    const rb = ok(await invoke(node, inv(b, 'ADD'), dual), 'ADD b');
    const v6 = (r: typeof ra) =>
      ((r.json?.ips ?? []) as { address: string }[]).find((i) => i.address.includes(':'));
    expect(v6(ra)?.address).toMatch(/^fd77:.*\/128$/);
    expect(v6(ra)).toMatchObject({ gateway: 'fe80::ecee:eeff:feee:eeee', interface: 1 });
    const routes = await a.ns.ipJson<{ dst: string; gateway?: string }[]>(
      '-6',
      'route',
      'show',
      'dev',
      'eth0',
    );
    expect(routes).toContainEqual(
      expect.objectContaining({ dst: 'default', gateway: 'fe80::ecee:eeff:feee:eeee' }),
    );
    const neigh6 = await a.ns.ipJson<{ dst: string; lladdr?: string; state?: string[] }[]>(
      '-6',
      'neigh',
      'show',
      'dev',
      'eth0',
    );
    expect(neigh6).toContainEqual(
      expect.objectContaining({
        dst: 'fe80::ecee:eeff:feee:eeee',
        lladdr: 'ee:ee:ee:ee:ee:ee',
        state: ['PERMANENT'],
      }),
    );
    const pod = await client.core.readNamespacedPod({ namespace: 'default', name: a.name });
    expect(pod.metadata?.annotations?.['podnet.io/podIPs']).toBe(
      `${podIp(ra.json)},${v6(ra)!.address.split('/')[0]}`,
    );
    const ping = await a.ns.exec('ping', ['-6', '-c', '2', '-W', '3', v6(rb)!.address.split('/')[0]!]);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    ok(await invoke(node, inv(a, 'CHECK'), { ...dual, prevResult: ra.json }), 'CHECK a');
    ok(await invoke(node, inv(a, 'DEL'), dual), 'DEL a');
    ok(await invoke(node, inv(b, 'DEL'), dual), 'DEL b');
    expect(await handlesOf(a)).toEqual([]);
  });

  it('gives a second attachment of a pod (net1) its own host interface; DEL of either leaves the other', async () => {
    const p = await newPod();
    const peer = await newPod();
    const c = conf({ dataplane });
    const hostOf = (r: { json: Record<string, unknown> | undefined }) =>
      ((r.json?.interfaces ?? []) as { name: string }[])[0]!.name;
    const r0 = ok(await invoke(node, inv(p, 'ADD'), c), 'ADD eth0');
    const rPeer = ok(await invoke(node, inv(peer, 'ADD'), c), 'ADD peer');
    const r1 = ok(await invoke(node, { ...inv(p, 'ADD'), ifname: 'net1' }, c), 'ADD net1');
    const [h0, h1] = [hostOf(r0), hostOf(r1)];
    expect(h0).toBe(hostIfName(p.ref, p.containerId, 'eth0'));
    expect(h1).not.toBe(h0);
    expect(await hostLinks()).toEqual(expect.arrayContaining([h0, h1]));
    const podLinks = await p.ns.ipJson<{ ifname: string }[]>('link', 'show');
    expect(podLinks.map((l) => l.ifname).sort()).toEqual(['eth0', 'lo', 'net1']);
    const [ip0, ip1, ipPeer] = [podIp(r0.json), podIp(r1.json), podIp(rPeer.json)];
    // eth0 keeps the pod's default route; net1's sits beside it with a higher metric.
    const route = await p.ns.ipJson<{ dev: string }[]>('route', 'get', ipPeer);
    expect(route[0]?.dev).toBe('eth0');
    const defaults = await p.ns.ipJson<{ dev: string; metric?: number }[]>('route', 'show', 'default');
    expect(defaults.map((d) => d.dev).sort()).toEqual(['eth0', 'net1']);
    const pod = await client.core.readNamespacedPod({ namespace: 'default', name: p.name });
    expect(pod.metadata?.annotations?.['podnet.io/podIP']).toBe(ip0);
    // The Pod records eth0's address (what the agent routes to eth0's host interface) only.
    expect(pod.metadata?.annotations?.['podnet.io/podIPs']).toBe(ip0);
    for (const ip of [ip0, ip1]) {
      const ping = await peer.ns.exec('ping', ['-c', '1', '-W', '3', ip]);
      expect(ping.code, `ping ${ip}: ${ping.stdout}${ping.stderr}`).toBe(0);
    }
    ok(await invoke(node, inv(p, 'CHECK'), { ...c, prevResult: r0.json }), 'CHECK eth0');
    ok(
      await invoke(node, { ...inv(p, 'CHECK'), ifname: 'net1' }, { ...c, prevResult: r1.json }),
      'CHECK net1',
    );

    ok(await invoke(node, { ...inv(p, 'DEL'), ifname: 'net1' }, c), 'DEL net1');
    expect(await hostLinks()).toContain(h0);
    expect(await hostLinks()).not.toContain(h1);
    expect(await handlesOf(p)).toEqual([`podnet.${p.containerId}.eth0`]);
    ok(await invoke(node, inv(p, 'CHECK'), { ...c, prevResult: r0.json }), 'CHECK eth0 after DEL net1');
    const after = await p.ns.exec('ping', ['-c', '1', '-W', '3', ipPeer]);
    expect(after.code, after.stdout + after.stderr).toBe(0);

    // And the other way round: DEL eth0 leaves net1.
    ok(await invoke(node, { ...inv(p, 'ADD'), ifname: 'net1' }, c), 'ADD net1 again');
    ok(await invoke(node, inv(p, 'DEL'), c), 'DEL eth0');
    expect(await hostLinks()).toContain(h1);
    expect(await handlesOf(p)).toEqual([`podnet.${p.containerId}.net1`]);
    ok(await invoke(node, { ...inv(p, 'DEL'), ifname: 'net1' }, c), 'DEL net1 at last');
    ok(await invoke(node, inv(peer, 'DEL'), c), 'DEL peer');
    expect(await handlesOf(p)).toEqual([]);
  }, 120_000);

  it('CHECK reports precisely what differs', async () => {
    const p = await newPod();
    const r = ok(await invoke(node, inv(p, 'ADD'), conf({ dataplane })), 'ADD');
    await p.ns.ip('route', 'del', 'default');
    const c = await invoke(node, inv(p, 'CHECK'), conf({ dataplane, prevResult: r.json }));
    expect(c.code).toBe(1);
    expect(c.json).toMatchObject({ code: 104 });
    expect(String(c.json?.msg)).toContain('pod route 0.0.0.0/0 via 169.254.1.1 dev eth0 is missing');
    ok(await invoke(node, inv(p, 'DEL'), conf({ dataplane })), 'DEL');
  });
});

describe('failure injection', () => {
  async function addWithApiOutage(p: TestPod, outageMs: number | 'until-resumed') {
    const marker = join(scratch, `fp-${p.containerId}`);
    const run = invoke(node, inv(p, 'ADD', { PODNET_CNI_FAILPOINT: `before-annotate:${marker}` }), conf());
    await waitFor('ADD to reach the failpoint', () => readdirSync(scratch).includes(`fp-${p.containerId}`), {
      timeoutMs: 30_000,
    });
    // The veth exists and the address is allocated: now the API server goes away.
    expect(await hostLinkOf(p)).toBeDefined();
    expect(await handlesOf(p)).toHaveLength(1);
    fwd.pause();
    unlinkSync(marker);
    if (outageMs !== 'until-resumed') setTimeout(() => fwd.resume(), outageMs);
    return run;
  }

  it('rolls back the veth and the allocation when the API server stops mid-ADD', async () => {
    const p = await newPod();
    const r = await addWithApiOutage(p, 1000);
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ code: 11 });
    expect(String(r.json?.details ?? '')).not.toContain('rollback incomplete');
    expect(await hostLinkOf(p)).toBeUndefined();
    expect(
      await p.ns.ipJson<{ ifname: string }[]>('link', 'show').then((l) => l.map((x) => x.ifname)),
    ).toEqual(['lo']);
    expect(await handlesOf(p)).toEqual([]);
  });

  it('removes the veth and says what it could not release when the API stays down; DEL finishes', async () => {
    const p = await newPod();
    const r = await addWithApiOutage(p, 'until-resumed');
    fwd.resume();
    expect(r.json).toMatchObject({ code: 11, details: expect.stringContaining('rollback incomplete') });
    expect(await hostLinkOf(p)).toBeUndefined();
    expect(await handlesOf(p)).toHaveLength(1);
    // The runtime calls DEL after a failed ADD: that releases the address.
    ok(await invoke(node, inv(p, 'DEL'), conf()), 'DEL after failed ADD');
    expect(await handlesOf(p)).toEqual([]);
  });

  it('leaves a clashing interface in the pod alone and releases the address when the veth cannot be made', async () => {
    const p = await newPod();
    await p.ns.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0');
    const r = await invoke(node, inv(p, 'ADD'), conf());
    expect(r.json).toMatchObject({ code: 102, msg: expect.stringContaining('eth0') });
    expect(await hostLinkOf(p)).toBeUndefined();
    expect(await handlesOf(p)).toEqual([]);
    const links = await p.ns.ipJson<{ ifname: string }[]>('link', 'show');
    expect(links.map((l) => l.ifname).sort()).toEqual(['eth0', 'lo', 'other0']);
  });

  it('STATUS reports code 50 while the API server is unreachable', async () => {
    fwd.pause();
    try {
      const r = await invoke(
        node,
        { command: 'STATUS' },
        conf({ cniVersion: '1.1.0', datastoreTimeoutMs: 2000 }),
      );
      expect(r.code).toBe(1);
      expect(r.json).toMatchObject({ code: 50, msg: expect.stringContaining('datastore is not reachable') });
    } finally {
      fwd.resume();
    }
  });

  it('fails with code 100 when the pool is exhausted, leaving no interface or allocation behind', async () => {
    const pools = client.resource(IPPOOL);
    await pools.create({ metadata: { name: 'tiny' }, spec: { cidr: '10.78.0.0/30', blockSize: 30 } });
    const tiny = conf({ ipam: { ipv4_pools: ['tiny'] } });
    const added: TestPod[] = [];
    let failed: { pod: TestPod; json: Record<string, unknown> | undefined } | undefined;
    try {
      for (let i = 0; i < 6 && !failed; i++) {
        const p = await newPod();
        const r = await invoke(node, inv(p, 'ADD'), tiny);
        if (r.code === 0) added.push(p);
        else failed = { pod: p, json: r.json };
      }
      expect(added.length).toBeGreaterThan(0);
      expect(failed?.json).toMatchObject({ code: 100, msg: expect.stringContaining('tiny') });
      expect(await hostLinkOf(failed!.pod)).toBeUndefined();
      expect(await handlesOf(failed!.pod)).toEqual([]);
    } finally {
      for (const p of added) ok(await invoke(node, inv(p, 'DEL'), tiny), 'DEL');
      await pools.delete('tiny');
    }
  });

  it('GC releases allocations whose attachment is not valid', async () => {
    const keep = await newPod();
    const drop = await newPod();
    const c11 = conf({ cniVersion: '1.1.0', gcGracePeriodSeconds: 0 });
    ok(await invoke(node, inv(keep, 'ADD'), c11), 'ADD keep');
    ok(await invoke(node, inv(drop, 'ADD'), c11), 'ADD drop');
    ok(
      await invoke(
        node,
        { command: 'GC' },
        { ...c11, 'cni.dev/valid-attachments': [{ containerID: keep.containerId, ifname: 'eth0' }] },
      ),
      'GC',
    );
    expect(await handlesOf(drop)).toEqual([]);
    expect(await hostLinkOf(drop)).toBeUndefined();
    expect(await handlesOf(keep)).toEqual([`podnet.${keep.containerId}.eth0`]);
    expect(await hostLinkOf(keep)).toBeDefined();
    ok(await invoke(node, inv(keep, 'DEL'), c11), 'DEL keep');
  });

  it('GC never releases the allocation of an ADD still in flight', async () => {
    const p = await newPod();
    const c11 = conf({ cniVersion: '1.1.0', gcGracePeriodSeconds: 0 });
    const marker = join(scratch, `fp-gc-${p.containerId}`);
    const adding = invoke(node, inv(p, 'ADD', { PODNET_CNI_FAILPOINT: `before-annotate:${marker}` }), c11);
    await waitFor(
      'ADD to reach the failpoint',
      () => readdirSync(scratch).includes(`fp-gc-${p.containerId}`),
      {
        timeoutMs: 30_000,
      },
    );
    expect(await handlesOf(p)).toHaveLength(1);
    // The runtime listed its attachments before this ADD began: it is not among them.
    ok(await invoke(node, { command: 'GC' }, { ...c11, 'cni.dev/valid-attachments': [] }), 'GC');
    expect(await handlesOf(p)).toHaveLength(1);
    expect(await hostLinkOf(p)).toBeDefined();
    unlinkSync(marker);
    const r = ok(await adding, 'ADD after GC');
    ok(await invoke(node, inv(p, 'CHECK'), { ...c11, prevResult: r.json }), 'CHECK');
    ok(await invoke(node, inv(p, 'DEL'), c11), 'DEL');
  });

  it('GC releases the allocation and the veth of an ADD that died before completing', async () => {
    const p = await newPod();
    const c11 = conf({ cniVersion: '1.1.0', gcGracePeriodSeconds: 0 });
    const marker = join(scratch, `fp-die-${p.containerId}`);
    const adding = invoke(node, inv(p, 'ADD', { PODNET_CNI_FAILPOINT: `before-annotate:${marker}` }), c11);
    await waitFor(
      'ADD to reach the failpoint',
      () => readdirSync(scratch).includes(`fp-die-${p.containerId}`),
      {
        timeoutMs: 30_000,
      },
    );
    // The plugin process (started by this test; the failpoint wrote its pid) dies mid-ADD.
    process.kill(Number(readFileSync(marker, 'utf8')), 'SIGKILL');
    expect((await adding).code).not.toBe(0);
    unlinkSync(marker);
    expect(await handlesOf(p)).toHaveLength(1);
    expect(await hostLinkOf(p)).toBeDefined();
    ok(await invoke(node, { command: 'GC' }, { ...c11, 'cni.dev/valid-attachments': [] }), 'GC');
    expect(await handlesOf(p)).toEqual([]);
    expect(await hostLinkOf(p)).toBeUndefined();
  });

  it('GC leaves the attachments of another runtime using the same network name alone', async () => {
    const p = await newPod();
    const c11 = conf({ cniVersion: '1.1.0', gcGracePeriodSeconds: 0 });
    // A second runtime: the plugin run by another program (bash stays its parent).
    const viaOther = ['/bin/bash', '-c', `${PLUGIN}; exit $?`];
    ok(await invoke(node, inv(p, 'ADD'), c11, viaOther), 'ADD by the other runtime');
    ok(
      await invoke(node, { command: 'GC' }, { ...c11, 'cni.dev/valid-attachments': [] }),
      'GC by this runtime',
    );
    expect(await handlesOf(p)).toHaveLength(1);
    expect(await hostLinkOf(p)).toBeDefined();
    // The runtime that made it does collect it.
    ok(
      await invoke(node, { command: 'GC' }, { ...c11, 'cni.dev/valid-attachments': [] }, viaOther),
      'GC by the other runtime',
    );
    expect(await handlesOf(p)).toEqual([]);
    expect(await hostLinkOf(p)).toBeUndefined();
  }, 120_000);

  it('GC does nothing with disableGC', async () => {
    const p = await newPod();
    const c11 = conf({ cniVersion: '1.1.0', gcGracePeriodSeconds: 0, disableGC: true });
    ok(await invoke(node, inv(p, 'ADD'), c11), 'ADD');
    ok(await invoke(node, { command: 'GC' }, { ...c11, 'cni.dev/valid-attachments': [] }), 'GC');
    expect(await handlesOf(p)).toHaveLength(1);
    ok(await invoke(node, inv(p, 'DEL'), c11), 'DEL');
  });

  it("releases by handle an allocation the API server stored when the allocation's answer is lost", async () => {
    const p = await newPod();
    const marker = join(scratch, `fp-lost-${p.containerId}`);
    const adding = invoke(
      node,
      inv(p, 'ADD', { PODNET_CNI_FAILPOINT: `allocate-response-lost:${marker}:throw` }),
      conf(),
    );
    await waitFor(
      'ADD to reach the failpoint',
      () => readdirSync(scratch).includes(`fp-lost-${p.containerId}`),
      {
        timeoutMs: 30_000,
      },
    );
    // The server has the allocation; the plugin is about to see the call fail.
    expect(await handlesOf(p)).toHaveLength(1);
    unlinkSync(marker);
    const r = await adding;
    expect(r.json).toMatchObject({ code: 11, msg: expect.stringContaining('answer was lost') });
    expect(String(r.json?.details ?? '')).not.toContain('rollback incomplete');
    expect(await handlesOf(p)).toEqual([]);
    expect(await hostLinkOf(p)).toBeUndefined();
  });
});
