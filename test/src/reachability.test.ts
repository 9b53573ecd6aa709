// The lab's main promise: every pod reaches every pod across nodes, and the external client reaches
// every pod through the ToR, with no NAT and no overlay; pods come and go.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  downScenarioLab,
  isAllocated,
  type Lab,
  podIp,
  routes,
  routesVia,
  scenarioConfig,
  unreachable,
  upScenarioLab,
} from './harness.js';

const config = scenarioConfig('r');
let lab: Lab;

beforeAll(async () => {
  lab = await upScenarioLab(config);
});

afterAll(() => downScenarioLab(config));

describe('lab reachability (3 nodes, BIRD ToR, external client)', () => {
  it('reaches every pod from every other pod and from the client over IPv4', async () => {
    expect(lab.pods.length).toBe(lab.nodes.length * lab.project.settings.podsPerNode);
    const probes = await lab.waitForReachability(4);
    expect(unreachable(probes)).toEqual([]);
    expect(probes.length).toBe(lab.pods.length * lab.pods.length); // (n-1) per pod + n from the client
  });

  it('routes each node to the other nodes’ pod blocks via those nodes, and the ToR to all of them', () => {
    for (const node of lab.nodes) {
      const nodeIp = node.links[0]?.ipv4?.split('/')[0] ?? '';
      for (const other of lab.nodes.filter((n) => n !== node)) {
        expect(
          routesVia(other.ns, nodeIp).length,
          `${other.name} has a route via ${node.name}`,
        ).toBeGreaterThan(0);
      }
      expect(
        routesVia(lab.service('tor').ns, nodeIp).length,
        `tor has a route via ${node.name}`,
      ).toBeGreaterThan(0);
    }
  });

  it('has the ToR route each block to its owner only (nodes pass on no block learned from others)', async () => {
    const nodeIp = new Map(lab.nodes.map((n) => [n.name, n.links[0]?.ipv4?.split('/')[0] ?? '']));
    const owners = new Map<string, string>();
    for (const b of await lab.kube.list('/apis/podnet.io/v1alpha1/ipamblocks')) {
      const spec = b.spec as { cidr?: string; affinity?: string };
      if (spec.cidr?.includes('.') && spec.affinity?.startsWith('host:'))
        owners.set(spec.cidr, spec.affinity.slice('host:'.length));
    }
    expect(owners.size, 'IPv4 blocks affine to nodes').toBeGreaterThan(0);
    const torRoutes = routes(lab.service('tor').ns);
    for (const [cidr, owner] of owners) {
      const r = torRoutes.filter((x) => x.dst === cidr);
      const hops = r.flatMap((x) => (x.nexthops ?? [x]).map((h) => h.gateway));
      expect(hops, `tor's next hops for ${cidr} (owned by ${owner})`).toEqual([nodeIp.get(owner)]);
    }
  });

  it('makes a new pod on node-a reachable from node-c’s pods and from the client', async () => {
    const pod = await lab.addPod('node-a', 'pod-node-a-new');
    const ip = podIp(pod);
    const fromC = lab.pods.filter((p) => p.node === 'node-c');
    for (const src of [...fromC.map((p) => p.ns), lab.service('client').ns]) {
      let ok = false;
      for (let i = 0; i < 20 && !ok; i++) ok = await lab.ping(src, ip);
      expect(ok, `${src} → ${ip}`).toBe(true);
    }
  });

  it('removes a deleted pod’s /32 and its address allocation', async () => {
    const pod = lab.pods.find((p) => p.name === 'pod-node-a-new');
    expect(pod).toBeDefined();
    const ip = podIp(pod!);
    const nodeNs = lab.service('node-a').ns;
    expect(routes(nodeNs).some((r) => r.dst === ip)).toBe(true);
    expect(await isAllocated(lab, ip)).toBe(true);
    await lab.deletePod('pod-node-a-new');
    const deadline = Date.now() + 20_000;
    while (routes(nodeNs).some((r) => r.dst === ip) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    expect(
      routes(nodeNs).some((r) => r.dst === ip),
      `${ip}/32 still routed on node-a`,
    ).toBe(false);
    expect(await isAllocated(lab, ip), `${ip} is still allocated in its IPAMBlock`).toBe(false);
    const handles = await lab.kube.list('/apis/podnet.io/v1alpha1/ipamhandles');
    expect(handles.map((h) => JSON.stringify(h)).filter((h) => h.includes('pod-node-a-new'))).toEqual([]);
  });
});
