import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ResultCache } from './cache.js';
import { diffAttachment } from './check.js';
import { type PluginConfig, parseConfig } from './config.js';
import type { Dataplane, ObservedAttachment } from './dataplane.js';
import type { AllocateRequest, Allocation, Datastore } from './datastore.js';
import type { CniRequest } from './env.js';
import { CniError, CniErrorCode } from './errors.js';
import { runPlugin } from './main.js';
import { type AttachmentPlan, handleId, hostIfName, planAttachment } from './plan.js';
import { cmdAdd, cmdCheck, cmdDel, cmdGc, cmdStatus, type Deps, HANDLE_BUSY, type Log } from './plugin.js';

const quiet: Log = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

/** An in-memory kernel: attachments by host interface name. */
class FakeDataplane implements Dataplane {
  links = new Map<string, { plan: AttachmentPlan; podMac: string }>();
  failCreate: Error | undefined;
  created = 0;
  missingNetns = new Set<string>();
  async checkNetns(netns: string) {
    if (this.missingNetns.has(netns))
      throw new CniError(CniErrorCode.UnknownContainer, `network namespace ${netns} does not exist`);
  }
  async detectMtu() {
    return 1480;
  }
  failConfigure: Error | undefined;
  /** The number of createLink calls still in progress, and the most seen at once with an allocation. */
  linking = 0;
  async createLink(plan: AttachmentPlan) {
    if (this.failCreate) throw this.failCreate;
    if (this.links.has(plan.hostIf))
      throw new CniError(CniErrorCode.DataplaneFailure, 'RTNETLINK answers: File exists');
    this.linking += 1;
    await new Promise((r) => setTimeout(r, 1));
    this.linking -= 1;
    this.created += 1;
    const podMac = `02:00:00:00:00:${(this.created % 256).toString(16).padStart(2, '0')}`;
    this.links.set(plan.hostIf, { plan, podMac });
    return { podMac };
  }
  async configure(plan: AttachmentPlan) {
    if (this.failConfigure) throw this.failConfigure;
    const l = this.links.get(plan.hostIf);
    if (!l) throw new CniError(CniErrorCode.DataplaneFailure, `host interface ${plan.hostIf} is missing`);
    if (l.plan.podAddresses.length > 0) throw new Error(`${plan.hostIf} configured twice`);
    l.plan = plan;
  }
  async remove(t: { hostIf: string }) {
    this.links.delete(t.hostIf);
  }
  async observe(plan: AttachmentPlan): Promise<ObservedAttachment> {
    const l = this.links.get(plan.hostIf);
    if (!l) {
      return {
        hostLink: undefined,
        hostRoutes: [],
        hostSysctls: {},
        netnsExists: true,
        podLink: undefined,
        podAddresses: [],
        podRoutes: [],
        podNeighbours: [],
      };
    }
    const p = l.plan;
    return {
      hostLink: { name: p.hostIf, mac: p.hostMac, mtu: p.mtu, up: true },
      hostRoutes: [...p.hostRoutes],
      hostSysctls: Object.fromEntries(p.hostSysctls.map((s) => [s.key, s.value])),
      netnsExists: true,
      podLink: { name: p.podIf, mac: l.podMac, mtu: p.mtu, up: true },
      podAddresses: [...p.podAddresses],
      podRoutes: p.podRoutes.map((r) => ({ ...r })),
      podNeighbours: (p.podNeighbours ?? []).map((n) => ({ ...n, permanent: true })),
    };
  }
}

/** An in-memory IPAM over 10.0.0.0/28 on one node. */
class FakeDatastore implements Datastore {
  byHandle = new Map<string, { ip: string; node: string }>();
  annotations = new Map<string, string[]>();
  down = false;
  failAnnotate = false;
  /** Whether an allocation ran while a link was being created (ADD overlaps the two). */
  overlapped = false;
  dataplane: FakeDataplane | undefined;
  private check() {
    if (this.down) throw new CniError(CniErrorCode.TryAgainLater, 'API server unreachable: ECONNREFUSED');
  }
  attrsByHandle = new Map<string, Record<string, string>>();
  async allocate(req: AllocateRequest): Promise<Allocation> {
    this.check();
    this.attrsByHandle.set(req.handle, req.attrs);
    await new Promise((r) => setTimeout(r, 1));
    if (this.dataplane && this.dataplane.linking > 0) this.overlapped = true;
    const existing = this.byHandle.get(req.handle);
    if (existing) return { ipv4: existing.ip, ipv6: undefined };
    const used = new Set([...this.byHandle.values()].map((v) => v.ip));
    for (let i = 1; i < 15; i++) {
      const ip = `10.0.0.${i}`;
      if (!used.has(ip)) {
        this.byHandle.set(req.handle, { ip, node: req.node });
        return { ipv4: ip, ipv6: undefined };
      }
    }
    throw new CniError(CniErrorCode.IpamExhausted, 'no free address in any pool for node node-a');
  }
  async releaseByHandle(handle: string) {
    this.check();
    this.byHandle.delete(handle);
  }
  async annotatePod(pod: { namespace: string; name: string }, ips: string[]) {
    this.check();
    if (this.failAnnotate) throw new CniError(CniErrorCode.TryAgainLater, 'API server went away');
    this.annotations.set(`${pod.namespace}/${pod.name}`, ips);
  }
  async listHandles(node: string, prefix: string) {
    this.check();
    return [...this.byHandle.entries()]
      .filter(([h, v]) => v.node === node && h.startsWith(prefix))
      .map(([h]) => h);
  }
  async status() {
    if (this.down) return { reachable: false, usablePool: false, detail: 'ECONNREFUSED' };
    return { reachable: true, usablePool: true, detail: 'pool default-ipv4 has room' };
  }
  async close() {}
}

