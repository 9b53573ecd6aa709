import { Ipam, memoryDatastore } from '@podnet/ipam';
import type { Table } from '@podnet/nft';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../bgp/src/__fixtures__/clock.js';
import { Agent, type AgentDeps } from './agent.js';
import { loadConfig } from './config.js';
import type { Advertisement, ArpInterface, DesiredPeer, DesiredRoute, NodeView, RibEntry } from './model.js';
import type { NetfilterPort, NetfilterStatus } from './netfilter-sync.js';
import type { PolicyPort } from './policy-sync.js';
import type { ArpPort, BgpPort, DatastorePort, DatastoreSnapshot, PeerStatus, RoutesPort } from './ports.js';
import type { ServiceProblem, ServiceView } from './service-routes.js';
import type { ServicePort } from './service-sync.js';
import { startStatusServer } from './status.js';

/** The netfilter port, recording the tables it is given; `fail` makes it report an error. */
class FakeNetfilter implements NetfilterPort {
  tables: { table: Table; resync: boolean }[] = [];
  fail: string | undefined;
  async sync(table: Table, opts: { resync: boolean }) {
    this.tables.push({ table, resync: opts.resync });
  }
  status(): NetfilterStatus {
    return {
      table: 'inet podnet',
      generation: this.tables.length,
      applied: !this.fail,
      ...(this.fail ? { lastError: this.fail } : {}),
      driftRepairs: 0,
    };
  }
  set(name: string): string[] {
    return this.tables.at(-1)?.table.sets?.find((s) => s.name === name)?.elements ?? [];
  }
}

class FakeDatastore implements DatastorePort {
  snap: DatastoreSnapshot = {
    nodes: [],
    pools: [{ name: 'p', cidr: '10.244.0.0/16', blockSize: 26, disabled: false, disableBGPExport: false }],
    bgpConfigs: [],
    peers: [],
    secrets: {},
    blocks: [],
    affinities: [],
    pods: [],
  };
  isSynced = true;
  onChange: () => void = () => {};
  annotations: Record<string, string>[] = [];
  async start(onChange: () => void) {
    this.onChange = onChange;
  }
  synced() {
    return this.isSynced;
  }
  reachable() {
    return true;
  }
  snapshot() {
    return this.snap;
  }
  async getNode(name: string) {
    return this.snap.nodes.find((n) => n.name === name);
  }
  async annotateNode(name: string, a: Record<string, string>) {
    this.annotations.push(a);
    const n = this.snap.nodes.find((x) => x.name === name)!;
    n.ipv4 = a['podnet.io/ipv4-address'];
    this.onChange();
  }
  async stop() {}
  set(patch: Partial<DatastoreSnapshot>) {
    this.snap = { ...this.snap, ...patch };
    this.onChange();
  }
}

class FakeBgp implements BgpPort {
  log: string[] = [];
  ribEntries: RibEntry[] = [];
  state = new Map<string, PeerStatus>();
  cb: () => void = () => {};
  stopped: { graceful: boolean } | undefined;
  /** The identity each start() was given. */
  identities: Parameters<BgpPort['start']>[0][] = [];
  async start(...args: Parameters<BgpPort['start']>) {
    this.log.push('start');
    this.identities.push(args[0]);
  }
  async addPeer(p: DesiredPeer) {
    this.log.push(`add ${p.key}`);
    this.state.set(p.key, {
      key: p.key,
      state: 'Active',
      since: 0,
      prefixesReceived: 0,
      prefixesAdvertised: 0,
    });
  }
  async updatePeer(p: DesiredPeer) {
    this.log.push(`update ${p.key}`);
  }
  async removePeer(p: DesiredPeer) {
    this.log.push(`remove ${p.key}`);
    this.state.delete(p.key);
  }
  async originate(a: Advertisement) {
    this.log.push(`originate ${a.prefix}`);
  }
  async withdraw(a: Advertisement) {
    this.log.push(`withdraw ${a.prefix}`);
  }
  rib() {
    return this.ribEntries;
  }
  relevant: ((prefix: string) => boolean) | undefined;
  onRibChange(cb: () => void, relevant?: (prefix: string) => boolean) {
    this.cb = cb;
    this.relevant = relevant;
  }
  peers() {
    return [...this.state.values()];
  }
  async stop(o: { graceful: boolean }) {
    this.stopped = o;
  }
  establishAll() {
    for (const s of this.state.values()) s.state = 'Established';
  }
}

class FakeRoutes implements RoutesPort {
  started = false;
  desired: DesiredRoute[] = [];
  /** The desired set the first kernel reconcile (start) ran with. */
  desiredAtStart: DesiredRoute[] | undefined;
  stopped: { keepRoutes: boolean } | undefined;
  families: (4 | 6)[] | undefined;
  /** What the route programmer reports as breaking the data path (e.g. a read-only sysctl). */
  notReady: string[] = [];
  async start() {
    this.started = true;
    this.desiredAtStart = [...this.desired];
  }
  async setDesired(r: DesiredRoute[], families?: (4 | 6)[]) {
    this.desired = r;
    this.families = families;
  }
  async resync() {}
  status() {
    return {
      applied: true,
      routes: this.desired.map((r) => ({ dst: r.dst, state: 'installed' as const })),
      ...(this.notReady.length ? { notReady: this.notReady } : {}),
    };
  }
  async stop(o: { keepRoutes: boolean }) {
    this.stopped = o;
  }
}

