import type { AgentStatus } from '@podnet/agent';
import { startStatusServer } from '@podnet/agent';
import { cleanupStale, type Netns, NetnsSet } from '@podnet/testkit';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { runCtl } from './cli-main.js';

const now = Date.now();
const status: AgentStatus = {
  version: 1,
  node: { name: 'node-a', address: '10.0.0.11', asNumber: 64512, routerId: '10.0.0.11', listenPort: 179 },
  ready: false,
  readiness: {
    synced: true,
    routesApplied: true,
    sessionsUp: false,
    reasons: ['sessions not established: 10.0.0.1 Active'],
  },
  datastore: { synced: true, reachable: true },
  conditions: [
    {
      type: 'NextHopUnreachable',
      subject: '10.1.0.12',
      message: 'no route to next hop 10.1.0.12; its paths are left out of best-path selection',
      blocksReadiness: false,
    },
  ],
  netfilter: { table: 'inet podnet', generation: 3, applied: true, driftRepairs: 1 },
  // Not the default 213: podnetctl dumps the protocol the agent says it uses (--route-protocol).
  routeProtocol: { number: 150, name: 'podnet' },
  peers: [
    {
      address: '10.0.0.12',
      port: 179,
      type: 'mesh',
      source: 'node-to-node-mesh',
      nodeName: 'node-b',
      localAs: 64512,
      remoteAs: 64512,
      passive: true,
      state: 'Established',
      since: new Date(now - 125_000).toISOString(),
      prefixesReceived: 2,
      prefixesAdvertised: 1,
      // From an attempt before the session came up: not shown while it is Established.
      lastError: 'connect ECONNREFUSED 10.0.0.12:179',
    },
    {
      address: '10.0.0.1',
      port: 179,
      type: 'node',
      source: 'tor-a',
      localAs: 64512,
      remoteAs: 65000,
      passive: false,
      state: 'Active',
      since: new Date(now - 5_000).toISOString(),
      prefixesReceived: 0,
      prefixesAdvertised: 0,
      lastError: 'connect ECONNREFUSED 10.0.0.1:179',
    },
  ],
  routes: [
    { dst: '10.244.1.0/26', type: 'blackhole', source: 'owned block', state: 'installed' },
    {
      dst: '10.244.1.5/32',
      type: 'local',
      source: 'pod default/web',
      iface: 'pn0123456789a',
      state: 'installed',
    },
    // The agent's last dump held it; it has since been deleted by hand (not in the namespace).
    { dst: '10.244.2.0/26', type: 'remote', source: 'bgp', via: ['10.0.0.12'], state: 'installed' },
    // The kernel holds it with another next hop than the agent wants.
    { dst: '10.244.4.0/26', type: 'remote', source: 'bgp', via: ['10.0.0.14'], state: 'applied' },
    {
      dst: '10.244.1.6/32',
      type: 'local',
      source: 'pod default/db',
      iface: 'pn0123456789b',
      state: 'pending',
      detail: 'interface-missing',
    },
  ],
  advertisements: [
    { prefix: '10.244.1.0/26', nextHop: '10.0.0.11', communities: [], largeCommunities: [], source: 'block' },
  ],
  arp: { mode: 'userspace', interfaces: ['pn0123456789a'], replies: 3 },
  problems: [],
  startedAt: new Date(now - 600_000).toISOString(),
};

let url = '';
let close: () => Promise<void> = async () => {};
const nets = new NetnsSet();
let ns: Netns;
beforeAll(async () => {
  await cleanupStale();
  ns = await nets.create('ctlroutes');
  for (const [name, addr] of [
    ['eth0', '10.0.0.11/24'],
    ['pn0123456789a', undefined],
  ] as const) {
    await ns.ip('link', 'add', name, 'type', 'veth', 'peer', 'name', `${name.slice(0, 10)}-p`);
    await ns.ip('link', 'set', `${name.slice(0, 10)}-p`, 'up');
    await ns.ip('link', 'set', name, 'up');
    if (addr) await ns.ip('addr', 'add', addr, 'dev', name);
  }
  await ns.ip('route', 'add', 'blackhole', '10.244.1.0/26', 'proto', '150');
  await ns.ip('route', 'add', '10.244.1.5/32', 'dev', 'pn0123456789a', 'scope', 'link', 'proto', '150');
  await ns.ip('route', 'add', 'blackhole', '10.244.9.0/26', 'proto', '150');
  await ns.ip('route', 'add', '10.244.4.0/26', 'via', '10.0.0.13', 'proto', '150');
  // Routes of another protocol (213 included: not this agent's) are not podnet's and not listed.
  await ns.ip('route', 'add', '10.244.3.0/26', 'via', '10.0.0.13', 'proto', 'static');
  await ns.ip('route', 'add', '10.244.8.0/26', 'via', '10.0.0.13', 'proto', '213');
  const srv = await startStatusServer(
    '127.0.0.1:0',
    {
      live: () => true,
      status: () => status,
      metrics: async () => ({ contentType: 'text/plain', body: '' }),
    },
    pino({ level: 'silent' }),
  );
  url = srv.url;
  close = srv.close;
});
afterAll(async () => {
  await close();
  await nets.destroy();
});