let dir: string;
let dp: FakeDataplane;
let ds: FakeDatastore;
let deps: Deps;
let cfg: PluginConfig;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'podnet-cni-unit-'));
  dp = new FakeDataplane();
  ds = new FakeDatastore();
  deps = {
    dataplane: dp,
    datastore: async () => ds,
    cache: new ResultCache(dir),
    log: quiet,
    releaseRetry: { attempts: 2, delayMs: 1 },
  };
  cfg = parseConfig(
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'podnet',
      type: 'podnet',
      nodeName: 'node-a',
      cacheDir: dir,
    }),
    {},
  );
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function addReq(containerId: string, pod = 'web-0'): Extract<CniRequest, { type: 'ADD' }> {
  return {
    type: 'ADD',
    containerId,
    netns: `/var/run/netns/${containerId}`,
    ifname: 'eth0',
    args: {},
    pod: { namespace: 'default', name: pod },
    path: [],
  };
}
const delReq = (containerId: string, pod = 'web-0') => ({
  ...addReq(containerId, pod),
  type: 'DEL' as const,
});
const checkReq = (containerId: string, pod = 'web-0') => ({
  ...addReq(containerId, pod),
  type: 'CHECK' as const,
});

describe('naming and plans', () => {
  it('names the host interface pn + 11 hex of sha1(namespace.pod)', () => {
    // sha1("default.web-0") = 0d7763386da219dd…, computed independently with `printf default.web-0 | sha1sum`.
    expect(hostIfName({ namespace: 'default', name: 'web-0' }, 'c', 'eth0')).toBe('pn0d7763386da');
  });

  it('gives different pods different host names and the same pod the same name', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (a, b) => {
        const x = hostIfName({ namespace: 'ns', name: a }, 'c', 'eth0');
        expect(hostIfName({ namespace: 'ns', name: a }, 'other-sandbox', 'eth0')).toBe(x);
        if (a !== b) expect(hostIfName({ namespace: 'ns', name: b }, 'c', 'eth0')).not.toBe(x);
      }),
      { numRuns: 200 },
    );
  });

  it("gives each interface of a pod its own host name, keeping eth0's", () => {
    // sha1("default.web-0.net1") = de80847183d…, computed with `printf default.web-0.net1 | sha1sum`.
    const pod = { namespace: 'default', name: 'web-0' };
    expect(hostIfName(pod, 'c', 'net1')).toBe('pnde80847183d');
    expect(hostIfName(pod, 'c', 'eth0')).toBe('pn0d7763386da');
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z][a-z0-9]{0,14}$/), (ifname) => {
        if (ifname !== 'eth0') expect(hostIfName(pod, 'c', ifname)).not.toBe(hostIfName(pod, 'c', 'eth0'));
      }),
      { numRuns: 200 },
    );
  });

  it("plans a second interface's routes with a metric of their own, beside eth0's", () => {
    const p = planAttachment({
      netns: '/n',
      hostIf: 'pn1',
      podIf: 'net1',
      mtu: 1500,
      ipv4: '10.0.0.2',
      ipv6: 'fd00::2',
      arpMode: 'userspace',
    });
    const metric = p.podRoutes[0]!.metric!;
    expect(metric).toBeGreaterThanOrEqual(1024);
    expect(metric).toBeLessThan(2048);
    expect(p.podRoutes.every((r) => r.metric === metric)).toBe(true);
    expect(p.podNeighbours).toEqual([
      { ip: '169.254.1.1', lladdr: 'ee:ee:ee:ee:ee:ee' },
      { ip: 'fe80::ecee:eeff:feee:eeee', lladdr: 'ee:ee:ee:ee:ee:ee' },
    ]);
  });

  it('makes handles valid Kubernetes names', () => {
    expect(handleId('K8s_Net', 'ABC123', 'eth0')).toBe('k8s-net.abc123.eth0');
  });

  it('plans /32 and /128, the gateway routes and the sysctls of each ARP mode', () => {
    const p = planAttachment({
      netns: '/n',
      hostIf: 'pn0',
      podIf: 'eth0',
      mtu: 1500,
      ipv4: '10.0.0.1',
      ipv6: 'fd00::1',
      arpMode: 'kernel',
    });
    expect(p.podAddresses).toEqual(['10.0.0.1/32', 'fd00::1/128']);
    expect(p.podRoutes).toEqual([
      { dst: '169.254.1.1/32', scope: 'link' },
      { dst: '0.0.0.0/0', gw: '169.254.1.1' },
      { dst: '::/0', gw: 'fe80::ecee:eeff:feee:eeee' },
    ]);
    // The gateways are permanent neighbours: the pod never asks ARP/ND for them.
    expect(p.podNeighbours).toEqual([
      { ip: '169.254.1.1', lladdr: 'ee:ee:ee:ee:ee:ee' },
      { ip: 'fe80::ecee:eeff:feee:eeee', lladdr: 'ee:ee:ee:ee:ee:ee' },
    ]);
    expect(p.hostRoutes).toEqual(['10.0.0.1/32', 'fd00::1/128']);
    const sys = Object.fromEntries(p.hostSysctls.map((s) => [s.key, s.value]));
    expect(sys['net/ipv4/conf/pn0/proxy_arp']).toBe('1');
    expect(sys['net/ipv4/neigh/pn0/proxy_delay']).toBe('0');
    expect(sys['net/ipv6/conf/pn0/accept_ra']).toBe('0');
    const u = planAttachment({
      netns: '/n',
      hostIf: 'pn0',
      podIf: 'eth0',
      mtu: 1500,
      ipv4: '10.0.0.1',
      arpMode: 'userspace',
    });
    expect(Object.fromEntries(u.hostSysctls.map((s) => [s.key, s.value]))).toEqual({
      'net/ipv4/conf/pn0/forwarding': '1',
      'net/ipv4/conf/pn0/proxy_arp': '0',
    });
  });
});

