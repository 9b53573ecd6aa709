// The real-cluster tier (docs/real-cluster.md): compose.yaml's namespaces running etcd,
// kube-apiserver (RBAC), kube-scheduler, kube-controller-manager, and containerd + a kubelet +
// kube-proxy on every node; podnet installed by `kubectl apply -k deploy/` with the agent image
// built from deploy/docker/Dockerfile. Pods are scheduled by the scheduler, wired by containerd
// through the CNI plugin, and probed by the kubelet. Runs only when the Kubernetes binaries are cached (scripts/kube-build.sh builds them
// once, tens of minutes on 2 cores); otherwise the suite is skipped and says why.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AGENT_NAMESPACE,
  type ClusterPod,
  cachedKubeBinDir,
  inSubnet,
  ipToBigInt,
  kubeBuildStatus,
  parseCidr,
  RealCluster,
  type RealClusterConfig,
  SERVICE_IP,
} from '@podnet/lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, routes, scenarioConfig } from './harness.js';

const binDir = cachedKubeBinDir(repoRoot);
if (!binDir)
  process.stderr.write(
    `cluster-real: skipped: the Kubernetes binaries are not cached yet: ${kubeBuildStatus(repoRoot)}. scripts/install.sh --tests advances the build each run (scripts/kube-build.sh --budget, PODNET_KUBE_BUILD_BUDGET); scripts/kube-build.sh alone builds them at once\n`,
  );

// A fixed prefix and state dir: the next run's `up` removes what an interrupted run left, its
// containers included (they live in the pods' network namespaces, not the lab's).
const config: RealClusterConfig = {
  ...scenarioConfig('k', { prefix: 'pnt-k8s-', stateDir: '/tmp/podnet-scenario-k8s' }),
  ...(binDir ? { kubeBinDir: binDir } : {}),
};
const APP = 'app=podnet-lab-test';

// LoadBalancer Services (docs/services.md): a pool inside the range BGPConfiguration lets the
// nodes announce, and busybox httpd pods whose CGI answers with the TCP peer's address.
const LB_RANGE = '192.0.2.0/24';
const LB_POOL = '192.0.2.0/28';
const LB_APP = 'podnet-lb';
const lbPoolYaml = `apiVersion: podnet.io/v1alpha1
kind: LoadBalancerPool
metadata:
  name: lab-lb
spec:
  addresses: ["${LB_POOL}"]
  autoAssign: true
`;
const peerServer = [
  'mkdir -p /tmp/www/cgi-bin && echo ok > /tmp/www/index.html',
  // CRLF after the header: Node's fetch refuses a bare LF there.
  `printf '%s\\n' '#!/bin/sh' 'printf "Content-Type: text/plain\\r\\n\\r\\n%s\\n" "$REMOTE_ADDR"' > /tmp/www/cgi-bin/peer`,
  'chmod +x /tmp/www/cgi-bin/peer',
  'exec httpd -f -p 8080 -h /tmp/www',
].join(' && ');

/** The next hops of every path the BIRD ToR holds for `prefix`, sorted. */
function torPaths(prefix: string): string[] {
  const sock = join(config.stateDir, 'tor', 'root', 'run', 'bird', 'bird.ctl');
  // birdc exits non-zero on "Network not found": read its output either way.
  const r = spawnSync('birdc', ['-s', sock, 'show', 'route', prefix], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) throw r.error;
  if (!/Network not found|Table master/.test(r.stdout))
    throw new Error(`birdc show route ${prefix}: ${r.stdout.trim() || r.stderr.trim()}`);
  return [...r.stdout.matchAll(/\bvia (\S+)/g)].map((m) => m[1] ?? '').sort();
}

/** Polls `read` every 250 ms until it equals `want` (bounded); the last reading. */
async function until<T>(read: () => T, want: T, boundMs = 30_000): Promise<T> {
  const t0 = Date.now();
  let last = read();
  while (JSON.stringify(last) !== JSON.stringify(want) && Date.now() - t0 < boundMs) {
    await new Promise((r) => setTimeout(r, 250));
    last = read();
  }
  return last;
}

