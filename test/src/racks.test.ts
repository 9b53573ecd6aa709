// Two racks, one subnet each (compose profile `racks`): node-a/b/c on the fabric (10.88.0.0/24),
// node-d/e on rack2 (10.90.0.0/24), the ToR routing between them. The full mesh spans both racks,
// so a block learned from the other rack has a next hop the kernel cannot use directly: each agent
// resolves it through its route to that address (the default route via the ToR) and installs the
// block via the ToR. Pods in both racks reach each other and the client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  downScenarioLab,
  type KernelRoute,
  type Lab,
  routes,
  routesVia,
  scenarioConfig,
  unreachable,
  upScenarioLab,
} from './harness.js';

const config = scenarioConfig('k', { profiles: ['racks'] });
let lab: Lab;

const RACK1 = ['node-a', 'node-b', 'node-c'];
const RACK2 = ['node-d', 'node-e'];
const TOR_RACK1 = '10.88.0.254';
const TOR_RACK2 = '10.90.0.254';

const nodeIp = (name: string) => lab.service(name).links[0]?.ipv4?.split('/')[0] ?? '';

/** The IPv4 blocks affine to each node, from the API. */
async function blocksByNode(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const b of await lab.kube.list('/apis/podnet.io/v1alpha1/ipamblocks')) {
    const spec = b.spec as { cidr?: string; affinity?: string };
    if (!spec.cidr?.includes('.') || !spec.affinity?.startsWith('host:')) continue;
    const node = spec.affinity.slice('host:'.length);
    out.set(node, [...(out.get(node) ?? []), spec.cidr]);
  }
  return out;
}

const hopsOf = (r: KernelRoute | undefined) => (r ? (r.nexthops ?? [r]).map((h) => h.gateway) : []);

beforeAll(async () => {
  lab = await upScenarioLab(config);
});

afterAll(() => downScenarioLab(config));

describe('lab with two racks (profile racks: two fabric subnets routed by the ToR)', () => {
  it('runs the nodes of both racks, each on its own subnet', () => {
    expect(lab.nodes.map((n) => n.name).sort()).toEqual([...RACK1, ...RACK2]);
    for (const n of RACK1) expect(nodeIp(n)).toMatch(/^10\.88\.0\./);
    for (const n of RACK2) expect(nodeIp(n)).toMatch(/^10\.90\.0\./);
  });

  it('reaches every pod from every pod across the racks and from the client over IPv4', async () => {
    const probes = await lab.waitForReachability(4);
    expect(unreachable(probes)).toEqual([]);
    expect(probes.length).toBe(lab.pods.length * lab.pods.length);
    for (const rack of [RACK1, RACK2]) expect(lab.pods.some((p) => rack.includes(p.node))).toBe(true);
  });

  it('installs the other rack’s blocks via the ToR, and the same rack’s via the owner', async () => {
    const blocks = await blocksByNode();
    for (const node of [...RACK1, ...RACK2]) {
      const table = routes(lab.service(node).ns).filter(
        (r) => r.protocol === '213' || r.protocol === 'podnet',
      );
      const myRack = RACK1.includes(node) ? RACK1 : RACK2;
      const tor = RACK1.includes(node) ? TOR_RACK1 : TOR_RACK2;
      for (const [owner, cidrs] of blocks) {
        if (owner === node) continue;
        for (const cidr of cidrs) {
          const want = myRack.includes(owner) ? nodeIp(owner) : tor;
          expect(hopsOf(table.find((r) => r.dst === cidr)), `${node}: ${cidr} (owned by ${owner})`).toEqual([
            want,
          ]);
        }
      }
      // Nothing installed via an address the kernel cannot reach directly.
      const otherRack = RACK1.includes(node) ? RACK2 : RACK1;
      for (const o of otherRack)
        expect(routesVia(lab.service(node).ns, nodeIp(o)), `${node} via ${o}`).toEqual([]);
    }
  });

  it('has the ToR route each rack’s blocks to their owner on that rack’s subnet', async () => {
    const torRoutes = routes(lab.service('tor').ns);
    for (const [owner, cidrs] of await blocksByNode())
      for (const cidr of cidrs)
        expect(hopsOf(torRoutes.find((r) => r.dst === cidr)), `tor: ${cidr} (owned by ${owner})`).toEqual([
          nodeIp(owner),
        ]);
  });

  it('has every agent ready with its mesh across both racks up and no unreachable next hop', async () => {
    for (const node of [...RACK1, ...RACK2]) {
      const s = (await lab.agentStatus(node)) as {
        ready: boolean;
        peers: { address: string; type: string; state: string }[];
        conditions: { type: string }[];
      };
      expect(s.ready, `${node} ready`).toBe(true);
      const mesh = s.peers.filter((p) => p.type === 'mesh');
      expect(mesh.map((p) => p.address).sort()).toEqual(
        [...RACK1, ...RACK2]
          .filter((n) => n !== node)
          .map(nodeIp)
          .sort(),
      );
      expect(
        mesh.every((p) => p.state === 'Established'),
        `${node} mesh Established`,
      ).toBe(true);
      expect(s.conditions.filter((c) => c.type === 'NextHopUnreachable')).toEqual([]);
    }
  });
});