describe('diffAttachment', () => {
  const plan = planAttachment({
    netns: '/n',
    hostIf: 'pn0',
    podIf: 'eth0',
    mtu: 1500,
    ipv4: '10.0.0.1',
    arpMode: 'kernel',
  });
  const good = (): ObservedAttachment => ({
    hostLink: { name: 'pn0', mac: 'ee:ee:ee:ee:ee:ee', mtu: 1500, up: true },
    hostRoutes: ['10.0.0.1/32'],
    hostSysctls: Object.fromEntries(plan.hostSysctls.map((s) => [s.key, s.value])),
    netnsExists: true,
    podLink: { name: 'eth0', mac: '02:00:00:00:00:01', mtu: 1500, up: true },
    podAddresses: ['10.0.0.1/32'],
    podRoutes: [
      { dst: '169.254.1.1/32', scope: 'link' },
      { dst: '0.0.0.0/0', gw: '169.254.1.1' },
    ],
    podNeighbours: [{ ip: '169.254.1.1', lladdr: 'ee:ee:ee:ee:ee:ee', permanent: true }],
  });

  it('finds nothing when the kernel matches', () => {
    expect(diffAttachment(plan, good())).toEqual([]);
  });

  it('does not ask an attachment cached before gateway neighbours existed for one', () => {
    const { podNeighbours: _, ...old } = plan;
    expect(diffAttachment(old, { ...good(), podNeighbours: [] })).toEqual([]);
  });

  it.each<[string, (o: ObservedAttachment) => void, string]>([
    ['a missing host interface', (o) => (o.hostLink = undefined), 'host interface pn0 does not exist'],
    [
      'a wrong host MAC',
      (o) => (o.hostLink!.mac = '02:00:00:00:00:09'),
      'host interface pn0 has MAC 02:00:00:00:00:09, expected ee:ee:ee:ee:ee:ee',
    ],
    [
      'a missing host route',
      (o) => (o.hostRoutes = []),
      'host route 10.0.0.1/32 dev pn0 scope link is missing',
    ],
    [
      'proxy_arp switched off',
      (o) => (o.hostSysctls['net/ipv4/conf/pn0/proxy_arp'] = '0'),
      'host sysctl net.ipv4.conf.pn0.proxy_arp is 0, expected 1',
    ],
    ['a gone namespace', (o) => (o.netnsExists = false), 'network namespace /n does not exist'],
    ['a missing pod interface', (o) => (o.podLink = undefined), 'pod interface eth0 does not exist in /n'],
    ['a wrong pod MTU', (o) => (o.podLink!.mtu = 9000), 'pod interface eth0 has MTU 9000, expected 1500'],
    ['a removed address', (o) => (o.podAddresses = []), 'pod interface eth0 lacks address 10.0.0.1/32'],
    [
      'an extra address',
      (o) => o.podAddresses.push('10.9.9.9/32'),
      'pod interface eth0 has unexpected address 10.9.9.9/32',
    ],
    [
      'a missing default route',
      (o) => (o.podRoutes = o.podRoutes.slice(0, 1)),
      'pod route 0.0.0.0/0 via 169.254.1.1 dev eth0 is missing',
    ],
    [
      'a missing gateway neighbour',
      (o) => (o.podNeighbours = []),
      'pod neighbour 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 is missing',
    ],
    [
      'a gateway neighbour that is not permanent',
      (o) => (o.podNeighbours = [{ ip: '169.254.1.1', lladdr: 'ee:ee:ee:ee:ee:ee', permanent: false }]),
      'pod neighbour 169.254.1.1 dev eth0 is ee:ee:ee:ee:ee:ee (not permanent), expected ee:ee:ee:ee:ee:ee permanent',
    ],
  ])('reports %s precisely', (_, mutate, expected) => {
    const o = good();
    mutate(o);
    expect(diffAttachment(plan, o)).toContain(expected);
  });
});