/** An HTTP GET from a lab namespace (this Node's fetch, 3 s); the body, or undefined. */
function nsHttpGet(ns: string, url: string): string | undefined {
  const script =
    'fetch(process.argv[1], { signal: AbortSignal.timeout(3000) })' +
    '.then(async (r) => { if (!r.ok) process.exit(1); process.stdout.write(await r.text()); })' +
    '.catch(() => process.exit(1))';
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', script, url], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** GETs `url` from `ns` until it answers (bounded: kube-proxy's next sync). */
async function nsHttpGetRetry(ns: string, url: string): Promise<string | undefined> {
  for (let i = 0; i < 30; i++) {
    const body = nsHttpGet(ns, url);
    if (body !== undefined) return body;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return undefined;
}

/**
 * The peer address the CGI printed, as an IPv4 address: busybox httpd listens on a dual-stack
 * socket and prints an IPv4 peer as `[::ffff:a.b.c.d]`.
 */
const peerAddr = (body: string | undefined) =>
  body
    ?.trim()
    .replace(/^\[|\]$/g, '')
    .replace(/^::ffff:/i, '');

const label = (
  sa: string,
  verb: string,
  resource: string,
  opts: { namespace?: string; subresource?: string } | undefined,
  answer: 'yes' | 'no',
) =>
  `${sa} ${verb} ${resource}${opts?.subresource ? `/${opts.subresource}` : ''}${opts?.namespace ? ` -n ${opts.namespace}` : ''}: ${answer}`;

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

describe.skipIf(!binDir)(
  'real cluster: kubelet + containerd + kube-proxy + podnet’s DaemonSet (3 nodes, BIRD ToR, client)',
  () => {
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

    it('installs podnet with kubectl apply -k deploy/: the DaemonSet Ready on every node, every node Ready', async () => {
      const nodeNames = cluster.lab.nodes.map((n) => n.name).sort();
      const agents = await cluster.agentPods();
      expect(agents.map((a) => a.node).sort(), 'one agent pod per node').toEqual(nodeNames);
      expect(agents.every((a) => a.ready)).toBe(true);
      const st = await cluster.daemonSetStatus();
      expect(st).toMatchObject({
        desired: nodeNames.length,
        ready: nodeNames.length,
        updated: nodeNames.length,
      });
      // Nothing podnet-specific started by the lab: no agent or install-cni process of its own.
      expect(
        cluster.lab.processes.filter((p) =>
          p.argv.some((a) => a.includes('podnet-agent') || a.includes('agent/dist')),
        ),
      ).toEqual([]);
      const nodes = await cluster.kube.list('/api/v1/nodes');
      const ready = nodes
        .filter((n) =>
          ((n.status as { conditions?: { type: string; status: string }[] }).conditions ?? []).some(
            (c) => c.type === 'Ready' && c.status === 'True',
          ),
        )
        .map((n) => (n.metadata as { name: string }).name)
        .sort();
      expect(ready).toEqual(nodeNames);
    });

    it('the agents and the CNI plugin reach the API server through the kubernetes Service (kube-proxy)', async () => {
      for (const n of cluster.lab.nodes) {
        // The socket keeps the address the agent connected to; only kube-proxy's DNAT makes it work.
        expect(await cluster.agentConnections(n.name), `${n.name} agent's API connection`).toContain(
          `${SERVICE_IP}:443`,
        );
        expect(cluster.cniKubeconfigServer(n.name), `${n.name} CNI kubeconfig`).toBe(
          `https://${SERVICE_IP}:443`,
        );
      }
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

    it('answers on a ClusterIP Service through kube-proxy, from a pod on every node', async () => {
      const ip = await cluster.exposeTestPods();
      const clients = cluster.lab.nodes.map((n) => pods.find((p) => p.node === n.name));
      for (const from of clients) {
        if (!from) throw new Error('a node without a test pod');
        let body: string | undefined;
        // Bounded: the endpoints controller and kube-proxy's next sync.
        for (let i = 0; i < 30 && body === undefined; i++) {
          body = await cluster.httpGet(from, `http://${ip}/`);
          if (body === undefined) await new Promise((r) => setTimeout(r, 1000));
        }
        // On failure, say whether the pods themselves answer (then the Service path is at fault).
        const direct =
          body === undefined
            ? (
                await Promise.all(
                  pods.map(
                    async (p) =>
                      `${p.ip}: ${(await cluster.httpGet(from, `http://${p.ip}:8080/`))?.trim() ?? 'no answer'}`,
                  ),
                )
              ).join(', ')
            : '';
        expect(body?.trim(), `${from.name} (${from.node}) → ${ip}:80 (pods directly: ${direct})`).toBe('ok');
      }
    }, 120_000);

    it('RBAC: the agent and CNI service accounts may do what they need, and not what they must not', async () => {
      const ns = AGENT_NAMESPACE;
      const check = async (
        sa: string,
        verb: string,
        resource: string,
        opts: { namespace?: string; subresource?: string } = {},
      ) => label(sa, verb, resource, opts, (await cluster.canI(sa, verb, resource, opts)) ? 'yes' : 'no');
      const asked = [
        // podnet-agent: what it needs
        ['podnet-agent', 'watch', 'nodes'],
        ['podnet-agent', 'patch', 'nodes'],
        ['podnet-agent', 'watch', 'pods'],
        ['podnet-agent', 'patch', 'pods'],
        ['podnet-agent', 'watch', 'bgppeers.podnet.io'],
        ['podnet-agent', 'create', 'ippools.podnet.io'],
        ['podnet-agent', 'delete', 'ipamblocks.podnet.io'],
        ['podnet-agent', 'patch', 'bgppeers.podnet.io', { subresource: 'status' }],
        ['podnet-agent', 'create', 'leases.coordination.k8s.io', { namespace: ns }],
        ['podnet-agent', 'create', 'events', { namespace: 'default' }],
        ['podnet-agent', 'get', 'secrets/bgp-passwords', { namespace: ns }],
        ['podnet-agent', 'create', 'serviceaccounts/podnet-cni', { namespace: ns, subresource: 'token' }],
        // podnet-agent: what it must not
        ['podnet-agent', 'list', 'secrets', { namespace: ns }],
        ['podnet-agent', 'get', 'secrets/other', { namespace: ns }],
        ['podnet-agent', 'get', 'secrets', { namespace: 'kube-system' }],
        ['podnet-agent', 'create', 'serviceaccounts/podnet-agent', { namespace: ns, subresource: 'token' }],
        ['podnet-agent', 'update', 'leases.coordination.k8s.io/kube-controller-manager', { namespace: ns }],
        ['podnet-agent', 'create', 'pods', { namespace: 'default' }],
        ['podnet-agent', 'delete', 'pods', { namespace: 'default' }],
        ['podnet-agent', 'delete', 'nodes'],
        ['podnet-agent', 'update', 'ippools.podnet.io'],
        ['podnet-agent', 'delete', 'bgppeers.podnet.io'],
        ['podnet-agent', 'create', 'clusterrolebindings.rbac.authorization.k8s.io'],
        ['podnet-agent', 'patch', 'daemonsets.apps', { namespace: ns }],
        // podnet-cni: what it needs
        ['podnet-cni', 'get', 'pods', { namespace: 'default' }],
        ['podnet-cni', 'patch', 'pods', { namespace: 'default' }],
        ['podnet-cni', 'get', 'nodes'],
        ['podnet-cni', 'list', 'ippools.podnet.io'],
        ['podnet-cni', 'create', 'ipamhandles.podnet.io'],
        ['podnet-cni', 'update', 'ipamblocks.podnet.io'],
        ['podnet-cni', 'delete', 'ipamhandles.podnet.io'],
        // podnet-cni: what it must not
        ['podnet-cni', 'list', 'pods', { namespace: 'default' }],
        ['podnet-cni', 'watch', 'pods', { namespace: 'default' }],
        ['podnet-cni', 'delete', 'pods', { namespace: 'default' }],
        ['podnet-cni', 'patch', 'nodes'],
        ['podnet-cni', 'list', 'nodes'],
        ['podnet-cni', 'get', 'secrets', { namespace: ns }],
        ['podnet-cni', 'create', 'serviceaccounts/podnet-cni', { namespace: ns, subresource: 'token' }],
        ['podnet-cni', 'create', 'ippools.podnet.io'],
        ['podnet-cni', 'watch', 'bgppeers.podnet.io'],
      ] as const;
      const answers: string[] = [];
      for (const [sa, verb, resource, opts] of asked) answers.push(await check(sa, verb, resource, opts));
      expect(answers).toEqual([
        ...asked.slice(0, 12).map(([sa, v, r, o]) => label(sa, v, r, o, 'yes')),
        ...asked.slice(12, 24).map(([sa, v, r, o]) => label(sa, v, r, o, 'no')),
        ...asked.slice(24, 31).map(([sa, v, r, o]) => label(sa, v, r, o, 'yes')),
        ...asked.slice(31).map(([sa, v, r, o]) => label(sa, v, r, o, 'no')),
      ]);
    }, 180_000);

    it('rolls the DaemonSet (kubelet SIGTERM → graceful restart) without losing a ping between pods, onto the API endpoint override', async () => {
      const before = await cluster.agentPods();
      const api = cluster.apiEndpoint;
      // The override: kubernetes-services-endpoint names the API server itself, as for a cluster
      // whose CNI must work before kube-proxy. Applied by the rolling update below.
      await cluster.setApiEndpoint(api);
      // One pinger per node: a pod to a pod on the next node.
      const nodes = cluster.lab.nodes.map((n) => n.name);
      const pingers = nodes.map((n, i) => {
        const from = pods.find((p) => p.node === n);
        const to = pods.find((p) => p.node === nodes[(i + 1) % nodes.length]);
        if (!from || !to) throw new Error('a node without a test pod');
        return { pair: `${from.name} → ${to.name} (${to.ip})`, ping: cluster.startPing(from, to.ip) };
      });
      try {
        // Each ping has run for a second (so it reached its pod's namespace) before the rollout.
        await Promise.all(pingers.map((p) => p.ping.running(1000)));
        await cluster.restartAgents();
        await cluster.waitForRollout();
      } finally {
        const results = await Promise.all(
          pingers.map(async (p) => ({ pair: p.pair, ...(await p.ping.stop()) })),
        );
        for (const r of results) {
          expect(
            r.sent,
            `${r.pair}: pings sent during the rollout (ping ${r.exit}: ${r.stderr})`,
          ).toBeGreaterThan(10);
          expect(r.lost, `${r.pair}: unanswered icmp_seq`).toEqual([]);
        }
      }
      const after = await cluster.agentPods();
      expect(after.map((a) => a.node)).toEqual(before.map((a) => a.node));
      expect(
        after.filter((a) => before.some((b) => b.uid === a.uid)),
        'every agent pod replaced',
      ).toEqual([]);
      for (const n of nodes) {
        const conns = await cluster.agentConnections(n);
        expect(conns, `${n} agent connects to the override`).toContain(`${api.host}:${api.port}`);
        expect(conns, `${n} agent no longer uses the Service`).not.toContain(`${SERVICE_IP}:443`);
        expect(cluster.cniKubeconfigServer(n), `${n} CNI kubeconfig`).toBe(`https://${api.host}:${api.port}`);
      }
    }, 420_000);

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

    describe('a LoadBalancer Service to the ToR (kube-proxy DNAT, podnet announcements)', () => {
      const podNs = () => cluster.lab.project.settings.podNamespace;
      const nodeIp = (name: string) => cluster.lab.service(name).links[0]?.ipv4?.split('/')[0] ?? '';
      const client = () => {
        const c = cluster.lab.plan.services.find((s) => s.role === 'client');
        if (!c) throw new Error('no client service in the lab');
        return { ns: c.ns, ip: c.links[0]?.ipv4?.split('/')[0] ?? '' };
      };
      const servingNodes = () => cluster.lab.nodes.slice(0, 2).map((n) => n.name);

      async function createService(name: string, policy: 'Local' | 'Cluster', port: number): Promise<string> {
        await cluster.kube.apply(`/api/v1/namespaces/${podNs()}/services`, {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name, namespace: podNs() },
          spec: {
            type: 'LoadBalancer',
            externalTrafficPolicy: policy,
            selector: { app: LB_APP },
            ports: [{ name: 'http', port, targetPort: 8080, protocol: 'TCP' }],
          },
        } as never);
        let last: unknown;
        for (let i = 0; i < 150; i++) {
          const r = await cluster.kube.request('GET', `/api/v1/namespaces/${podNs()}/services/${name}`);
          const status = (r.body as { status?: { loadBalancer?: { ingress?: { ip?: string }[] } } }).status;
          last = status;
          const ip = status?.loadBalancer?.ingress?.[0]?.ip;
          if (ip) return ip;
          await new Promise((r) => setTimeout(r, 200));
        }
        throw new Error(`Service ${name} got no status.loadBalancer.ingress: ${JSON.stringify(last)}`);
      }

      let address = '';

      it('gives an externalTrafficPolicy Local Service an address from the pool; the ToR has its /32 via exactly the two serving nodes; the client reaches a pod and the pod sees the client’s address', async () => {
        // As a user would: the pool with kubectl apply, the announced range with kubectl patch.
        const file = join(config.stateDir, 'lb-pool.yaml');
        writeFileSync(file, lbPoolYaml);
        await cluster.kubectl(['apply', '-f', file]);
        await cluster.kubectl([
          'patch',
          'bgpconfigurations.podnet.io',
          'default',
          '--type=merge',
          '-p',
          JSON.stringify({ spec: { serviceLoadBalancerIPs: [{ cidr: LB_RANGE }] } }),
        ]);
        // One serving pod on each of two nodes (placed by nodeName).
        for (const node of servingNodes())
          await cluster.kube.apply(`/api/v1/namespaces/${podNs()}/pods`, {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: `${LB_APP}-${node}`, namespace: podNs(), labels: { app: LB_APP } },
            spec: {
              nodeName: node,
              terminationGracePeriodSeconds: 2,
              containers: [
                {
                  name: 'web',
                  image: 'podnet.local/busybox:lab',
                  imagePullPolicy: 'Never',
                  command: ['sh', '-c', peerServer],
                  ports: [{ containerPort: 8080 }],
                  readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 2 },
                },
              ],
            },
          } as never);
        const lbPods = await cluster.waitForPods(`app=${LB_APP}`, 2);
        expect(lbPods.map((p) => p.node).sort()).toEqual([...servingNodes()].sort());

        address = await createService('web-local', 'Local', 80);
        expect(inSubnet(address, parseCidr('pool', LB_POOL)), `${address} in ${LB_POOL}`).toBe(true);

        const both = servingNodes().map(nodeIp).sort();
        expect(await until(() => torPaths(`${address}/32`), both), `ToR paths for ${address}/32`).toEqual(
          both,
        );

        const { ns, ip: clientIp } = client();
        const body = peerAddr(await nsHttpGetRetry(ns, `http://${address}/cgi-bin/peer`));
        // On failure, tell the CGI from the path: the static page through the LB address, and
        // the pods' own addresses from the client.
        if (body === undefined)
          process.stderr.write(
            `cluster-real: no answer from ${address}/cgi-bin/peer; ${address}/: ${nsHttpGet(ns, `http://${address}/`) ?? 'no answer'}; ${lbPods.map((p) => `${p.ip}:8080/cgi-bin/peer: ${nsHttpGet(ns, `http://${p.ip}:8080/cgi-bin/peer`) ?? 'no answer'}`).join('; ')}\n`,
          );
        // eTP Local: kube-proxy DNATs to a local endpoint without SNAT; the pod sees the client.
        expect(body, `client → ${address}:80 → a pod's CGI (REMOTE_ADDR)`).toBe(clientIp);
      }, 240_000);

      it('withdraws a node’s next hop on the ToR when its serving pod goes', async () => {
        expect(address, 'the Service of the test before').not.toBe('');
        const [keep, drop] = servingNodes();
        await cluster.kube.delete(`/api/v1/namespaces/${podNs()}/pods/${LB_APP}-${drop}`);
        const one = [nodeIp(keep ?? '')];
        expect(
          await until(() => torPaths(`${address}/32`), one, 60_000),
          `ToR paths for ${address}/32 after ${drop}'s pod went`,
        ).toEqual(one);
        // Still served, through the node that keeps its endpoint.
        expect(peerAddr(await nsHttpGetRetry(client().ns, `http://${address}/cgi-bin/peer`))).toBe(
          client().ip,
        );
      }, 120_000);

      it('externalTrafficPolicy Cluster: every node announces the range; traffic works, SNATed by kube-proxy', async () => {
        const cluster4 = await createService('web-cluster', 'Cluster', 80);
        expect(inSubnet(cluster4, parseCidr('pool', LB_POOL))).toBe(true);
        const all = cluster.lab.nodes.map((n) => nodeIp(n.name)).sort();
        expect(await until(() => torPaths(LB_RANGE), all), `ToR paths for ${LB_RANGE}`).toEqual(all);
        const { ns, ip: clientIp } = client();
        const body = peerAddr(await nsHttpGetRetry(ns, `http://${cluster4}/cgi-bin/peer`));
        expect(body, `client → ${cluster4}:80 answered with the peer the pod saw`).toMatch(
          /^\d+\.\d+\.\d+\.\d+$/,
        );
        expect(body, 'the pod sees a node address, not the client (masquerade)').not.toBe(clientIp);
      }, 120_000);
    });
  },
);
