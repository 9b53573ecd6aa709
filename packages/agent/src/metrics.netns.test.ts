// Prometheus reaches the agent's /metrics from another host, and nothing else of the agent: a
// podnet-agent in a node namespace with its default --metrics-listen (0.0.0.0:9091) and status
// listener (127.0.0.1:9099), scraped from a second namespace on the node's link (where Prometheus
// runs in a cluster: another node or a pod, reaching the node's address as the DaemonSet's
// hostNetwork + hostPort 9091 expose it).
import { type Netns, vethPair, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT, AgentLab } from './__fixtures__/netns-agent.js';

const NODE = 'node-mx';
const NODE_IP = '10.98.0.11';
const PROM_IP = '10.98.0.50';

const lab = new AgentLab('metrics');
let prom: Netns;

const curl = (url: string) =>
  prom.exec('curl', ['-s', '--max-time', '3', '-o', '/dev/null', '-w', '%{http_code}', url]);

beforeAll(async () => {
  await lab.start([AGENT], { cidr: '10.247.0.0/16', blockSize: 26 });
  await lab.client.core.createNode({
    body: { metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } } },
  });
  const node = await lab.nets.create('mxnode');
  prom = await lab.nets.create('mxprom');
  await vethPair(node, 'eth0', prom, 'eth0');
  await node.ip('addr', 'add', `${NODE_IP}/24`, 'dev', 'eth0');
  await prom.ip('addr', 'add', `${PROM_IP}/24`, 'dev', 'eth0');
  const { kubeconfig } = await lab.kubeconfigIn(node, 'node');
  // No --metrics-listen: the default, as the DaemonSet runs it.
  lab.logged(node.spawn(process.execPath, lab.agentArgv(NODE, kubeconfig)), 'agent.log');
}, 120_000);

afterAll(() => lab.stop(), 60_000);

describe("the agent's metrics endpoint, from another host", () => {
  it('answers /metrics on the node address with podnet_* metrics, and nothing on the status port', async () => {
    const body = await waitFor(
      `${NODE_IP}:9091/metrics from ${PROM_IP}`,
      async () => {
        const r = await prom.exec('curl', ['-sf', '--max-time', '3', `http://${NODE_IP}:9091/metrics`]);
        return r.code === 0 && r.stdout.includes('podnet_agent_ready') ? r.stdout : undefined;
      },
      { timeoutMs: 60_000 },
    );
    expect(body).toContain('# TYPE podnet_route_reconcile_seconds histogram');
    expect(body).toContain('# TYPE podnet_bgp_peer_established gauge');
    expect(body).toContain('podnet_agent_process_cpu_seconds_total');
    // Only /metrics on that listener; /status, /readyz are on the node's loopback, not reachable.
    expect((await curl(`http://${NODE_IP}:9091/status`)).stdout).toBe('404');
    const status = await curl(`http://${NODE_IP}:9099/status`);
    expect(status.stdout).toBe('000'); // connection refused
    expect(status.code).not.toBe(0);
  });
});