describe('ADD', () => {
  it('allocates, wires the pod, annotates it and returns the result', async () => {
    const r = await cmdAdd(cfg, addReq('c1'), deps);
    expect(r.ips).toEqual([{ address: '10.0.0.1/32', gateway: '169.254.1.1', interface: 1 }]);
    expect(r.interfaces?.[0]).toMatchObject({
      name: hostIfName({ namespace: 'default', name: 'web-0' }, 'c1', 'eth0'),
      mac: 'ee:ee:ee:ee:ee:ee',
      mtu: 1480,
    });
    expect(r.interfaces?.[1]).toMatchObject({ name: 'eth0', sandbox: '/var/run/netns/c1' });
    expect(ds.annotations.get('default/web-0')).toEqual(['10.0.0.1']);
    expect(deps.cache.get('podnet', 'c1', 'eth0')?.handle).toBe('podnet.c1.eth0');
  });

  it('returns the same result when repeated for the same container', async () => {
    const a = await cmdAdd(cfg, addReq('c1'), deps);
    const b = await cmdAdd(cfg, addReq('c1'), deps);
    expect(b).toEqual(a);
    expect(dp.created).toBe(1);
  });

  it('rebuilds a repeated ADD whose interface vanished', async () => {
    await cmdAdd(cfg, addReq('c1'), deps);
    dp.links.clear();
    const r = await cmdAdd(cfg, addReq('c1'), deps);
    expect(dp.links.size).toBe(1);
    expect(r.ips?.[0]?.address).toBe('10.0.0.1/32');
  });

  it('replaces a leftover host interface of an earlier sandbox of the same pod', async () => {
    await cmdAdd(cfg, addReq('old'), deps);
    deps.cache.delete('podnet', 'old', 'eth0');
    await cmdAdd(cfg, addReq('new'), deps);
    expect(dp.links.size).toBe(1);
  });

  it('makes the veth while IPAM allocates, and gives it its addresses afterwards', async () => {
    ds.dataplane = dp;
    const r = await cmdAdd(cfg, addReq('c1'), deps);
    expect(ds.overlapped).toBe(true);
    const link = dp.links.get(r.interfaces![0]!.name)!;
    expect(link.plan.podAddresses).toEqual(['10.0.0.1/32']);
    expect(link.plan.hostRoutes).toEqual(['10.0.0.1/32']);
  });

  it('rolls back the veth and the allocation when the addresses cannot be configured', async () => {
    dp.failConfigure = new CniError(CniErrorCode.DataplaneFailure, 'configuring eth0: Invalid argument');
    await expect(cmdAdd(cfg, addReq('c1'), deps)).rejects.toMatchObject({
      code: CniErrorCode.DataplaneFailure,
      message: expect.stringContaining('Invalid argument'),
    });
    expect(dp.links.size).toBe(0);
    expect(ds.byHandle.size).toBe(0);
  });

  it('removes the veth when the allocation fails, and still releases by handle', async () => {
    ds.down = true;
    const released: string[] = [];
    ds.releaseByHandle = async (h) => {
      released.push(h);
    };
    await expect(cmdAdd(cfg, addReq('c1'), deps)).rejects.toMatchObject({ code: CniErrorCode.TryAgainLater });
    expect(dp.links.size).toBe(0);
    expect(released).toEqual(['podnet.c1.eth0']);
  });

  it('releases an allocation the server stored although the allocation call failed (response lost)', async () => {
    const allocate = ds.allocate.bind(ds);
    ds.allocate = async (req) => {
      await allocate(req);
      throw new CniError(CniErrorCode.TryAgainLater, 'allocating: socket hang up (the response was lost)');
    };
    await expect(cmdAdd(cfg, addReq('c1'), deps)).rejects.toMatchObject({
      code: CniErrorCode.TryAgainLater,
      message: expect.stringContaining('response was lost'),
    });
    expect(ds.byHandle.size).toBe(0);
    expect(dp.links.size).toBe(0);
    // Nothing is left for GC either: the rollback was complete.
    expect(deps.cache.getInflight('podnet.c1.eth0')).toBeUndefined();
  });

  it('releases by handle when the allocation-response-lost failpoint fires after the allocation', async () => {
    deps.failpoint = async (name) => {
      if (name === 'allocate-response-lost') throw new CniError(CniErrorCode.TryAgainLater, 'failpoint');
    };
    await expect(cmdAdd(cfg, addReq('c1'), deps)).rejects.toMatchObject({ code: CniErrorCode.TryAgainLater });
    expect(ds.byHandle.size).toBe(0);
  });

  it('leaves a handle that another ADD of the same attachment holds (HANDLE_BUSY)', async () => {
    ds.byHandle.set('podnet.c1.eth0', { ip: '10.0.0.9', node: 'node-a' });
    ds.allocate = async () => {
      throw new CniError(
        CniErrorCode.TryAgainLater,
        'handle podnet.c1.eth0: another allocation…',
        HANDLE_BUSY,
      );
    };
    await expect(cmdAdd(cfg, addReq('c1'), deps)).rejects.toMatchObject({ code: CniErrorCode.TryAgainLater });
    expect(ds.byHandle.get('podnet.c1.eth0')).toEqual({ ip: '10.0.0.9', node: 'node-a' });
    expect(dp.links.size).toBe(0);
  });

  it('rolls back the allocation when the veth cannot be created', async () => {
    dp.failCreate = new CniError(CniErrorCode.DataplaneFailure, 'configuring eth0: Operation not permitted');
    await expect(cmdAdd(cfg, addReq('c1'), deps)).rejects.toMatchObject({
      code: CniErrorCode.DataplaneFailure,
    });
    expect(ds.byHandle.size).toBe(0);
    expect(deps.cache.get('podnet', 'c1', 'eth0')).toBeUndefined();
  });

  it('rolls back the veth and the allocation when the API fails mid-ADD', async () => {
    ds.failAnnotate = true;
    await expect(cmdAdd(cfg, addReq('c1'), deps)).rejects.toMatchObject({ code: CniErrorCode.TryAgainLater });
    expect(dp.links.size).toBe(0);
    expect(ds.byHandle.size).toBe(0);
  });

  it('says what it could not undo when the API is gone for good', async () => {
    ds.failAnnotate = true;
    const orig = ds.releaseByHandle.bind(ds);
    ds.releaseByHandle = async () => {
      throw new CniError(CniErrorCode.TryAgainLater, 'ECONNREFUSED');
    };
    const err = (await cmdAdd(cfg, addReq('c1'), deps).catch((e) => e)) as CniError;
    expect(err.details).toMatch(/rollback incomplete: releasing podnet.c1.eth0: ECONNREFUSED/);
    expect(dp.links.size).toBe(0);
    ds.releaseByHandle = orig;
  });

  it('fails with code 3 before allocating when the namespace does not exist', async () => {
    dp.missingNetns.add('/var/run/netns/c1');
    await expect(cmdAdd(cfg, addReq('c1'), deps)).rejects.toMatchObject({
      code: CniErrorCode.UnknownContainer,
    });
    expect(ds.byHandle.size).toBe(0);
  });

  it('fails with code 100 when the pool is exhausted, leaving nothing behind', async () => {
    for (let i = 0; i < 14; i++) await cmdAdd(cfg, addReq(`c${i}`, `p${i}`), deps);
    await expect(cmdAdd(cfg, addReq('last', 'plast'), deps)).rejects.toMatchObject({
      code: CniErrorCode.IpamExhausted,
    });
    expect(dp.links.size).toBe(14);
  });

  it('never gives two pods the same address', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.boolean(), { maxLength: 30 }), async (ops) => {
        dp.links.clear();
        ds.byHandle.clear();
        let n = 0;
        const live: string[] = [];
        for (const add of ops) {
          if (add || live.length === 0) {
            if (live.length >= 14) continue;
            const id = `p${n++}`;
            await cmdAdd(cfg, addReq(id, id), deps);
            live.push(id);
          } else {
            const id = live.shift()!;
            await cmdDel(cfg, delReq(id, id), deps);
          }
          const ips = [...ds.byHandle.values()].map((v) => v.ip);
          expect(new Set(ips).size).toBe(ips.length);
        }
      }),
      { numRuns: 30 },
    );
  });
});

