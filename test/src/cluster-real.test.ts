// The real-cluster tier (docs/real-cluster.md): compose.yaml's namespaces running etcd,
// kube-apiserver (RBAC), kube-scheduler, kube-controller-manager, and containerd + a kubelet on
// every node, with podnet's CNI plugin (installed by `podnet-agent install-cni`) and agent. Pods
// are scheduled by the scheduler, wired by containerd through the CNI plugin, and probed by the
// kubelet. Runs only when the Kubernetes binaries are cached (scripts/kube-build.sh builds them
// once, tens of minutes on 2 cores); otherwise the suite is skipped and says why.
import {
  type ClusterPod,
  cachedKubeBinDir,
  inSubnet,
  ipToBigInt,
  parseCidr,
  RealCluster,
  type RealClusterConfig,
} from '@podnet/lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, routes, scenarioConfig } from './harness.js';

const binDir = cachedKubeBinDir(repoRoot);
if (!binDir)
  process.stderr.write(
    'cluster-real: skipped: the Kubernetes binaries are not cached; build them once with scripts/kube-build.sh\n',
  );

// A fixed prefix and state dir: the next run's `up` removes what an interrupted run left, its
// containers included (they live in the pods' network namespaces, not the lab's).
const config: RealClusterConfig = {
  ...scenarioConfig('k', { prefix: 'pnt-k8s-', stateDir: '/tmp/podnet-scenario-k8s' }),
  ...(binDir ? { kubeBinDir: binDir } : {}),
};
const APP = 'app=podnet-lab-test';

async function allocated(cluster: RealCluster, ip: string): Promise<boolean | undefined> {
  for (const b of await cluster.kube.list('/apis/podnet.io/v1alpha1/ipamblocks')) {
    const spec = b.spec as { cidr?: string; allocations?: (number | null)[] } | undefined;
    if (!spec?.cidr) continue;
    const cidr = parseCidr('spec.cidr', spec.cidr);
    if (!inSubnet(ip, cidr)) continue;
    return spec.allocations?.[Number(ipToBigInt(ip) - ipToBigInt(cidr.address))] != null;
  }
  return undefined;
}

describe.skipIf(!binDir)('real cluster: kubelet + containerd + podnet (3 nodes, BIRD ToR, client)', () => {
  let cluster: RealCluster;
  let pods: ClusterPod[] = [];
  let replicas = 0;

  beforeAll(async () => {
    cluster = new RealCluster(config);
    await cluster.up();
    replicas = cluster.lab.nodes.length * cluster.lab.project.settings.podsPerNode;
    expect(replicas, 'x-podnet.podsPerNode × nodes').toBeGreaterThan(0);
    await cluster.deployTestPods(replicas);
    pods = await cluster.waitForPods(APP, replicas);
  }, 900_000);

  afterAll(() => new RealCluster(config).down({ quiet: true }), 120_000);

  it('registers every node and turns it Ready once podnet’s conflist is installed', async () => {
    const nodes = await cluster.kube.list('/api/v1/nodes');
    const ready = nodes
      .filter((n) =>
        ((n.status as { conditions?: { type: string; status: string }[] }).conditions ?? []).some(
          (c) => c.type === 'Ready' && c.status === 'True',
        ),
      )
      .map((n) => (n.metadata as { name: string }).name)
      .sort();
    expect(ready).toEqual(cluster.lab.nodes.map((n) => n.name).sort());
  });

  it('runs the scheduled pods with podnet addresses: status.podIP = podnet.io/podIP = eth0, in an IPPool', async () => {
    expect(pods.length).toBe(replicas);
    expect(new Set(pods.map((p) => p.node)).size, 'pods spread over every node').toBe(
      cluster.lab.nodes.length,
    );
    const pools = cluster.lab.project.settings.ipPools
      .filter((p) => !p.cidr.includes(':'))
      .map((p) => parseCidr('cidr', p.cidr));
    for (const p of pods) {
      expect(p.ready, `${p.name} Ready (the kubelet's HTTP probe passed)`).toBe(true);
      expect(p.annotatedIp, `${p.name} annotation`).toBe(p.ip);
      expect(
        pools.some((c) => inSubnet(p.ip, c)),
        `${p.ip} in a lab IPPool`,
      ).toBe(true);
      const eth0 = await cluster.podExec(p, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      expect(eth0.stdout, `${p.name} eth0`).toContain(` ${p.ip}/32 `);
      expect(await allocated(cluster, p.ip), `${p.ip} allocated in its IPAMBlock`).toBe(true);
    }
    expect(new Set(pods.map((p) => p.ip)).size, 'no two pods share an address').toBe(pods.length);
  });

  it('reaches every pod from every other pod (across nodes) and from the client through the ToR', async () => {
    const client = cluster.lab.plan.services.find((s) => s.role === 'client');
    expect(client, 'a client service').toBeDefined();
    // The client's only way to the pods is its default route via the ToR.
    expect(routes(client?.ns ?? '').some((r) => r.dst === 'default' && r.gateway)).toBe(true);
    let bad = await cluster.unreachable(pods);
    for (let i = 0; i < 10 && bad.length > 0; i++) bad = await cluster.unreachable(pods);
    expect(bad).toEqual([]);
  });

  it('frees a deleted pod’s address: CNI DEL through containerd removes its route and allocation', async () => {
    await cluster.createTestPod('podnet-lab-single');
    const [pod] = await cluster.waitForPods('app=podnet-lab-test-single', 1);
    if (!pod) throw new Error('no pod');
    const nodeNs = cluster.lab.service(pod.node).ns;
    expect(routes(nodeNs).some((r) => r.dst === pod.ip)).toBe(true);
    expect(await allocated(cluster, pod.ip)).toBe(true);
    await cluster.kube.delete(
      `/api/v1/namespaces/${cluster.lab.project.settings.podNamespace}/pods/${pod.name}`,
    );
    const deadline = Date.now() + 90_000;
    const gone = async () =>
      !routes(nodeNs).some((r) => r.dst === pod.ip) && (await allocated(cluster, pod.ip)) === false;
    while (!(await gone()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    expect(
      routes(nodeNs).some((r) => r.dst === pod.ip),
      `${pod.ip}/32 still routed on ${pod.node}`,
    ).toBe(false);
    expect(await allocated(cluster, pod.ip), `${pod.ip} still allocated`).toBe(false);
    const handles = await cluster.kube.list('/apis/podnet.io/v1alpha1/ipamhandles');
    expect(handles.map((h) => JSON.stringify(h)).filter((h) => h.includes(pod.name))).toEqual([]);
  }, 180_000);
});
