// What the agent's /status says about its routes, against the real kernel: a podnet-agent in a node
// namespace with a pod wired by the real CNI plugin. Each route's state comes from the route
// programmer (kernel ACK, then a dump). podnetctl's comparison with the kernel, run in a node of
// the lab: test/src/route-status.test.ts.
import { join } from 'node:path';
import { PODNET_PROTO } from '@podnet/routes';
import { type Netns, vethPair, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT, AgentLab, CNI, STATUS_URL } from './__fixtures__/netns-agent.js';
import type { AgentStatus } from './status.js';

const NODE = 'node-st';
const NODE_IP = '10.97.0.11';

const lab = new AgentLab('status');
let node: Netns;
let kubeconfig: string;
let podIp = '';

async function status(): Promise<AgentStatus | undefined> {
  const r = await node.exec('curl', ['-sf', '--max-time', '3', `${STATUS_URL}/status`]);
  return r.code === 0 ? (JSON.parse(r.stdout) as AgentStatus) : undefined;
}

beforeAll(async () => {
  await lab.start([AGENT, CNI], { cidr: '10.246.0.0/16', blockSize: 26 });
  await lab.client.core.createNamespace({ body: { metadata: { name: 'default' } } }).catch(() => undefined);
  await lab.client.core.createNode({
    body: { metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } } },
  });
  node = await lab.nets.create('stnode');
  const fabric = await lab.nets.create('stfab');
  await vethPair(node, 'eth0', fabric, 'f0');
  await node.ip('addr', 'add', `${NODE_IP}/24`, 'dev', 'eth0');
  ({ kubeconfig } = await lab.kubeconfigIn(node, 'node'));
  lab.logged(
    node.spawn(process.execPath, lab.agentArgv(NODE, kubeconfig, ['--log-level', 'debug'])),
    'agent.log',
  );
  await lab.client.core.createNamespacedPod({
    namespace: 'default',
    body: { metadata: { name: 'web' }, spec: { nodeName: NODE, containers: [{ name: 'c', image: 'x' }] } },
  });
  const podNs = await lab.nets.create('stpod');
  const result = await lab.cniAdd(
    node,
    podNs,
    { name: 'web', containerId: 'c-web' },
    { kubeconfig, nodeName: NODE, cacheDir: join(lab.work, 'cni-cache') },
  );
  podIp = result.ips[0]!.address.split('/')[0]!;
}, 120_000);

afterAll(() => lab.stop(), 60_000);

describe("the agent's route status comes from the kernel", () => {
  it('reports the pod route and the block blackhole as installed once the kernel holds them', async () => {
    const s = await waitFor(
      'the agent to want the pod route and the block',
      async () => {
        const st = await status();
        return st && st.routes.length >= 2 && st.routes.some((r) => r.dst === `${podIp}/32`) ? st : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const block = s.routes.find((r) => r.type === 'blackhole')!.dst;
    // The verification dump after the ACK turns `applied` into `installed` (before the fix: every
    // route stayed `pending`, whatever the kernel held).
    const done = await waitFor(
      'every route to be installed',
      async () => {
        const st = await status();
        return st?.routes.every((r) => r.state === 'installed') ? st : undefined;
      },
      { timeoutMs: 20_000 },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify((await status())?.routes)}`);
    });
    const kernel = await node.ipJson<{ dst: string }[]>('route', 'show', 'proto', String(PODNET_PROTO));
    expect(kernel.map((r) => r.dst).sort()).toEqual([block, podIp].sort());
    expect(done.routes.map((r) => [r.dst, r.type, r.state]).sort()).toEqual(
      [
        [block, 'blackhole', 'installed'],
        [`${podIp}/32`, 'local', 'installed'],
      ].sort(),
    );
  });
});