describe('DEL', () => {
  it('removes the interface, the allocation and the cache entry', async () => {
    await cmdAdd(cfg, addReq('c1'), deps);
    await cmdDel(cfg, delReq('c1'), deps);
    expect(dp.links.size).toBe(0);
    expect(ds.byHandle.size).toBe(0);
    expect(deps.cache.get('podnet', 'c1', 'eth0')).toBeUndefined();
  });

  it('succeeds for a container it never saw, and twice in a row', async () => {
    await cmdDel(cfg, delReq('never'), deps);
    await cmdAdd(cfg, addReq('c1'), deps);
    await cmdDel(cfg, delReq('c1'), deps);
    await cmdDel(cfg, delReq('c1'), deps);
    expect(ds.byHandle.size).toBe(0);
  });

  it('leaves a newer sandbox of the same pod alone', async () => {
    await cmdAdd(cfg, addReq('new'), deps);
    await cmdDel(cfg, delReq('old'), deps);
    expect(dp.links.size).toBe(1);
    expect(ds.byHandle.has('podnet.new.eth0')).toBe(true);
  });

  it('leaves the interface of a newer sandbox alone when the old sandbox is deleted after it', async () => {
    await cmdAdd(cfg, addReq('old'), deps);
    // The runtime recreates the sandbox before deleting the old one: same pod, same host name.
    await new Promise((r) => setTimeout(r, 5));
    await cmdAdd(cfg, addReq('new'), deps);
    await cmdDel(cfg, delReq('old'), deps);
    expect(dp.links.size).toBe(1);
    expect([...dp.links.values()][0]?.plan.netns).toBe('/var/run/netns/new');
    expect(ds.byHandle.has('podnet.old.eth0')).toBe(false);
    expect(ds.byHandle.has('podnet.new.eth0')).toBe(true);
  });

  it('asks the runtime to retry when the API is down', async () => {
    ds.down = true;
    await expect(cmdDel(cfg, delReq('c1'), deps)).rejects.toMatchObject({ code: CniErrorCode.TryAgainLater });
  });
});

