// The table enforcing in the real kernel: a node namespace routing between three pod namespaces
// over veths named as the CNI plugin names them, the translation's table loaded with nft. A packet
// the policy denies is proven dropped by the drop rule's counter (the event), not by a silence.
import { podInterfaceName } from '@podnet/net';
import { renderFull, validate } from '@podnet/nft';
import { cleanupStale, type Netns, NetnsSet, vethPair } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE1, policy, translateFor } from './__fixtures__/cluster.js';
import { ingressChain, policyTable } from './lower.js';

const GW = '10.0.0.254';
const PODS = [
  { ns: 'x', name: 'a', ip: '10.0.1.1' },
  { ns: 'x', name: 'c', ip: '10.0.1.3' },
  { ns: 'y', name: 'a', ip: '10.0.2.1' },
] as const;

const lab = new NetnsSet();
let node: Netns;
const pods = new Map<string, Netns>();

beforeAll(async () => {
  await cleanupStale();
  node = await lab.create('polnode');
  await node.sysctl('net.ipv4.ip_forward', 1);
  for (const p of PODS) {
    const ns = await lab.create(`pol${p.ns}${p.name}`);
    const hostIf = podInterfaceName(p.ns, p.name);
    await vethPair(node, hostIf, ns, 'eth0');
    await node.ip('addr', 'add', `${GW}/32`, 'dev', hostIf);
    await node.ip('route', 'add', `${p.ip}/32`, 'dev', hostIf);
    await ns.ip('addr', 'add', `${p.ip}/32`, 'dev', 'eth0');
    await ns.ip('route', 'add', GW, 'dev', 'eth0');
    await ns.ip('route', 'add', 'default', 'via', GW);
    pods.set(`${p.ns}/${p.name}`, ns);
  }
  // x/a admits only namespace y; x/c and y/a are not selected by any policy.
  const t = translateFor(NODE1, [
    policy('x', 'from-y', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
    }),
  ]);
  await node.run('nft', ['-f', '-'], { input: renderFull(validate(policyTable(t))) });
});
afterAll(() => lab.destroy());

const ping = (from: string, to: string) =>
  pods.get(from)!.exec('ping', ['-c', '1', '-W', '2', PODS.find((p) => `${p.ns}/${p.name}` === to)!.ip]);

async function dropped(chain: string): Promise<number> {
  const out = JSON.parse(await node.run('nft', ['-j', 'list', 'chain', 'inet', 'podnet', chain])) as {
    nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[];
  };
  const rule = out.nftables.find((i) => i.rule?.expr.some((e) => e.counter))!.rule!;
  return rule.expr.find((e) => e.counter)!.counter!.packets;
}

describe('a NetworkPolicy table in the kernel', () => {
  const xa = ingressChain(podInterfaceName('x', 'a'));

  it('lets a pod of the allowed namespace reach the selected pod', async () => {
    expect((await ping('y/a', 'x/a')).code).toBe(0);
  });

  it("drops a pod of another namespace at the selected pod's ingress chain", async () => {
    const before = await dropped(xa);
    expect((await ping('x/c', 'x/a')).code).not.toBe(0);
    expect(await dropped(xa)).toBeGreaterThan(before);
  });

  it('lets replies in: the selected pod reaches an unselected one and gets the answer', async () => {
    const before = await dropped(xa);
    expect((await ping('x/a', 'x/c')).code).toBe(0);
    expect(await dropped(xa)).toBe(before);
  });

  it('leaves unselected pods open to everyone', async () => {
    expect((await ping('x/c', 'y/a')).code).toBe(0);
    expect((await ping('y/a', 'x/c')).code).toBe(0);
  });
});