class FakeArp implements ArpPort {
  mode = 'userspace' as const;
  ifaces = new Map<string, ArpInterface>();
  async start() {}
  async addInterface(i: ArpInterface) {
    this.ifaces.set(i.iface, i);
  }
  async removeInterface(i: ArpInterface) {
    this.ifaces.delete(i.iface);
  }
  replies() {
    return 0;
  }
  async stop() {}
}

const node = (name: string, ip?: string): NodeView => ({
  name,
  labels: {},
  ...(ip ? { ipv4: `${ip}/24` } : {}),
});
const wait = async (what: string, f: () => boolean) => {
  for (let i = 0; i < 100; i++) {
    if (f()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
};

const waitAsync = async (what: string, f: () => Promise<boolean>) => {
  for (let i = 0; i < 150; i++) {
    if (await f()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
};

function setup(argv: string[] = [], extra: Partial<AgentDeps> = {}) {
  const { config } = loadConfig({ argv: ['--node-name', 'node-a', ...argv], env: {} });
  const ds = new FakeDatastore();
  const bgp = new FakeBgp();
  const routes = new FakeRoutes();
  const arp = new FakeArp();
  const agent = new Agent({
    config,
    log: pino({ level: 'silent' }),
    datastore: ds,
    bgp,
    routes,
    arp,
    routeHoldoffMs: 60_000,
    interfaces: async () => [
      { name: 'eth0', up: true, addresses: [{ cidr: '10.0.0.11/24', family: 4, scope: 'global' }] },
    ],
    ...extra,
  });
  return { agent, ds, bgp, routes, arp };
}

let current: Agent | undefined;
afterEach(async () => {
  await current?.stop();
  current = undefined;
});

describe('Agent netfilter', () => {
  it('keeps inet podnet in step with the pools at runtime, and is not ready while the table is not applied', async () => {
    const nf = new FakeNetfilter();
    const t = setup([], { netfilter: nf });
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11')];
    t.ds.snap.pools = [
      {
        name: 'p',
        cidr: '10.244.0.0/16',
        blockSize: 26,
        disabled: false,
        disableBGPExport: false,
        natOutgoing: true,
      },
    ];
    await t.agent.start();
    await wait('table synced', () => nf.set('nat4').includes('10.244.0.0/16'));
    expect(nf.set('cluster4')).toEqual(['10.0.0.11/32', '10.244.0.0/16']);
    t.ds.set({
      pools: [
        {
          name: 'p',
          cidr: '10.244.0.0/16',
          blockSize: 26,
          disabled: false,
          disableBGPExport: false,
          natOutgoing: false,
        },
      ],
    });
    await wait('pool no longer translated', () => nf.set('nat4').length === 0);
    expect(nf.set('pools4')).toEqual(['10.244.0.0/16']);
    expect(nf.tables.every((x) => !x.resync)).toBe(true);
    t.bgp.establishAll();
    await wait('ready', () => t.agent.status().ready);
    nf.fail = 'nft -f refused the transaction (exit 1): Error: Could not process rule';
    const s = t.agent.status();
    expect(s.ready).toBe(false);
    expect(s.readiness.reasons.join()).toContain('netfilter table inet podnet not applied: nft -f refused');
    expect(s.conditions).toContainEqual(
      expect.objectContaining({ type: 'NetfilterNotApplied', blocksReadiness: true }),
    );
    expect(s.netfilter).toMatchObject({ applied: false });
  });

  it('reports a pool with isolated and natOutgoing in /status problems and never masquerades it', async () => {
    const nf = new FakeNetfilter();
    const t = setup([], { netfilter: nf });
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11')];
    t.ds.snap.pools = [
      {
        name: 'both',
        cidr: '10.244.0.0/16',
        blockSize: 26,
        disabled: false,
        disableBGPExport: false,
        natOutgoing: true,
        isolated: true,
      },
    ];
    await t.agent.start();
    await wait('table synced', () => nf.set('isolated4').length === 1);
    expect(nf.set('nat4')).toEqual([]);
    expect(t.agent.status().problems.join()).toMatch(
      /IPPool both: spec\.isolated: true and spec\.natOutgoing: true/,
    );
  });
});

describe('Agent NetworkPolicy', () => {
  it('merges the policy fragment into inet podnet once the policy watches listed, with the node addresses', async () => {
    const nf = new FakeNetfilter();
    const asked: string[][] = [];
    const policy: PolicyPort & { ready: boolean } = {
      ready: false,
      synced() {
        return this.ready;
      },
      fragment(nodeAddresses) {
        asked.push(nodeAddresses);
        return {
          chains: [{ name: 'np-forward', rules: [] }],
          sets: [{ name: 'np-node4', type: 'ipv4_addr', elements: nodeAddresses }],
          maps: [],
        };
      },
      problems: () => [
        'networkpolicy x/bad: spec.ingress[0].from[0].ipBlock.cidr: "10.0.0.0/33" is not a CIDR',
      ],
    };
    const t = setup([], { netfilter: nf, policy });
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11')];
    await t.agent.start();
    await wait('running', () => t.agent.status().readiness.reasons.every((r) => !r.includes('agent ')));
    await t.agent.reconcileNetfilter(false);
    expect(nf.tables, 'nothing applied before the policy watches listed').toEqual([]);
    policy.ready = true;
    await t.agent.reconcileNetfilter(false);
    const table = nf.tables.at(-1)!.table;
    expect(table.chains.map((c) => c.name)).toEqual(['postrouting', 'forward', 'np-forward']);
    expect(nf.set('np-node4')).toEqual(['10.0.0.11']);
    expect(nf.set('pools4')).toEqual(['10.244.0.0/16']);
    expect(asked.at(-1)).toEqual(['10.0.0.11']);
    expect(t.agent.status().problems.join()).toContain('networkpolicy x/bad');
  });
});

describe('Agent', () => {
  it('autodetects the node address, writes it back, and meshes with the other nodes', async () => {
    const t = setup();
    current = t.agent;
    t.ds.snap.nodes = [node('node-a'), node('node-b', '10.0.0.12'), node('node-c', '10.0.0.13')];
    await t.agent.start();
    await wait('peers added', () => t.bgp.log.filter((l) => l.startsWith('add')).length === 2);
    expect(t.ds.annotations).toEqual([{ 'podnet.io/ipv4-address': '10.0.0.11/24' }]);
    expect(t.bgp.log).toEqual(['start', 'add 10.0.0.12:179', 'add 10.0.0.13:179']);
  });

  it('keeps the kernel untouched until every session is up, then reconciles routes', async () => {
    const t = setup();
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11'), node('node-b', '10.0.0.12')];
    t.ds.snap.blocks = [{ cidr: '10.244.1.0/26', affinity: 'node-a' }];
    t.ds.snap.affinities = [{ node: 'node-a', cidr: '10.244.1.0/26', state: 'confirmed' }];
    await t.agent.start();
    await wait('peer added', () => t.bgp.state.size === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(t.routes.started).toBe(false);
    expect(t.agent.status().ready).toBe(false);
    expect(t.agent.status().readiness.reasons.join()).toMatch(/waiting for BGP sessions/);
    t.bgp.establishAll();
    t.bgp.ribEntries = [{ prefix: '10.244.2.0/26', nextHops: ['10.0.0.12'] }];
    t.bgp.cb();
    await wait('routes started', () => t.routes.started && t.routes.desired.length === 2);
    expect(t.routes.desired.map((r) => `${r.type} ${r.dst}`)).toEqual([
      'blackhole 10.244.1.0/26',
      'remote 10.244.2.0/26',
    ]);
    // The first kernel reconcile already knows every route: none of the routes a graceful restart
    // kept is deleted and re-added.
    expect(t.routes.desiredAtStart?.map((r) => `${r.type} ${r.dst}`)).toEqual([
      'blackhole 10.244.1.0/26',
      'remote 10.244.2.0/26',
    ]);
    expect(t.bgp.log).toContain('originate 10.244.1.0/26');
    await wait('ready', () => t.agent.status().ready);
  });

  it('stays ready when a peer drops after the first reconcile (a rolling update restarts one agent at a time)', async () => {
    const t = setup();
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11'), node('node-b', '10.0.0.12')];
    await t.agent.start();
    await wait('peer added', () => t.bgp.state.size === 1);
    t.bgp.establishAll();
    t.bgp.cb();
    await wait('ready', () => t.agent.status().ready);
    // node-b's agent restarts: its session drops (graceful restart keeps its routes here).
    t.bgp.state.get('10.0.0.12:179')!.state = 'Active';
    t.bgp.cb();
    const s = t.agent.status();
    expect(s.peers.find((p) => p.address === '10.0.0.12')?.state).toBe('Active');
    expect(s.readiness.sessionsUp).toBe(false);
    expect(s.ready, s.readiness.reasons.join('; ')).toBe(true);
  });

  it('is not ready while the route programmer says the data path is broken, and ready once it is not', async () => {
    const t = setup();
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11')];
    t.ds.snap.pools = [
      { name: 'v4', cidr: '10.244.0.0/16', blockSize: 26, disabled: false, disableBGPExport: false },
    ];
    t.routes.notReady = ['sysctl net.ipv4.ip_forward is not 1 and cannot be set (EROFS)'];
    await t.agent.start();
    await wait('routes started', () => t.routes.started);
    // The pools' families go to the route programmer: IPv4 only here.
    expect(t.routes.families).toEqual([4]);
    expect(t.agent.status().ready).toBe(false);
    expect(t.agent.status().readiness.reasons).toContain(
      'sysctl net.ipv4.ip_forward is not 1 and cannot be set (EROFS)',
    );
    t.routes.notReady = [];
    expect(t.agent.status().ready).toBe(true);
  });

  it('does not start the route programmer from a pass that began before the speaker started', async () => {
    const t = setup();
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11'), node('node-b', '10.0.0.12')];
    t.ds.snap.pods = [{ namespace: 'ns', name: 'p', ips: ['10.244.1.2'], iface: 'pn00000000001' }];
    t.bgp.ribEntries = [{ prefix: '10.244.2.0/26', nextHops: ['10.0.0.12'] }];
    // The first pass (a datastore event during the boot) stalls in the ARP step until the boot is done.
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const add = t.arp.addInterface.bind(t.arp);
    t.arp.addInterface = async (i) => {
      await gate;
      await add(i);
    };
    await t.agent.start();
    t.ds.onChange();
    await wait('boot done', () => t.bgp.log.includes('start'));
    await new Promise((r) => setTimeout(r, 50));
    release();
    await wait('peer added', () => t.bgp.state.size === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(t.routes.started, 'routes wait for the session and its End-of-RIB').toBe(false);
    t.bgp.establishAll();
    t.bgp.cb();
    await wait('routes started', () => t.routes.started);
    expect(t.routes.desiredAtStart?.map((r) => `${r.type} ${r.dst}`)).toEqual([
      'local 10.244.1.2/32',
      'remote 10.244.2.0/26',
    ]);
  });

  it('counts sessions reset for going over the receive limit in podnet_bgp_max_prefixes_exceeded_total', async () => {
    const t = setup();
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11'), node('node-b', '10.0.0.12')];
    await t.agent.start();
    await wait('peer added', () => t.bgp.state.size === 1);
    const metric = async () =>
      (
        await t.agent.metrics.registry.getSingleMetricAsString('podnet_bgp_max_prefixes_exceeded_total')
      ).trim();
    t.bgp.state.get('10.0.0.12:179')!.maxPrefixesExceeded = 2;
    await waitAsync('counter at 2', async () => (await metric()).endsWith('{peer="10.0.0.12:179"} 2'));
    t.bgp.state.get('10.0.0.12:179')!.maxPrefixesExceeded = 3;
    await waitAsync('counter at 3', async () => (await metric()).endsWith('{peer="10.0.0.12:179"} 3'));
  });

  it('keeps serving ARP and programming routes while one peer cannot be added or removed', async () => {
    const t = setup();
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11'), node('node-b', '10.0.0.12')];
    t.ds.snap.peers = [{ name: 'tor', peerIP: '10.0.0.1', asNumber: 65000 }];
    t.ds.snap.pods = [{ namespace: 'ns', name: 'p', ips: ['10.244.1.2'], iface: 'pn00000000001' }];
    const add = t.bgp.addPeer.bind(t.bgp);
    t.bgp.addPeer = async (p) => {
      if (p.source === 'tor') throw new Error('peer already configured');
      await add(p);
    };
    t.bgp.removePeer = async () => {
      throw new Error('no such peer');
    };
    await t.agent.start();
    await wait('ARP interface served', () => t.arp.ifaces.has('pn00000000001'));
    await wait('mesh peer added', () => t.bgp.state.size === 1);
    t.bgp.establishAll();
    t.bgp.cb();
    // The ToR never comes up, so the routes start after the holdoff; removing node-b (whose
    // removal fails) must not stop the next passes either.
    t.ds.set({ nodes: [node('node-a', '10.0.0.11')], pods: [] });
    await wait('ARP interface gone', () => !t.arp.ifaces.has('pn00000000001'));
  });

  it('applies a BGPPeer change to that session only and withdraws a block whose affinity goes', async () => {
    const t = setup();
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11'), node('node-b', '10.0.0.12')];
    t.ds.snap.peers = [{ name: 'tor', peerIP: '10.0.0.1', asNumber: 65000 }];
    t.ds.snap.blocks = [{ cidr: '10.244.1.0/26', affinity: 'node-a' }];
    t.ds.snap.affinities = [{ node: 'node-a', cidr: '10.244.1.0/26', state: 'confirmed' }];
    await t.agent.start();
    await wait('two peers', () => t.bgp.state.size === 2);
    t.bgp.log.length = 0;
    t.ds.set({ peers: [{ name: 'tor', peerIP: '10.0.0.1', asNumber: 65001 }] });
    await wait('update', () => t.bgp.log.length > 0);
    expect(t.bgp.log).toEqual(['update 10.0.0.1:179']);
    t.bgp.log.length = 0;
    t.ds.set({ affinities: [] });
    await wait('withdraw', () => t.bgp.log.some((l) => l.startsWith('withdraw')));
    // Only the block is withdrawn: no peer changes (the ToR's originated-only rule does not name
    // prefixes), and the mesh peer is not touched.
    expect(t.bgp.log).toEqual(['withdraw 10.244.1.0/26']);
  });

  it('serves pod interfaces to the ARP responder as pods come and go', async () => {
    const t = setup();
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11')];
    await t.agent.start();
    t.ds.set({ pods: [{ namespace: 'ns', name: 'p', ips: ['10.244.1.2'], iface: 'pn00000000001' }] });
    await wait('arp iface', () => t.arp.ifaces.has('pn00000000001'));
    t.ds.set({ pods: [] });
    await wait('arp iface gone', () => t.arp.ifaces.size === 0);
  });

  it('stops gracefully: keeps kernel routes and asks the speaker for graceful restart', async () => {
    const t = setup();
    t.ds.snap.nodes = [node('node-a', '10.0.0.11')];
    await t.agent.start();
    await wait('routes started', () => t.routes.started);
    await t.agent.stop({ graceful: true });
    expect(t.routes.stopped).toEqual({ keepRoutes: true });
    expect(t.bgp.stopped).toEqual({ graceful: true });
  });

  it('keeps its state while the datastore is not synced and catches up when it is', async () => {
    const t = setup();
    current = t.agent;
    t.ds.isSynced = false;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11'), node('node-b', '10.0.0.12')];
    await t.agent.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(t.bgp.log).toEqual([]);
    expect(t.agent.status().readiness.reasons).toContain('datastore not synced');
    t.ds.isSynced = true;
    await wait('peer', () => t.bgp.state.size === 1);
  });
});

describe('Agent start-up default objects', () => {
  it('computes the node identity from the BGPConfiguration the start-up created, once the informers show it', async () => {
    const { config } = loadConfig({
      argv: ['--node-name', 'node-a', '--api-retry-interval', '30s'],
      env: {},
    });
    const ds = new FakeDatastore();
    ds.snap.nodes = [node('node-a', '10.0.0.11')];
    // The informer delivers the created object only on the third read after the creation.
    let reads = 0;
    const snapshot = ds.snapshot.bind(ds);
    ds.snapshot = () => {
      if (++reads === 3) ds.snap.bgpConfigs = [{ name: 'default', asNumber: 65001 }];
      return snapshot();
    };
    const bgp = new FakeBgp();
    const agent = new Agent({
      config,
      log: pino({ level: 'silent' }),
      datastore: ds,
      bgp,
      routes: new FakeRoutes(),
      arp: new FakeArp(),
      routeHoldoffMs: 60_000,
      defaultObjects: Promise.resolve({ created: ['BGPConfiguration/default'] }),
    });
    current = agent;
    await agent.start();
    await wait('the speaker to start', () => bgp.identities.length > 0);
    expect(bgp.identities.map((n) => n.asNumber)).toEqual([65001]);
    expect(reads).toBeGreaterThanOrEqual(3);
  });
});

describe('Agent IPAM garbage collection', () => {
  it('runs ipam.gc with the configured grace and counts what it released', async () => {
    const { config } = loadConfig({ argv: ['--node-name', 'node-a', '--ipam-gc-grace', '2m'], env: {} });
    const ds = new FakeDatastore();
    ds.snap.nodes = [node('node-a', '10.0.0.11')];
    const calls: number[] = [];
    const agent = new Agent({
      config,
      log: pino({ level: 'silent' }),
      datastore: ds,
      bgp: new FakeBgp(),
      routes: new FakeRoutes(),
      arp: new FakeArp(),
      ipamGc: async (grace) => {
        calls.push(grace);
        if (calls.length === 2) throw new Error('API down');
        return { releasedHandles: ['podnet.c1'], releasedBlocks: [] };
      },
    });
    current = agent;
    await agent.start();
    await wait('running', () => agent.status().node.address === '10.0.0.11');
    agent.setIpamGcLeader(true);
    await agent.runIpamGc();
    await agent.runIpamGc();
    expect(calls).toEqual([120_000, 120_000]);
    const m = await agent.metrics.registry.getSingleMetricAsString('podnet_ipam_gc_released_total');
    expect(m).toContain('podnet_ipam_gc_released_total{kind="handle"} 1');
  });
});

describe('Agent IPAM pool usage metrics', () => {
  it('exports every pool size and addresses in use on the lease holder, and drops them when the lease goes', async () => {
    const ipamDs = memoryDatastore();
    await ipamDs.pools.create({
      metadata: { name: 'small' },
      spec: { cidr: '10.245.0.0/24', blockSize: 28 },
    });
    const ipam = new Ipam({ datastore: ipamDs });
    for (const pod of ['p1', 'p2', 'p3'])
      await ipam.allocate({ handle: pod, node: 'node-a', attrs: { namespace: 'default', pod } });
    const { config } = loadConfig({ argv: ['--node-name', 'node-a'], env: {} });
    const ds = new FakeDatastore();
    ds.snap.nodes = [node('node-a', '10.0.0.11')];
    const agent = new Agent({
      config,
      log: pino({ level: 'silent' }),
      datastore: ds,
      bgp: new FakeBgp(),
      routes: new FakeRoutes(),
      arp: new FakeArp(),
      ipamGc: async () => ({ releasedHandles: [], releasedBlocks: [] }),
      ipamUsage: () => ipam.usage(),
    });
    current = agent;
    await agent.start();
    await wait('running', () => agent.status().node.address === '10.0.0.11');
    const scrape = async () =>
      (await agent.metrics.registry.metrics()).split('\n').filter((l) => /^podnet_ipam_pool_/.test(l));
    await agent.runIpamGc();
    expect(await scrape()).toEqual([]); // not the holder: nothing exported
    agent.setIpamGcLeader(true);
    await agent.runIpamGc();
    expect(await scrape()).toEqual([
      'podnet_ipam_pool_size_addresses{pool="small"} 256',
      'podnet_ipam_pool_used_addresses{pool="small"} 3',
    ]);
    await ipam.releaseByHandle('p1');
    await agent.runIpamGc();
    expect(await scrape()).toContain('podnet_ipam_pool_used_addresses{pool="small"} 2');
    agent.setIpamGcLeader(false);
    expect(await scrape()).toEqual([]);
  });
});

describe('Agent IPAM garbage collection on the lease holder only', () => {
  async function gcPair(interval: string) {
    const clock = new FakeClock();
    const ipamDs = memoryDatastore();
    await ipamDs.pools.create({
      metadata: { name: 'default' },
      spec: { cidr: '10.244.0.0/16', nodeSelector: 'all()' },
    });
    // A leaked address: its pod does not exist.
    await new Ipam({ datastore: ipamDs }).allocate({
      handle: 'gone',
      node: 'node-a',
      attrs: { namespace: 'default', pod: 'gone' },
    });
    const passes: { node: string; released: string[] }[] = [];
    const agents = new Map<string, Agent>();
    for (const [name, ip] of [
      ['node-a', '10.0.0.11'],
      ['node-b', '10.0.0.12'],
    ] as const) {
      const argv = ['--node-name', name, '--ipam-gc-interval', interval, '--ipam-gc-grace', '15s'];
      const { config } = loadConfig({ argv, env: {} });
      const ds = new FakeDatastore();
      ds.snap.nodes = [node('node-a', '10.0.0.11'), node('node-b', '10.0.0.12')];
      const ipam = new Ipam({ datastore: ipamDs });
      const agent = new Agent({
        config,
        log: pino({ level: 'silent' }),
        datastore: ds,
        bgp: new FakeBgp(),
        routes: new FakeRoutes(),
        arp: new FakeArp(),
        clock,
        ipamGc: async (graceMs) => {
          const r = await ipam.gc({ graceMs, now: clock.now() });
          passes.push({ node: name, released: r.releasedHandles });
          return r;
        },
        ipamGcForget: () => ipam.gcForget(),
      });
      agents.set(name, agent);
      await agent.start();
      await wait(`${name} running`, () => agent.status().node.address === ip);
    }
    // The elector, faked: hands the Lease from one holder to the next, as startClusterStatus's duties do.
    let holder: string | undefined;
    const handTo = (next: string) => {
      if (holder) agents.get(holder)!.setIpamGcLeader(false);
      holder = next;
      agents.get(next)!.setIpamGcLeader(true);
    };
    const gauge = async (name: string) =>
      (await agents.get(name)!.metrics.registry.getSingleMetricAsString('podnet_ipam_gc_leader'))
        .split('\n')
        .at(-1);
    return { clock, passes, agents, handTo, gauge };
  }

  it('runs only on the holder, stops on loss, starts on the new holder, and each term waits a whole grace', async () => {
    const t = await gcPair('10s');
    try {
      const step = async (n: number) => {
        t.clock.advance(10_000);
        await wait(`${n} GC passes`, () => t.passes.length >= n);
      };
      t.handTo('node-a');
      expect(await t.gauge('node-a')).toBe('podnet_ipam_gc_leader 1');
      expect(await t.gauge('node-b')).toBe('podnet_ipam_gc_leader 0');
      await step(1); // node-a sees the leaked address once
      t.handTo('node-b');
      expect(await t.gauge('node-a')).toBe('podnet_ipam_gc_leader 0');
      await step(2); // node-b's first pass: seen once by node-b, not released
      await step(3); // 10 s later: still inside node-b's grace
      t.handTo('node-a'); // node-a saw it 20 s ago, in its earlier term
      await step(4); // a new term: seen once again, not released
      await step(5);
      await step(6); // 20 s after this term first saw it: released
      expect(t.passes).toEqual([
        { node: 'node-a', released: [] },
        { node: 'node-b', released: [] },
        { node: 'node-b', released: [] },
        { node: 'node-a', released: [] },
        { node: 'node-a', released: [] },
        { node: 'node-a', released: ['gone'] },
      ]);
    } finally {
      for (const a of t.agents.values()) await a.stop();
    }
  });

  it('--ipam-gc-interval 0 keeps it off even on the holder', async () => {
    const t = await gcPair('0');
    try {
      const timers = t.clock.pending;
      t.handTo('node-a');
      expect(t.clock.pending).toBe(timers);
      t.clock.advance(3_600_000);
      await t.agents.get('node-a')!.runIpamGc();
      expect(t.passes).toEqual([]);
      expect(await t.gauge('node-a')).toBe('podnet_ipam_gc_leader 0');
    } finally {
      for (const a of t.agents.values()) await a.stop();
    }
  });
});

describe('status endpoint', () => {
  it('serves /livez, /readyz with reasons, /status JSON and podnet_* metrics', async () => {
    const t = setup();
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11'), node('node-b', '10.0.0.12')];
    await t.agent.start();
    await wait('peer', () => t.bgp.state.size === 1);
    const srv = await startStatusServer(
      '127.0.0.1:0',
      {
        live: () => t.agent.live(),
        status: () => t.agent.status(),
        metrics: async () => ({
          contentType: t.agent.metrics.registry.contentType,
          body: await t.agent.metrics.registry.metrics(),
        }),
      },
      pino({ level: 'silent' }),
    );
    try {
      expect((await fetch(`${srv.url}/livez`)).status).toBe(200);
      const ready = await fetch(`${srv.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.text()).toMatch(/not ready: .*10\.0\.0\.12 Active/);
      const st = (await (await fetch(`${srv.url}/status`)).json()) as {
        peers: { address: string; type: string }[];
      };
      expect(st.peers).toMatchObject([{ address: '10.0.0.12', type: 'mesh' }]);
      await new Promise((r) => setTimeout(r, 1100));
      const metrics = await (await fetch(`${srv.url}/metrics`)).text();
      expect(metrics).toMatch(/podnet_bgp_peer_established\{peer="10.0.0.12:179",type="mesh"\} 0/);
      expect(metrics).toContain('podnet_route_reconcile_duration_seconds');
      expect((await fetch(`${srv.url}/nope`)).status).toBe(404);
    } finally {
      await srv.close();
    }
  });
});

/** Services and EndpointSlices as the ServiceSync hands them over; `synced` as its informers say. */
class FakeServices implements ServicePort {
  isSynced = false;
  snap: ReturnType<ServicePort['snapshot']> = { services: [], slices: [] };
  reported: ServiceProblem[][] = [];
  onChange: () => void = () => {};
  start(onChange: () => void) {
    this.onChange = onChange;
  }
  synced() {
    return this.isSynced;
  }
  snapshot() {
    return this.snap;
  }
  report(p: ServiceProblem[]) {
    this.reported.push(p);
  }
  async stop() {}
  set(patch: Partial<ReturnType<ServicePort['snapshot']>>, synced = true) {
    this.snap = { ...this.snap, ...patch };
    this.isSynced = synced;
    this.onChange();
  }
}

describe('Agent Service announcements', () => {
  const web: ServiceView = {
    namespace: 'shop',
    name: 'web',
    type: 'LoadBalancer',
    clusterIPs: ['10.96.0.10'],
    externalIPs: [],
    loadBalancerIPs: ['192.0.2.10'],
    externalTrafficPolicy: 'Local',
    annotations: {},
  };
  const slice = (nodes: string[]) => ({
    namespace: 'shop',
    name: 'web-1',
    service: 'web',
    addressType: 'IPv4',
    readyNodes: nodes,
  });

  it('configures no session and announces nothing until the Services are listed (peers keep the restarted node’s service routes meanwhile), then sends the /32 with the first announcements', async () => {
    const services = new FakeServices();
    const t = setup([], { services });
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11'), node('node-b', '10.0.0.12')];
    t.ds.snap.bgpConfigs = [{ name: 'default', serviceLoadBalancerIPs: ['192.0.2.0/24'] }];
    // What the Services were when the speaker was first told anything about peers or routes.
    const seen: boolean[] = [];
    for (const m of ['addPeer', 'originate', 'withdraw'] as const) {
      const f = t.bgp[m].bind(t.bgp) as (x: never) => Promise<void>;
      (t.bgp as unknown as Record<string, unknown>)[m] = (x: never) => {
        seen.push(services.isSynced);
        return f(x);
      };
    }
    await t.agent.start();
    await wait('speaker started', () => t.bgp.log.includes('start'));
    t.ds.set({});
    services.set({ services: [web], slices: [slice(['node-a'])] });
    await wait('/32 announced', () => t.bgp.log.includes('originate 192.0.2.10/32'));
    // The /32 is in the speaker's table before the peer is configured in the same pass: however
    // fast the session comes up, its first UPDATEs (and End-of-RIB) carry it.
    const added = t.bgp.log.findIndex((l) => l.startsWith('add '));
    expect(added).toBeGreaterThan(0);
    expect(t.bgp.log.indexOf('originate 192.0.2.10/32')).toBeGreaterThan(-1);
    expect(t.bgp.log.indexOf('originate 192.0.2.10/32')).toBeLessThan(added);
    expect(t.bgp.log.filter((l) => l.startsWith('withdraw'))).toEqual([]);
    // No session was configured and nothing announced or withdrawn before the Services were listed.
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every(Boolean)).toBe(true);
  });

  it('withdraws the /32 when the last local endpoint goes, on the slice event, and reports an invalid annotation', async () => {
    const services = new FakeServices();
    const t = setup([], { services });
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11')];
    t.ds.snap.bgpConfigs = [{ name: 'default', serviceLoadBalancerIPs: ['192.0.2.0/24'] }];
    services.set({
      services: [{ ...web, annotations: { 'podnet.io/bgp-local-preference': '-1' } }],
      slices: [slice(['node-a', 'node-b'])],
    });
    await t.agent.start();
    await wait('/32 announced', () => t.bgp.log.includes('originate 192.0.2.10/32'));
    expect(services.reported.at(-1)?.map((p) => [p.field, p.value])).toEqual([
      ['podnet.io/bgp-local-preference', '-1'],
    ]);
    services.set({ slices: [slice(['node-b'])] });
    await wait('/32 withdrawn', () => t.bgp.log.includes('withdraw 192.0.2.10/32'));
    expect(t.bgp.log).not.toContain('withdraw 192.0.2.0/24');
  });

  it('recomputes a burst of Service changes once per gap, and applies the last of them', async () => {
    const services = new FakeServices();
    const t = setup([], { services, servicePassGapMs: 200 });
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11')];
    t.ds.snap.bgpConfigs = [{ name: 'default', serviceLoadBalancerIPs: ['192.0.2.0/24'] }];
    services.set({ services: [web], slices: [slice(['node-a'])] });
    await t.agent.start();
    await wait('/32 announced', () => t.bgp.log.includes('originate 192.0.2.10/32'));
    const passes = async () => (await t.agent.metrics.recomputes.get()).values[0]?.value ?? 0;
    await new Promise((r) => setTimeout(r, 250));
    const before = await passes();
    // 20 changes 10 ms apart: the first starts a pass after the short delay (20 ms), the others
    // wait for the gap (one pass per 200 ms), where without it each would have its own pass.
    const t0 = performance.now();
    for (let i = 1; i <= 20; i++) {
      services.set({ services: [{ ...web, loadBalancerIPs: [`192.0.2.${10 + i}`] }] });
      await new Promise((r) => setTimeout(r, 10));
    }
    await wait('the last address announced', () => t.bgp.log.includes('originate 192.0.2.30/32'));
    const ran = (await passes()) - before;
    // One at the start, then one per gap over the time the changes took (more on a slow machine).
    const gaps = Math.ceil((performance.now() - t0) / 200);
    expect(ran).toBeGreaterThanOrEqual(2);
    expect(ran).toBeLessThanOrEqual(1 + gaps);
    expect(ran).toBeLessThan(20);
  });

  it('makes one pass of a Service change and the status change that follows it', async () => {
    for (const [delay, want] of [
      [100, 1],
      [0, 2],
    ] as const) {
      const services = new FakeServices();
      const t = setup([], { services, servicePassGapMs: 0, servicePassDelayMs: delay });
      current = t.agent;
      t.ds.snap.nodes = [node('node-a', '10.0.0.11')];
      t.ds.snap.bgpConfigs = [{ name: 'default', serviceLoadBalancerIPs: ['192.0.2.0/24'] }];
      services.set({ services: [], slices: [slice(['node-a'])] });
      await t.agent.start();
      await wait('a first pass', () => t.bgp.log.includes('start'));
      await new Promise((r) => setTimeout(r, 150));
      const passes = async () => (await t.agent.metrics.recomputes.get()).values[0]?.value ?? 0;
      const before = await passes();
      // A new Service, then the allocator's address in its status 5 ms later.
      services.set({ services: [{ ...web, loadBalancerIPs: [] }] });
      await new Promise((r) => setTimeout(r, 5));
      services.set({ services: [web] });
      await wait('/32 announced', () => t.bgp.log.includes('originate 192.0.2.10/32'));
      await new Promise((r) => setTimeout(r, 150));
      expect((await passes()) - before, `delay ${delay} ms`).toBe(want);
      await t.agent.stop({ graceful: false });
    }
  });

  it('asks for a pass only on best-path changes inside a pool', async () => {
    const t = setup();
    current = t.agent;
    t.ds.snap.nodes = [node('node-a', '10.0.0.11')];
    t.ds.snap.pools = [
      { name: 'v4', cidr: '10.244.0.0/16', blockSize: 26, disabled: false, disableBGPExport: false },
      { name: 'v6', cidr: 'fd00:10:244::/48', blockSize: 122, disabled: false, disableBGPExport: false },
    ];
    const relevant = (p: string) => t.bgp.relevant?.(p);
    await t.agent.start();
    await wait('the pools read', () => relevant('198.18.0.5/32') === false);
    expect(relevant('10.244.2.0/26')).toBe(true);
    expect(relevant('fd00:10:244:0:1::/122')).toBe(true);
    expect(relevant('10.245.0.0/26')).toBe(false);
    expect(relevant('fd00:10:245::/122')).toBe(false);
    // A new pool is read by the pass its own change starts.
    t.ds.set({
      pools: [
        ...t.ds.snap.pools,
        { name: 'lb', cidr: '10.245.0.0/16', blockSize: 26, disabled: false, disableBGPExport: false },
      ],
    });
    await wait('the new pool read', () => relevant('10.245.0.0/26') === true);
  });
});