describe('a second attachment of a pod (another CNI_IFNAME)', () => {
  const net1 = <T extends { ifname: string }>(r: T): T => ({ ...r, ifname: 'net1' });

  it("gets its own host interface and never replaces eth0's; DEL of either leaves the other", async () => {
    const a = await cmdAdd(cfg, addReq('c1'), deps);
    const b = await cmdAdd(cfg, net1(addReq('c1')), deps);
    const eth0Host = a.interfaces![0]!.name;
    const net1Host = b.interfaces![0]!.name;
    expect(net1Host).not.toBe(eth0Host);
    expect(dp.links.size).toBe(2);
    expect(dp.links.get(eth0Host)?.plan.podAddresses).toEqual(['10.0.0.1/32']);
    expect(dp.links.get(net1Host)?.plan.podAddresses).toEqual(['10.0.0.2/32']);
    // The pod records eth0's addresses: those the agent routes to eth0's host interface.
    expect(ds.annotations.get('default/web-0')).toEqual(['10.0.0.1']);
    // Only eth0's allocation names the pod as its owner: the agent's IPAM GC decides by podIPs.
    expect(ds.attrsByHandle.get('podnet.c1.eth0')).toMatchObject({ namespace: 'default', pod: 'web-0' });
    expect(ds.attrsByHandle.get('podnet.c1.net1')).toEqual({
      node: 'node-a',
      containerID: 'c1',
      ifname: 'net1',
      attachedTo: 'default/web-0',
    });
    await cmdCheck(cfg, checkReq('c1'), deps);
    await cmdCheck(cfg, net1(checkReq('c1')), deps);

    await cmdDel(cfg, net1(delReq('c1')), deps);
    expect([...dp.links.keys()]).toEqual([eth0Host]);
    expect([...ds.byHandle.keys()]).toEqual(['podnet.c1.eth0']);
    await cmdCheck(cfg, checkReq('c1'), deps);

    await cmdAdd(cfg, net1(addReq('c1')), deps);
    await cmdDel(cfg, delReq('c1'), deps);
    expect([...dp.links.keys()]).toEqual([net1Host]);
    expect([...ds.byHandle.keys()]).toEqual(['podnet.c1.net1']);
  });
});

