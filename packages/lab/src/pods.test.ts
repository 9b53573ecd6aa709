// The runner's kubelet role against the real API server and the real CNI plugin: Pod objects, a
// fresh namespace per pod, `podnet-cni ADD`/`DEL` run in the node's namespace. Agents are off here
// (test/ scenarios run them), so this checks wiring and addresses, not routing between nodes.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inSubnet, parseCidr } from './compose.js';
import { cleanupStaleLabs, Lab, type LabConfig } from './runner.js';
import { processStartTime } from './state.js';

const repoRoot = resolve(import.meta.dirname, '..', '..', '..');
const prefix = `pnt-l${process.pid}p-`;
const config: LabConfig = {
  repoRoot,
  composeFile: join(repoRoot, 'compose.yaml'),
  stateDir: `/tmp/podnet-lab-test-pods-${process.pid}`,
  prefix,
  only: ['apiserver', 'node-a', 'node-b'],
  agents: false,
  podsPerNode: 2,
};
const netns = () => (existsSync('/var/run/netns') ? readdirSync('/var/run/netns') : []);
const ipJson = <T>(ns: string, ...args: string[]) =>
  JSON.parse(execFileSync('ip', ['-n', ns, '-json', ...args]).toString()) as T;

let lab: Lab;
beforeAll(async () => {
  await cleanupStaleLabs(/^pnt-l(\d+)[a-z]*-/);
  lab = new Lab(config);
  await lab.up();
}, 120_000);
afterAll(async () => {
  await new Lab(config).down({ quiet: true });
});

describe('lab pods through the real CNI plugin (agents off)', () => {
  it('creates the pods per node with distinct addresses from the lab pools', () => {
    expect(lab.pods.map((p) => [p.name, p.node])).toEqual([
      ['pod-node-a-0', 'node-a'],
      ['pod-node-a-1', 'node-a'],
      ['pod-node-b-0', 'node-b'],
      ['pod-node-b-1', 'node-b'],
    ]);
    const v4 = lab.pods.map((p) => p.ipv4 ?? '');
    const v6 = lab.pods.map((p) => p.ipv6 ?? '');
    expect(new Set(v4).size).toBe(4);
    expect(new Set(v6).size).toBe(4);
    for (const ip of v4) expect(inSubnet(ip, parseCidr('pool', '10.244.0.0/16'))).toBe(true);
    for (const ip of v6) expect(inSubnet(ip, parseCidr('pool', 'fd00:244::/48'))).toBe(true);
  });

  it('records each pod in the API with its node, and wires it into its node', async () => {
    for (const pod of lab.pods) {
      const obj = await lab.kube.get(`/api/v1/namespaces/default/pods/${pod.name}`);
      expect((obj?.spec as { nodeName?: string } | undefined)?.nodeName).toBe(pod.node);
      const addrs = ipJson<{ addr_info: { local: string }[] }[]>(pod.ns, 'addr', 'show', 'eth0');
      expect(addrs[0]?.addr_info.map((a) => a.local)).toContain(pod.ipv4);
      const nodeRoutes = ipJson<{ dst: string; dev: string }[]>(lab.service(pod.node).ns, 'route', 'show');
      expect(nodeRoutes.find((r) => r.dst === pod.ipv4)?.dev).toMatch(/^pn[0-9a-f]{11}$/);
    }
  });

  it('deletes a pod like a kubelet: CNI DEL, its namespace and its Pod object go', async () => {
    const pod = lab.pods.find((p) => p.name === 'pod-node-b-1')!;
    await lab.deletePod(pod.name);
    expect(netns()).not.toContain(pod.ns);
    const nodeRoutes = ipJson<{ dst: string }[]>(lab.service('node-b').ns, 'route', 'show');
    expect(nodeRoutes.map((r) => r.dst)).not.toContain(pod.ipv4);
    expect(await lab.kube.get(`/api/v1/namespaces/default/pods/${pod.name}`)).toBeUndefined();
  });

  it('removes the API server, the pods’ namespaces and the state on down', async () => {
    const pids = lab.processes.map((p) => p.pid);
    await new Lab(config).down();
    expect(netns().filter((n) => n.startsWith(prefix))).toEqual([]);
    for (const pid of pids) expect(processStartTime(pid)).toBeUndefined();
    expect(existsSync(config.stateDir)).toBe(false);
  }, 60_000);
});
