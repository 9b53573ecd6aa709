// Status in the Kubernetes API, in the lab (3 nodes, BIRD ToR, real kernels in namespaces): every
// agent writes its NodeStatus with its sessions Established; the elected writer fills the ToR
// BGPPeer's sessions per node and the pools' use; `podnetctl cluster status` reads them all in one
// table, and `podnetctl trace`, run in a node, explains a pod-to-pod path from the API, the node's
// kernel and its agent's BGP best path, the NetworkPolicy verdict of each side for a port (or any
// port) from a policy created in the API (and names what is missing on a broken path).
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downScenarioLab, type Lab, repoRoot, scenarioConfig, upScenarioLab } from './harness.js';

const pexec = promisify(execFile);
const CTL = join(repoRoot, 'packages/ctl/dist/cli.js');
// No host port forward: scenario labs run side by side.
const config = scenarioConfig('st', { podsPerNode: 1 });
let lab: Lab;

/** podnetctl in a node's namespace, with that node's kubeconfig; exit code kept. */
async function ctl(node: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const ns = lab.service(node).ns;
  const kc = join(config.stateDir, node, 'kubeconfig');
  try {
    const { stdout, stderr } = await pexec(
      'ip',
      ['netns', 'exec', ns, process.execPath, CTL, '--kubeconfig', kc, ...args],
      { timeout: 30_000 },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

interface ClusterDoc {
  nodes: {
    node: string;
    state: string;
    sessions: { peer: string; type: string; state: string; prefixesAccepted: number }[];
    routes?: { ipv4: { installed: number; failed: number } };
  }[];
}

interface Hop {
  hop: string;
  status: string;
  detail: string;
}

beforeAll(async () => {
  lab = await upScenarioLab(config);
});

afterAll(() => downScenarioLab(config));

describe('status resources and podnetctl in the lab (3 nodes, BIRD ToR)', () => {
  it("counts each pod's ADD, run by the standalone CNI plugin, in its node agent's CNI latency histogram", async () => {
    // The plugin leaves a timing record; the agent reads records about every second (bounded wait).
    const added = async (node: string): Promise<number> => {
      const { stdout } = await pexec(
        'ip',
        [
          'netns',
          'exec',
          lab.service(node).ns,
          'curl',
          '-sf',
          '--max-time',
          '3',
          'http://127.0.0.1:9099/metrics',
        ],
        { timeout: 10_000 },
      );
      const line = stdout
        .split('\n')
        .find((l) =>
          l.startsWith('podnet_cni_duration_seconds_count{command="ADD",result="success",via="plugin"}'),
        );
      return line ? Number(line.split(' ').pop()) : 0;
    };
    for (const node of ['node-a', 'node-b', 'node-c']) {
      const pods = lab.pods.filter((p) => p.node === node).length;
      expect(pods).toBeGreaterThan(0);
      const deadline = Date.now() + 15_000;
      let seen = await added(node);
      while (seen < pods && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        seen = await added(node);
      }
      expect(seen, node).toBe(pods);
    }
  });

  it('shows the NodeStatus of every node Ready with all sessions Established in `podnetctl cluster status`', async () => {
    const nodes = ['node-a', 'node-b', 'node-c'];
    let doc: ClusterDoc = { nodes: [] };
    // Bounded: the agents write when their state settles (at most every 10 s each).
    for (let i = 0; i < 90; i++) {
      const r = await ctl('node-a', ['cluster', 'status', '-o', 'json']);
      doc = JSON.parse(r.stdout) as ClusterDoc;
      const ok =
        r.code === 0 &&
        nodes.every((n) => {
          const x = doc.nodes.find((y) => y.node === n);
          return (
            x?.state === 'Ready' &&
            x.sessions.length >= 3 &&
            x.sessions.every((s) => s.state === 'Established') &&
            (x.routes?.ipv4.installed ?? 0) > 0
          );
        });
      if (ok) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(doc.nodes.map((n) => n.node)).toEqual(nodes);
    for (const n of doc.nodes) {
      expect(n.state, n.node).toBe('Ready');
      // Two mesh sessions and the ToR, each Established, each with what it accepted.
      expect(n.sessions.filter((s) => s.type === 'mesh')).toHaveLength(2);
      expect(n.sessions.some((s) => s.type !== 'mesh')).toBe(true);
      expect(n.sessions.every((s) => s.state === 'Established')).toBe(true);
      expect(n.routes!.ipv4.failed).toBe(0);
    }
    const table = await ctl('node-b', ['cluster', 'status']);
    process.stderr.write(`\n$ podnetctl cluster status\n${table.stdout}\n`);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/3 of 3 nodes Ready; (\d+) of \1 sessions Established\./);
  });

  it("fills the ToR BGPPeer's status with every node's session, Established", async () => {
    const kc = join(config.stateDir, 'node-a', 'kubeconfig');
    let status: { established?: number; sessions?: number; nodes?: { node: string; state: string }[] } = {};
    let name = '';
    for (let i = 0; i < 60; i++) {
      const { stdout } = await pexec('ip', [
        'netns',
        'exec',
        lab.service('node-a').ns,
        'kubectl',
        '--kubeconfig',
        kc,
        'get',
        'bgppeers.podnet.io',
        '-o',
        'json',
      ]);
      const items = (
        JSON.parse(stdout) as { items: { metadata: { name: string }; status?: typeof status }[] }
      ).items;
      const tor = items.find((p) => (p.status?.sessions ?? 0) > 0) ?? items[0];
      name = tor?.metadata.name ?? '';
      status = tor?.status ?? {};
      if (status.established === 3) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(name).not.toBe('');
    expect(status).toMatchObject({ established: 3, sessions: 3 });
    expect(status.nodes!.map((n) => `${n.node} ${n.state}`)).toEqual([
      'node-a Established',
      'node-b Established',
      'node-c Established',
    ]);
  });

  it('traces a pod on node-a to a pod on node-b hop by hop, from the kernel of each node', async () => {
    const a = lab.pods.find((p) => p.node === 'node-a')!;
    const b = lab.pods.find((p) => p.node === 'node-b')!;
    const args = ['trace', `${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`];
    const fromA = await ctl('node-a', [...args, '-o', 'json']);
    const docA = JSON.parse(fromA.stdout) as { ip: string; hops: Hop[] };
    const hopA = (h: string) => docA.hops.find((x) => x.hop === h)!;
    expect(docA.ip).toBe(b.ipv4);
    expect(hopA('source veth')).toMatchObject({ status: 'ok' });
    expect(hopA('source veth').detail).toMatch(
      new RegExp(`^${a.ipv4!.replace(/\./g, '\\.')}/32 dev pn[0-9a-f]{11} proto podnet`),
    );
    expect(hopA('route to destination node')).toMatchObject({ status: 'ok' });
    expect(hopA('route to destination node').detail).toMatch(/session with node-b \(.+\) Established/);
    // The block route learned over BGP, the agent's best path and the peer it came from.
    expect(hopA('kernel route')).toMatchObject({ status: 'ok' });
    expect(hopA('kernel route').detail).toMatch(
      / via \S+ proto podnet; BGP best path .+ from peer \S+ \(agent: installed\)$/,
    );
    expect(hopA('destination veth')).toMatchObject({ status: 'not-checked' });
    expect(fromA.code).toBe(0);
    const fromB = JSON.parse((await ctl('node-b', [...args, '-o', 'json'])).stdout) as { hops: Hop[] };
    expect(fromB.hops.find((x) => x.hop === 'destination veth')).toMatchObject({ status: 'ok' });
    const table = await ctl('node-a', args);
    process.stderr.write(`\n$ podnetctl trace ${args.slice(1).join(' ')}   # on node-a\n${table.stdout}\n`);
  });

  it('gives the NetworkPolicy verdict of each side from the policies in the API, for a port or any port', async () => {
    const a = lab.pods.find((p) => p.node === 'node-a')!;
    const b = lab.pods.find((p) => p.node === 'node-b')!;
    // Every lab pod isolated for ingress, TCP 80 allowed from anywhere.
    const file = join(config.stateDir, 'trace-policy.json');
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'web-only', namespace: b.namespace },
        spec: { podSelector: { matchLabels: { app: 'podnet-lab' } }, ingress: [{ ports: [{ port: 80 }] }] },
      }),
    );
    const kc = join(config.stateDir, 'node-a', 'kubeconfig');
    await pexec('ip', [
      'netns',
      'exec',
      lab.service('node-a').ns,
      'kubectl',
      '--kubeconfig',
      kc,
      'create',
      '-f',
      file,
    ]);
    const args = ['trace', `${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`];
    const verdict = async (...extra: string[]) => {
      const r = await ctl('node-a', [...args, ...extra, '-o', 'json']);
      const doc = JSON.parse(r.stdout) as { hops: (Hop & { where: string; decidedBy?: string[] })[] };
      return {
        code: r.code,
        egress: doc.hops.find((h) => h.hop === 'egress policy')!,
        ingress: doc.hops.find((h) => h.hop === 'ingress policy')!,
      };
    };
    const on80 = await verdict('--port', '80');
    expect(on80.egress).toMatchObject({ where: 'node node-a', status: 'ok', decidedBy: [] });
    expect(on80.ingress).toMatchObject({
      where: 'node node-b',
      status: 'ok',
      detail: `allowed from ${a.ipv4} on TCP port 80 by ${b.namespace}/web-only ingress[0]`,
      decidedBy: [`${b.namespace}/web-only`],
    });
    expect(on80.code).toBe(0);
    const on81 = await verdict('--port', '81');
    expect(on81.ingress).toMatchObject({ status: 'problem', decidedBy: [`${b.namespace}/web-only`] });
    expect(on81.ingress.detail).toMatch(
      /^denied from \S+ on TCP port 81: .* isolated for ingress by \S+\/web-only/,
    );
    expect(on81.code).toBe(1);
    const any = await verdict();
    expect(any.ingress).toMatchObject({ status: 'partial' });
    expect(any.ingress.detail).toMatch(/only on TCP\/80 by \S+\/web-only ingress\[0\]/);
    const table = await ctl('node-a', [...args, '--port', '81']);
    process.stderr.write(
      `\n$ podnetctl trace ${args.slice(1).join(' ')} --port 81   # on node-a\n${table.stdout}\n`,
    );
    await pexec('ip', [
      'netns',
      'exec',
      lab.service('node-a').ns,
      'kubectl',
      '--kubeconfig',
      kc,
      'delete',
      '-f',
      file,
    ]);
  });

  it("names what is missing: an address of node-a's block that no pod holds is dropped by the block's blackhole", async () => {
    const a = lab.pods.find((p) => p.node === 'node-a')!;
    // The next address of the pod's own block: allocated to no pod (one pod per node).
    const parts = a.ipv4!.split('.').map(Number);
    const free = [...parts.slice(0, 3), parts[3]! % 64 === 63 ? parts[3]! - 1 : parts[3]! + 1].join('.');
    const r = await ctl('node-a', ['trace', `${a.namespace}/${a.name}`, free, '-o', 'json']);
    const doc = JSON.parse(r.stdout) as { hops: Hop[] };
    expect(doc.hops.find((x) => x.hop === 'kernel route')).toMatchObject({
      status: 'problem',
      detail: expect.stringMatching(
        /^blackhole \S+ proto podnet drops it: .* is in this node's block \S+ but no pod here has it$/,
      ),
    });
    expect(r.code).toBe(1);
  });
});