describe('CHECK', () => {
  it('passes on an intact attachment', async () => {
    await cmdAdd(cfg, addReq('c1'), deps);
    await cmdCheck(cfg, checkReq('c1'), deps);
  });

  it('reports what differs', async () => {
    await cmdAdd(cfg, addReq('c1'), deps);
    const link = [...dp.links.values()][0]!;
    link.plan = { ...link.plan, podAddresses: [] };
    const err = (await cmdCheck(cfg, checkReq('c1'), deps).catch((e) => e)) as CniError;
    expect(err.code).toBe(CniErrorCode.CheckFailed);
    expect(err.message).toMatch(/pod interface eth0 lacks address 10.0.0.1\/32/);
  });

  it('reports an unknown container with code 3', async () => {
    await expect(cmdCheck(cfg, checkReq('nope'), deps)).rejects.toMatchObject({
      code: CniErrorCode.UnknownContainer,
    });
  });

  it('checks the prevResult carries the pod address', async () => {
    await cmdAdd(cfg, addReq('c1'), deps);
    const c = { ...cfg, prevResult: { cniVersion: '1.0.0', ips: [{ address: '10.9.9.9/32' }] } };
    await expect(cmdCheck(c, checkReq('c1'), deps)).rejects.toThrow(/prevResult lacks address 10.0.0.1\/32/);
  });
});

describe('GC and STATUS', () => {
  const later = () => Date.now() + 3_600_000;
  const orphan = (handle: string, node = 'node-a') =>
    ds.allocate({ handle, node, ipv4: true, ipv6: false, ipv4Pools: [], ipv6Pools: [], attrs: {} });
  /** The pid of a process that has exited. */
  const deadPid = () => spawnSync('true').pid!;

  it('releases completed attachments of this runtime not in cni.dev/valid-attachments, and nothing else', async () => {
    const gcCfg = { ...cfg, cniVersion: '1.1.0' };
    deps.runtime = '/usr/bin/containerd';
    await cmdAdd(gcCfg, addReq('keep', 'a'), deps);
    await cmdAdd(gcCfg, addReq('drop', 'b'), deps);
    // An ADD that allocated and died before its cache write (its marker names a dead process).
    await orphan('podnet.crashed.eth0');
    deps.cache.markInflight({
      network: 'podnet',
      containerId: 'crashed',
      ifname: 'eth0',
      handle: 'podnet.crashed.eth0',
      runtime: '/usr/bin/containerd',
      hostIf: 'pncrashed0000',
    });
    // …and left its veth behind.
    dp.links.set('pncrashed0000', {
      plan: planAttachment({
        netns: '/n',
        hostIf: 'pncrashed0000',
        podIf: 'eth0',
        mtu: 1500,
        arpMode: 'userspace',
      }),
      podMac: '02:00:00:00:00:99',
    });
    const marker = deps.cache.getInflight('podnet.crashed.eth0')!;
    writeFileSync(
      join(dir, 'inflight', 'podnet.crashed.eth0.json'),
      JSON.stringify({ ...marker, pid: deadPid() }),
    );
    // An allocation with no local trace (another runtime's cache dir, a lost cache): not provably ours.
    await orphan('podnet.untraced.eth0');
    // Another node's allocation is not this node's to collect.
    await orphan('podnet.elsewhere.eth0', 'node-b');
    deps.wallClock = later;
    await cmdGc({ ...gcCfg, validAttachments: [{ containerID: 'keep', ifname: 'eth0' }] }, deps);
    expect([...ds.byHandle.keys()].sort()).toEqual([
      'podnet.elsewhere.eth0',
      'podnet.keep.eth0',
      'podnet.untraced.eth0',
    ]);
    expect(dp.links.size).toBe(1);
    expect(deps.cache.getInflight('podnet.crashed.eth0')).toBeUndefined();
  });

  it('never releases the allocation of an ADD in flight', async () => {
    const gcCfg = { ...cfg, cniVersion: '1.1.0' };
    let resume!: () => void;
    const reached = new Promise<void>((r) => {
      deps.failpoint = async (name) => {
        if (name !== 'before-annotate') return;
        r();
        await new Promise<void>((go) => (resume = go));
      };
    });
    const adding = cmdAdd(gcCfg, addReq('c1'), deps);
    await reached;
    expect(ds.byHandle.has('podnet.c1.eth0')).toBe(true);
    deps.wallClock = later;
    // The runtime's list was taken before this ADD began: the attachment is not in it.
    await cmdGc({ ...gcCfg, validAttachments: [] }, deps);
    expect(ds.byHandle.has('podnet.c1.eth0')).toBe(true);
    resume();
    await adding;
    await cmdCheck(gcCfg, checkReq('c1'), deps);
  });

  it('keeps a completed attachment younger than gcGracePeriodSeconds', async () => {
    const gcCfg = { ...cfg, cniVersion: '1.1.0', gcGracePeriodSeconds: 60 };
    await cmdAdd(gcCfg, addReq('c1'), deps);
    deps.wallClock = () => Date.now() + 30_000;
    await cmdGc({ ...gcCfg, validAttachments: [] }, deps);
    expect(ds.byHandle.size).toBe(1);
    deps.wallClock = () => Date.now() + 61_000;
    await cmdGc({ ...gcCfg, validAttachments: [] }, deps);
    expect(ds.byHandle.size).toBe(0);
  });

  it("leaves another runtime's attachments of the same network alone", async () => {
    const gcCfg = { ...cfg, cniVersion: '1.1.0' };
    deps.runtime = '/usr/bin/containerd';
    await cmdAdd(gcCfg, addReq('mine', 'a'), deps);
    deps.runtime = '/usr/bin/crio';
    await cmdAdd(gcCfg, addReq('theirs', 'b'), deps);
    deps.runtime = '/usr/bin/containerd';
    deps.wallClock = later;
    await cmdGc({ ...gcCfg, validAttachments: [] }, deps);
    expect([...ds.byHandle.keys()]).toEqual(['podnet.theirs.eth0']);
    expect(dp.links.size).toBe(1);
  });

  it('does nothing when the network configuration says disableGC', async () => {
    const gcCfg = parseConfig(
      JSON.stringify({ cniVersion: '1.1.0', name: 'podnet', type: 'podnet', cacheDir: dir, disableGC: true }),
      {},
    );
    await cmdAdd({ ...gcCfg, nodeName: 'node-a' }, addReq('c1'), deps);
    deps.wallClock = later;
    await cmdGc({ ...gcCfg, nodeName: 'node-a', validAttachments: [] }, deps);
    expect(ds.byHandle.size).toBe(1);
    expect(() =>
      parseConfig(JSON.stringify({ cniVersion: '1.1.0', name: 'p', type: 'podnet', disableGC: 'yes' }), {}),
    ).toThrow(/field disableGC = "yes": must be true or false/);
  });

  it('GC refuses to run without cni.dev/valid-attachments, releasing nothing', async () => {
    const gcCfg = { ...cfg, cniVersion: '1.1.0' };
    await cmdAdd(gcCfg, addReq('keep', 'a'), deps);
    await expect(cmdGc(gcCfg, deps)).rejects.toMatchObject({ code: CniErrorCode.InvalidConfig });
    expect(ds.byHandle.size).toBe(1);
  });

  it('STATUS passes when the datastore is reachable and fails with code 50 when not', async () => {
    const st = { ...cfg, cniVersion: '1.1.0' };
    await cmdStatus(st, deps);
    ds.down = true;
    await expect(cmdStatus(st, deps)).rejects.toMatchObject({ code: CniErrorCode.PluginNotAvailable });
  });
});

