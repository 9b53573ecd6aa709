// The standalone CNI plugin's latency in the agent's metrics: a real agent reading a timing
// directory (--cni-timing-dir, as the DaemonSet sets it) and the real plugin run as a runtime runs
// it, in the node's namespace, for ADD and DEL. Each command shows in
// podnet_cni_duration_seconds{via="plugin"} on the agent's /metrics.
import { join } from 'node:path';
import { exec, type Netns, vethPair, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT, AgentLab, STATUS_URL } from './__fixtures__/netns-agent.js';

const STANDALONE = join(AGENT, '../../../cni/dist/podnet-standalone');
const NODE = 'node-timing';

const lab = new AgentLab('cnitime');
let node: Netns;
let kubeconfig: string;
let timingDir: string;

async function plugin(command: 'ADD' | 'DEL', pod: string, podNs: Netns) {
  const env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: `c-${pod}`,
    CNI_NETNS: podNs.path,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod}`,
    CNI_PATH: join(STANDALONE, '..'),
  };
  const conf = {
    cniVersion: '1.0.0',
    name: 'podnet',
    type: 'podnet',
    kubeconfig,
    nodeName: NODE,
    cacheDir: join(lab.work, 'cni-cache'),
    timingDir,
  };
  return exec(
    'ip',
    [
      'netns',
      'exec',
      node.name,
      'env',
      '-i',
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      STANDALONE,
    ],
    { input: JSON.stringify(conf), timeoutMs: 60_000 },
  );
}

/** podnet_cni_duration_seconds_count for the plugin's runs of `command`, from the agent's /metrics. */
async function recorded(command: string): Promise<number> {
  const r = await node.exec('curl', ['-sf', '--max-time', '3', `${STATUS_URL}/metrics`]);
  if (r.code !== 0) throw new Error(`the agent's /metrics did not answer: ${r.stderr}`);
  const line = r.stdout
    .split('\n')
    .find((l) =>
      l.startsWith(`podnet_cni_duration_seconds_count{command="${command}",result="success",via="plugin"}`),
    );
  return line ? Number(line.split(' ').pop()) : 0;
}

beforeAll(async () => {
  await lab.start([AGENT, STANDALONE], { cidr: '10.246.0.0/16', blockSize: 26 });
  await lab.client.core.createNamespace({ body: { metadata: { name: 'default' } } }).catch(() => undefined);
  await lab.client.core.createNode({ body: { metadata: { name: NODE } } });
  node = await lab.nets.create('timnode');
  const fabric = await lab.nets.create('timfab');
  await vethPair(node, 'eth0', fabric, 'f0');
  await node.ip('addr', 'add', '10.98.0.11/24', 'dev', 'eth0');
  await fabric.ip('addr', 'add', '10.98.0.1/24', 'dev', 'f0');
  ({ kubeconfig } = await lab.kubeconfigIn(node, 'node'));
  timingDir = join(lab.work, 'run', 'cni-timings');
}, 120_000);

afterAll(() => lab.stop(), 60_000);

describe('the standalone CNI plugin’s timing records', () => {
  it('reach the agent’s CNI latency histogram, per command', async () => {
    lab.logged(
      node.spawn(process.execPath, lab.agentArgv(NODE, kubeconfig, ['--cni-timing-dir', timingDir])),
      'agent.log',
    );
    await waitFor(
      'the agent to make the timing directory',
      async () => (await exec('test', ['-d', timingDir])).code === 0,
      {
        timeoutMs: 60_000,
        intervalMs: 200,
      },
    );
    await lab.client.core.createNamespacedPod({
      namespace: 'default',
      body: {
        metadata: { name: 'pod-t' },
        spec: { nodeName: NODE, containers: [{ name: 'c', image: 'x' }] },
      },
    });
    const podNs = await lab.nets.create('timpod');
    const add = await plugin('ADD', 'pod-t', podNs);
    expect(add.code, `${add.stdout}\n${add.stderr}`).toBe(0);
    // Bounded: the agent reads a record two sweeps (about 2 s) after it is written.
    await waitFor('the ADD in the agent’s histogram', async () => (await recorded('ADD')) === 1, {
      timeoutMs: 20_000,
      intervalMs: 300,
    });
    const del = await plugin('DEL', 'pod-t', podNs);
    expect(del.code, `${del.stdout}\n${del.stderr}`).toBe(0);
    await waitFor('the DEL in the agent’s histogram', async () => (await recorded('DEL')) === 1, {
      timeoutMs: 20_000,
      intervalMs: 300,
    });
    expect(await recorded('ADD')).toBe(1);
  }, 180_000);
});