async function ctlEnv(env: Record<string, string>, ...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCtl(argv, { env, stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr };
}
const ctl = (...argv: string[]) => ctlEnv({}, ...argv);

describe('podnetctl against an agent status endpoint', () => {
  it('node status prints an aligned peer table with type, state, since, prefixes and last error', async () => {
    const r = await ctl('node', 'status', '--agent', url);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('Node node-a  address 10.0.0.11  AS 64512  router ID 10.0.0.11');
    expect(lines[1]).toMatch(/^Ready: no — sessions not established/);
    const header = lines[3]!;
    expect(header).toMatch(/^PEER\s+TYPE\s+AS\s+STATE\s+SINCE\s+IN\s+OUT\s+INFO$/);
    expect(lines[4]).toMatch(/^10\.0\.0\.12\s+mesh\s+64512\s+Established\s+2m\d+s\s+2\s+1\s+node node-b$/);
    expect(lines[5]).toMatch(/^10\.0\.0\.1\s+node\s+65000\s+Active\s+\ds\s+0\s+0\s+connect ECONNREFUSED/);
    // Columns line up: every row's STATE starts where the header's does.
    const col = header.indexOf('STATE');
    expect(lines[4]!.slice(col)).toMatch(/^Established/);
    expect(lines[5]!.slice(col)).toMatch(/^Active/);
  });

  it('node status lists the data-path conditions under the peers', async () => {
    const r = await ctl('node', 'status', '--agent', url);
    const lines = r.stdout.split('\n');
    const at = lines.indexOf('Conditions:');
    expect(at).toBeGreaterThan(5);
    expect(lines[at + 1]).toBe(
      '  - NextHopUnreachable 10.1.0.12: no route to next hop 10.1.0.12; its paths are left out of best-path selection',
    );
  });

  it('node status ends with the state of the inet podnet table', async () => {
    const r = await ctl('node', 'status', '--agent', url);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe(
      'Netfilter: inet podnet applied, generation 3, 1 drift repair',
    );
  });

  it.each(['json', 'yaml'])('node status --output %s carries the peers', async (fmt) => {
    const r = await ctl('node', 'status', '--agent', url, '-o', fmt);
    expect(r.code).toBe(0);
    const doc = (fmt === 'json' ? JSON.parse(r.stdout) : parse(r.stdout)) as { peers: { address: string }[] };
    expect(doc.peers.map((p) => p.address)).toEqual(['10.0.0.12', '10.0.0.1']);
  });

  it("routes shows the agent's state beside a KERNEL column read from the namespace: present, absent, differs, stale", async () => {
    const r = await ctl('routes', '--agent', url, '--netns', ns.name);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('protocol podnet, 150; see `ip route show proto 150`');
    expect(r.stdout).not.toMatch(/10\.244\.[38]\.0/);
    expect(r.stdout).toMatch(/^DESTINATION\s+TYPE\s+VIA\s+SOURCE\s+STATE\s+KERNEL$/m);
    expect(r.stdout).toMatch(
      /^10\.244\.1\.0\/26\s+blackhole\s+\(drop\)\s+owned block\s+installed\s+present$/m,
    );
    expect(r.stdout).toMatch(
      /^10\.244\.1\.5\/32\s+local\s+dev pn0123456789a\s+pod default\/web\s+installed\s+present$/m,
    );
    expect(r.stdout).toMatch(/^10\.244\.2\.0\/26\s+remote\s+10\.0\.0\.12\s+bgp\s+installed\s+absent$/m);
    expect(r.stdout).toMatch(
      /^10\.244\.4\.0\/26\s+remote\s+10\.0\.0\.14\s+bgp\s+applied\s+differs \(10\.0\.0\.13\)$/m,
    );
    expect(r.stdout).toMatch(
      /^10\.244\.1\.6\/32\s+local\s+dev pn0123456789b\s+pod default\/db\s+pending\s+absent$/m,
    );
    expect(r.stdout).toMatch(
      /^10\.244\.9\.0\/26\s+blackhole\s+\(drop\)\s+\(not desired\)\s+stale\s+present$/m,
    );
    expect(r.stdout).toContain(
      'Kernel: 2 of 5 desired routes present; 2 the agent counts as in the kernel are not: 10.244.2.0/26, 10.244.4.0/26',
    );
    expect(r.stdout).toContain('Announced over BGP: 10.244.1.0/26 (block)');
  });

  it('routes says the kernel was not read, rather than guessing, when the namespace cannot be opened', async () => {
    const r = await ctl('routes', '--agent', url, '--netns', 'pnt-no-such-namespace');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^note: kernel not read: cannot read the kernel's routes/m);
    expect(r.stdout).toMatch(/^10\.244\.2\.0\/26\s+remote\s+10\.0\.0\.12\s+bgp\s+installed\s+not-read$/m);
    expect(r.stdout).toContain(
      'Kernel: not read (see the note); the KERNEL column is unknown, not compared.',
    );
    const json = await ctl('routes', '--agent', url, '--netns', 'pnt-no-such-namespace', '-o', 'json');
    const doc = JSON.parse(json.stdout) as { kernelRead: boolean; routes: { kernel: string }[] };
    expect(doc.kernelRead).toBe(false);
    expect(new Set(doc.routes.map((x) => x.kernel))).toEqual(new Set(['not-read']));
  });

  it('routes still lists the kernel routes when the agent is down (protocol from PODNET_ROUTE_PROTOCOL, else 213), and says why sources are missing', async () => {
    const down = ['routes', '--agent', 'http://127.0.0.1:9', '--netns', ns.name, '-o', 'json'];
    const r = await ctlEnv({ PODNET_ROUTE_PROTOCOL: '150' }, ...down);
    expect(r.code).toBe(0);
    type Doc = { protocol: { number: number }; routes: { dst: string; state: string }[]; notes: string[] };
    const doc = JSON.parse(r.stdout) as Doc;
    expect(doc.protocol.number).toBe(150);
    expect(doc.routes.map((x) => x.dst).sort()).toEqual([
      '10.244.1.0/26',
      '10.244.1.5/32',
      '10.244.4.0/26',
      '10.244.9.0/26',
    ]);
    expect(doc.notes[0]).toMatch(/no sources: cannot reach the podnet agent/);
    expect(doc.notes[1]).toBe(
      'kernel read for protocol 150 (PODNET_ROUTE_PROTOCOL): the agent did not say which it uses',
    );
    const byDefault = JSON.parse((await ctl(...down)).stdout) as Doc;
    expect(byDefault.protocol.number).toBe(213);
    expect(byDefault.routes.map((x) => x.dst)).toEqual(['10.244.8.0/26']);
    const bad = await ctlEnv({ PODNET_ROUTE_PROTOCOL: '300' }, ...down);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('PODNET_ROUTE_PROTOCOL "300": use a route protocol number from 1 to 255');
  });

  it('says what to do when the agent cannot be reached', async () => {
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const r = await ctl('node', 'status', '--agent', `http://127.0.0.1:${port}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot reach the podnet agent at http://127.0.0.1:${port} (ECONNREFUSED)`);
    expect(r.stderr).toMatch(/--agent URL/);
  });

  it.each([
    [['bogus'], /unknown command "bogus"/],
    [['node', 'status', '-o', 'xml'], /--output "xml": use table, json or yaml/],
    [['ipam', 'release'], /needs --ip ADDRESS/],
    [['--nope'], /Unknown option/],
  ])('rejects %j with usage help and exit code 2', async (argv, msg) => {
    const r = await ctl(...argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(msg);
  });
});