describe('runPlugin', () => {
  const env = {
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: 'c1',
    CNI_NETNS: '/var/run/netns/c1',
    CNI_IFNAME: 'eth0',
    CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0',
  };
  const hooks = () => ({ dataplane: async () => dp, datastore: async () => ds, logger: async () => quiet });

  it('prints a 0.3.1 result for a 0.3.1 config and exits 0', async () => {
    const out = await runPlugin(
      env,
      JSON.stringify({
        cniVersion: '0.3.1',
        name: 'podnet',
        type: 'podnet',
        nodeName: 'node-a',
        cacheDir: dir,
      }),
      hooks(),
    );
    expect(out.exitCode).toBe(0);
    const r = JSON.parse(out.stdout);
    expect(r.cniVersion).toBe('0.3.1');
    expect(r.ips[0]).toEqual({ version: '4', address: '10.0.0.1/32', gateway: '169.254.1.1', interface: 1 });
  });

  it('prints the spec error object with the config version and exits 1', async () => {
    const out = await runPlugin(
      { ...env, CNI_NETNS: '' },
      JSON.stringify({ cniVersion: '1.0.0', name: 'podnet', type: 'podnet' }),
      hooks(),
    );
    expect(out.exitCode).toBe(1);
    expect(JSON.parse(out.stdout)).toEqual({
      cniVersion: '1.0.0',
      code: 4,
      msg: 'ADD needs CNI_NETNS in the environment, and it is not set',
    });
  });

  it('answers VERSION without a config', async () => {
    const out = await runPlugin({ CNI_COMMAND: 'VERSION' }, '', hooks());
    expect(JSON.parse(out.stdout).supportedVersions).toContain('1.1.0');
  });

  it('passes a chain prevResult through, with its own interfaces appended', async () => {
    const prevResult = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'dummy0' }],
      ips: [{ address: '192.0.2.1/24', interface: 0 }],
    };
    const out = await runPlugin(
      env,
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'podnet',
        type: 'podnet',
        nodeName: 'node-a',
        cacheDir: dir,
        prevResult,
      }),
      hooks(),
    );
    const r = JSON.parse(out.stdout);
    expect(r.interfaces.map((i: { name: string }) => i.name)).toEqual([
      'dummy0',
      expect.stringMatching(/^pn/),
      'eth0',
    ]);
    expect(r.ips.map((i: { interface: number }) => i.interface)).toEqual([0, 2]);
  });
});
