// The table enforcing in the real kernel: a node namespace routing between three pod namespaces
// over veths named as the CNI plugin names them, the translation's table loaded with nft. A packet
// the policy denies is proven dropped by the drop rule's counter (the event), not by a silence.
import { podInterfaceName } from '@podnet/net';
import { NftTable, nftCli, renderFull, validate } from '@podnet/nft';
import { cleanupStale, type Netns, NetnsSet, vethPair } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PODS as CLUSTER_PODS,
  NAMESPACES,
  NODE1,
  NODE1_ADDRS,
  policy,
  translateFor,
} from './__fixtures__/cluster.js';
import { translate } from './compute.js';
import { egressChain, ingressChain, policyTable } from './lower.js';

const GW = '10.0.0.254';
const GW6 = 'fd00::ffff';
const PODS = [
  { ns: 'x', name: 'a', ip: '10.0.1.1', ip6: 'fd00::1:1' },
  { ns: 'x', name: 'c', ip: '10.0.1.3', ip6: 'fd00::1:3' },
  { ns: 'y', name: 'a', ip: '10.0.2.1', ip6: 'fd00::2:1' },
] as const;

// x/a admits only namespace y; x/c may send only to x/a; y/a is selected by no policy.
const POLICIES = [
  policy('x', 'from-y', {
    podSelector: { matchLabels: { pod: 'a' } },
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
  }),
  policy('x', 'c-to-a', {
    podSelector: { matchLabels: { pod: 'c' } },
    policyTypes: ['Egress'],
    egress: [{ to: [{ podSelector: { matchLabels: { pod: 'a' } } }] }],
  }),
];

const lab = new NetnsSet();
let node: Netns;
const pods = new Map<string, Netns>();

beforeAll(async () => {
  await cleanupStale();
  node = await lab.create('polnode');
  await node.sysctl('net.ipv4.ip_forward', 1);
  await node.sysctl('net.ipv6.conf.all.forwarding', 1);
  for (const p of PODS) {
    const ns = await lab.create(`pol${p.ns}${p.name}`);
    const hostIf = podInterfaceName(p.ns, p.name);
    await vethPair(node, hostIf, ns, 'eth0');
    await node.ip('addr', 'add', `${GW}/32`, 'dev', hostIf);
    await node.ip('route', 'add', `${p.ip}/32`, 'dev', hostIf);
    await ns.ip('addr', 'add', `${p.ip}/32`, 'dev', 'eth0');
    await ns.ip('route', 'add', GW, 'dev', 'eth0');
    await ns.ip('route', 'add', 'default', 'via', GW);
    await node.ip('addr', 'add', `${GW6}/128`, 'dev', hostIf, 'nodad');
    await node.ip('-6', 'route', 'add', `${p.ip6}/128`, 'dev', hostIf);
    await ns.ip('addr', 'add', `${p.ip6}/128`, 'dev', 'eth0', 'nodad');
    await ns.ip('-6', 'route', 'add', GW6, 'dev', 'eth0');
    await ns.ip('-6', 'route', 'add', 'default', 'via', GW6);
    pods.set(`${p.ns}/${p.name}`, ns);
  }
  await node.run('nft', ['-f', '-'], {
    input: renderFull(validate(policyTable(translateFor(NODE1, POLICIES)))),
  });
});
afterAll(() => lab.destroy());

const ping = (from: string, to: string, family: 4 | 6 = 4) => {
  const dst = PODS.find((p) => `${p.ns}/${p.name}` === to)!;
  return pods.get(from)!.exec('ping', [`-${family}`, '-c', '1', '-W', '2', family === 4 ? dst.ip : dst.ip6]);
};

async function dropped(chain: string): Promise<number> {
  const out = JSON.parse(await node.run('nft', ['-j', 'list', 'chain', 'inet', 'podnet', chain])) as {
    nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[];
  };
  const rule = out.nftables.find((i) => i.rule?.expr.some((e) => e.counter))!.rule!;
  return rule.expr.find((e) => e.counter)!.counter!.packets;
}

describe.each([4, 6] as const)('a NetworkPolicy table in the kernel, IPv%s', (family) => {
  const xa = ingressChain(podInterfaceName('x', 'a'));
  const xc = egressChain(podInterfaceName('x', 'c'));

  it('lets a pod of the allowed namespace reach the selected pod', async () => {
    expect((await ping('y/a', 'x/a', family)).code).toBe(0);
  });

  it("drops a pod of another namespace at the selected pod's ingress chain", async () => {
    // x/c's egress allows x/a, so the packet passes x/c's chain and meets x/a's.
    const before = await dropped(xa);
    expect((await ping('x/c', 'x/a', family)).code).not.toBe(0);
    expect(await dropped(xa)).toBeGreaterThan(before);
  });

  it("drops what the sender's egress chain does not allow", async () => {
    const before = await dropped(xc);
    expect((await ping('x/c', 'y/a', family)).code).not.toBe(0);
    expect(await dropped(xc)).toBeGreaterThan(before);
  });

  it('lets replies in: x/a reaches x/c and gets the answer its own ingress would refuse', async () => {
    const before = await dropped(xa);
    expect((await ping('x/a', 'x/c', family)).code).toBe(0);
    expect(await dropped(xa)).toBe(before);
  });

  it('leaves unselected pods open to everyone', async () => {
    expect((await ping('x/a', 'y/a', family)).code).toBe(0);
    expect((await ping('y/a', 'x/c', family)).code).toBe(0);
  });
});

describe('a namespace label change, synced by @podnet/nft as the agent does', () => {
  it('is an element delta over netlink (no nft process), and the kernel follows it', async () => {
    const nft = new NftTable({ exec: nftCli({ netns: node.name }) });
    const tableWith = (yLabels: Record<string, string>) =>
      policyTable(
        translate({
          node: NODE1,
          nodeAddresses: NODE1_ADDRS,
          policies: POLICIES,
          pods: CLUSTER_PODS,
          namespaces: NAMESPACES.map((n) => (n.name === 'y' ? { ...n, labels: yLabels } : n)),
        }),
      );
    try {
      expect((await nft.sync(tableWith({ ns: 'y' }))).mode).toBe('full');
      expect((await ping('y/a', 'x/a')).code).toBe(0);
      // y no longer carries ns=y: its pods leave from-y's pod set, so y/a is dropped at x/a.
      expect(await nft.sync(tableWith({ ns: 'elsewhere' }))).toMatchObject({
        mode: 'elements',
        via: 'netlink',
      });
      const before = await dropped(ingressChain(podInterfaceName('x', 'a')));
      expect((await ping('y/a', 'x/a')).code).not.toBe(0);
      expect(await dropped(ingressChain(podInterfaceName('x', 'a')))).toBeGreaterThan(before);
      expect(await nft.sync(tableWith({ ns: 'y' }))).toMatchObject({ mode: 'elements', via: 'netlink' });
      expect((await ping('y/a', 'x/a')).code).toBe(0);
    } finally {
      nft.close();
    }
  });
});
