// The real-cluster mode (`npm run lab -- --cluster real`, docs/real-cluster.md): compose.yaml's
// namespaces with real Kubernetes in them. The apiserver service's namespace runs etcd,
// kube-apiserver (RBAC on), kube-scheduler and kube-controller-manager; each node's namespace runs
// containerd, a kubelet (in a private mount namespace of its own: its /etc/cni/net.d,
// /opt/cni/bin, /var/lib/kubelet, /run/containerd and /run/netns) and kube-proxy. podnet is
// installed as users install it: `kubectl apply -k deploy/`, with the agent image built from
// deploy/docker/Dockerfile (agent-image.ts) and imported into every node's containerd; the
// DaemonSet's pods reach the API server through the `kubernetes` Service (kube-proxy) unless the
// kubernetes-services-endpoint ConfigMap overrides it. The ToRs and the client are the lab's. Every process is started through Lab.spawnDetached (recorded, stopped by
// pid); `down` first kills the containers (descendants of the nodes' containerd shims, which live
// in the pods' network namespaces), then the lab's namespaces and state.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { LabError, LabErrorCode } from '../errors.js';
import { Kube } from '../kube.js';
import { labObjects } from '../objects.js';
import type { PlannedService } from '../plan.js';
import { serviceAddress } from '../plan.js';
import { Lab, type LabConfig } from '../runner.js';
import { elapsed, exec, mapLimit, sleep, tail, waitUntil } from '../sh.js';
import type { ProcessRecord } from '../state.js';
import { buildAgentArchive, daemonSetImage, stopBuilder } from './agent-image.js';
import { BUSYBOX_IMAGE, labImages, PAUSE_IMAGE } from './images.js';
import { inNet, killContainers, startContainerd, waitAlive } from './node.js';
import { type CertSpec, kubeconfigFor, makePki, type Pki } from './pki.js';

export const KUBE_BINARIES = [
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubelet',
  'kube-proxy',
] as const;

/** The cached Kubernetes binaries (scripts/kube-build.sh --print-dir), or undefined. */
export function cachedKubeBinDir(repoRoot: string): string | undefined {
  const r = spawnSync(join(repoRoot, 'scripts', 'kube-build.sh'), ['--print-dir'], { encoding: 'utf8' });
  const dir = r.status === 0 ? r.stdout.trim() : '';
  return dir && KUBE_BINARIES.every((b) => existsSync(join(dir, b))) ? dir : undefined;
}

/** How far the cached build is (`scripts/kube-build.sh --status`: complete, or binaries and packages so far). */
export function kubeBuildStatus(repoRoot: string): string {
  const r = spawnSync(join(repoRoot, 'scripts', 'kube-build.sh'), ['--status'], { encoding: 'utf8' });
  return (r.stdout.trim() || r.stderr.trim() || `exit ${r.status}`).split('\n')[0] ?? '';
}

/** The Service range of the lab cluster: its first address is the `kubernetes` Service. */
export const SERVICE_CIDR = '10.96.0.0/24';
export const SERVICE_IP = '10.96.0.1';
export const AGENT_NAMESPACE = 'podnet-system';
const AGENT_DAEMONSET = 'podnet-agent';
/**
 * The optional ConfigMap (in podnet-system) whose keys KUBERNETES_SERVICE_HOST and
 * KUBERNETES_SERVICE_PORT replace the `kubernetes` Service address in the agent's and install-cni's
 * environment (deploy/daemonset.yaml, envFrom): for clusters whose CNI starts before kube-proxy.
 */
export const API_ENDPOINT_CONFIGMAP = 'kubernetes-services-endpoint';
const TEST_APP = 'podnet-lab-test';

export interface ClusterTimeouts {
  apiMs: number;
  nodeMs: number;
  podMs: number;
  /** A DaemonSet rollout (every node's agent pod updated and Ready). */
  rolloutMs: number;
}
const defaultTimeouts: ClusterTimeouts = {
  apiMs: 120_000,
  nodeMs: 180_000,
  podMs: 180_000,
  rolloutMs: 300_000,
};

export interface RealClusterConfig extends LabConfig {
  /** Directory holding the binaries of KUBE_BINARIES (default: the cache of scripts/kube-build.sh). */
  kubeBinDir?: string;
  clusterTimeouts?: Partial<ClusterTimeouts>;
}

/** A pod as the API server and the node's containerd see it. */
export interface ClusterPod {
  name: string;
  node: string;
  ip: string;
  /** podnet's annotation podnet.io/podIP (what the CNI plugin wrote). */
  annotatedIp: string | undefined;
  /** The sandbox's PID on the host: /proc/<pid>/ns/net is the pod's network namespace. */
  pid: number;
  ready: boolean;
}

type Obj = Record<string, unknown> & { metadata?: { name?: string; namespace?: string } };

export class RealCluster {
  readonly lab: Lab;
  private client: Kube | undefined;
  private readonly binDir: string;
  private readonly timeouts: ClusterTimeouts;
  private readonly log: (line: string) => void;
  private pki: Pki | undefined;
  /** Node name → PID of its mount-namespace holder. */
  private readonly mounts = new Map<string, number>();

  constructor(readonly config: RealClusterConfig) {
    // The cluster is its own API server: never the lab's outside-API mode.
    const { kubeconfig: _outside, ...labConfig } = config;
    // Only wireOnly() and startService() of the Lab are used: its own agents and pods never start.
    this.lab = new Lab({ ...labConfig, agents: false });
    this.log = config.log ?? (() => {});
    this.timeouts = { ...defaultTimeouts, ...config.clusterTimeouts };
    this.binDir = config.kubeBinDir ?? cachedKubeBinDir(config.repoRoot) ?? '';
  }

  /** The runner's client: the admin certificate, over the unix socket forwarded to kube-apiserver. */
  get kube(): Kube {
    if (this.client) return this.client;
    const pki = join(this.dir, 'pki');
    const pem = (f: string) => (existsSync(join(pki, f)) ? readFileSync(join(pki, f), 'utf8') : undefined);
    const [caPem, certPem, keyPem] = [pem('ca.crt'), pem('admin.crt'), pem('admin.key')];
    this.client = new Kube({
      socketPath: this.lab.apiSocket,
      url: `https://kubernetes:${this.port}`,
      servername: 'kubernetes',
      ...(caPem && certPem && keyPem ? { caPem, certPem, keyPem } : {}),
    });
    return this.client;
  }

  /** Where the cluster's files live (PKI, kubeconfigs, images, etcd). */
  get dir(): string {
    return join(this.config.stateDir, 'cluster');
  }

  private get port(): number {
    return this.lab.project.settings.apiServer.port;
  }

  private get apiService(): PlannedService {
    const api = this.lab.plan.services.find((s) => s.role === 'apiserver');
    if (!api)
      throw new LabError(LabErrorCode.composeInvalid, 'compose: the real cluster needs an apiserver service');
    return api;
  }

  private get apiIp(): string {
    const ip = serviceAddress(this.apiService, 4);
    if (!ip)
      throw new LabError(LabErrorCode.composeInvalid, `compose: ${this.apiService.name} has no IPv4 address`);
    return ip;
  }

  private nodeDir(node: string): string {
    return join(this.config.stateDir, node, 'k8s');
  }

  private bin(name: (typeof KUBE_BINARIES)[number]): string {
    const path = join(this.binDir, name);
    if (!this.binDir || !existsSync(path))
      throw new LabError(
        LabErrorCode.missingBuild,
        `${name} is not built: run scripts/kube-build.sh (builds Kubernetes 1.20.2 from Debian's source once, then caches it)`,
      );
    return path;
  }

  private spawn(service: string, argv: string[], env: Record<string, string> = {}): ProcessRecord {
    return this.lab.spawnDetached(
      service,
      undefined,
      argv,
      env,
      join(this.config.stateDir, 'logs', `${service}.log`),
    );
  }

  // ---------------------------------------------------------------- up

  async up(): Promise<void> {
    const t0 = Date.now();
    const step = (line: string) => this.log(`✓ ${line} (${elapsed(t0)})`);
    for (const b of KUBE_BINARIES) this.bin(b);
    await this.down({ quiet: true });
    await this.lab.wireOnly();
    step(`${this.lab.plan.services.length + 1} namespaces wired`);
    for (const tor of this.lab.tors) await this.lab.startService(tor.name);
    this.pki = await this.makePki();
    step('certificates and keys made (openssl)');
    await this.startControlPlane();
    step(
      `kube-apiserver https://${this.apiIp}:${this.port} ready; etcd, kube-scheduler, kube-controller-manager started`,
    );
    await this.applyPodnetObjects();
    step('podnet namespace, RBAC, CRDs, IPPools, BGPConfiguration and ToR BGPPeers applied');
    const images = await labImages(this.config.repoRoot, join(this.dir, 'images'));
    const agentRef = daemonSetImage(this.config.repoRoot);
    const agentTar = join(this.dir, 'images', 'agent.tar');
    await buildAgentArchive({
      repoRoot: this.config.repoRoot,
      ref: agentRef,
      out: agentTar,
      ns: this.builderNs,
    });
    images.push({ ref: agentRef, tar: agentTar });
    step(`images built: ${images.map((i) => i.ref).join(', ')} (deploy/docker/Dockerfile, docker save)`);
    await Promise.all(this.lab.nodes.map((node) => this.startNode(node, images)));
    step(`containerd (images imported with ctr), kubelet and kube-proxy on ${this.lab.nodes.length} nodes`);
    await this.waitForNodes(false);
    step(`${this.lab.nodes.length} kubelets registered (NotReady until a CNI conflist is there)`);
    await this.kubectl(['apply', '-k', join(this.config.repoRoot, 'deploy')], 120_000);
    step('kubectl apply -k deploy/');
    await this.waitForRollout();
    step(`DaemonSet ${AGENT_DAEMONSET} rolled out: an agent pod Ready on every node`);
    await this.waitForNodes(true);
    step(`${this.lab.nodes.length} nodes Ready`);
    if (this.lab.tors.length > 0) {
      await this.lab.waitForSessions();
      step('BGP sessions between the ToR and every node established');
    }
  }

  private async makePki(): Promise<Pki> {
    const nodes = this.lab.nodes;
    const certs: CertSpec[] = [
      {
        name: 'apiserver',
        cn: 'kube-apiserver',
        sans: [
          `IP:${this.apiIp}`,
          `IP:${SERVICE_IP}`,
          'IP:127.0.0.1',
          'DNS:kubernetes',
          'DNS:kubernetes.default',
          'DNS:kubernetes.default.svc',
          'DNS:kubernetes.default.svc.cluster.local',
        ],
      },
      { name: 'admin', cn: 'podnet-lab-admin', orgs: ['system:masters'] },
      { name: 'apiserver-kubelet-client', cn: 'kube-apiserver-kubelet-client', orgs: ['system:masters'] },
      { name: 'kube-scheduler', cn: 'system:kube-scheduler' },
      { name: 'kube-controller-manager', cn: 'system:kube-controller-manager' },
      // Bound to the built-in ClusterRole system:node-proxier.
      { name: 'kube-proxy', cn: 'system:kube-proxy' },
      ...nodes.map((n) => ({
        name: `node-${n.name}`,
        cn: `system:node:${n.name}`,
        orgs: ['system:nodes'],
        sans: [`DNS:${n.name}`, ...(serviceAddress(n, 4) ? [`IP:${serviceAddress(n, 4)}`] : [])],
      })),
    ];
    const pki = await makePki(join(this.dir, 'pki'), certs);
    const kc = (name: string, server: string) =>
      writeFileSync(
        join(this.dir, `${name}.kubeconfig`),
        kubeconfigFor(server, pki.caCrt, { crt: pki.crt(name), key: pki.key(name) }),
      );
    const local = `https://127.0.0.1:${this.port}`;
    kc('admin', local);
    kc('kube-scheduler', local);
    kc('kube-controller-manager', local);
    for (const n of nodes) kc(`node-${n.name}`, `https://${this.apiIp}:${this.port}`);
    kc('kube-proxy', `https://${this.apiIp}:${this.port}`);
    this.client = undefined; // made again from the new certificates
    return pki;
  }

  private async startControlPlane(): Promise<void> {
    const pki = this.pki;
    if (!pki) throw new Error('startControlPlane before makePki');
    const api = this.apiService;
    const etcdDir = join(this.dir, 'etcd');
    mkdirSync(etcdDir, { recursive: true });
    const etcd = this.spawn(
      'etcd',
      inNet(api.ns, [
        'etcd',
        '--name=lab',
        `--data-dir=${etcdDir}`,
        '--listen-client-urls=http://127.0.0.1:2379',
        '--advertise-client-urls=http://127.0.0.1:2379',
        '--listen-peer-urls=http://127.0.0.1:2380',
        '--initial-advertise-peer-urls=http://127.0.0.1:2380',
        '--initial-cluster=lab=http://127.0.0.1:2380',
      ]),
    );
    const apiserver = this.spawn(
      'kube-apiserver',
      inNet(api.ns, [
        this.bin('kube-apiserver'),
        '--etcd-servers=http://127.0.0.1:2379',
        `--advertise-address=${this.apiIp}`,
        '--bind-address=0.0.0.0',
        `--secure-port=${this.port}`,
        '--insecure-port=0',
        '--authorization-mode=Node,RBAC',
        '--enable-admission-plugins=NodeRestriction',
        '--allow-privileged=true',
        `--client-ca-file=${pki.caCrt}`,
        `--tls-cert-file=${pki.crt('apiserver')}`,
        `--tls-private-key-file=${pki.key('apiserver')}`,
        `--kubelet-client-certificate=${pki.crt('apiserver-kubelet-client')}`,
        `--kubelet-client-key=${pki.key('apiserver-kubelet-client')}`,
        '--kubelet-preferred-address-types=InternalIP',
        `--service-account-key-file=${pki.saPub}`,
        `--service-account-signing-key-file=${pki.saKey}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--v=1',
      ]),
    );
    this.lab.spawnDetached(
      `${api.name}-forward`,
      api.ns,
      [
        process.execPath,
        join(this.config.repoRoot, 'packages', 'lab', 'dist', 'forward.js'),
        `unix:${this.lab.apiSocket}`,
        `tcp:127.0.0.1:${this.port}`,
      ],
      {},
      join(this.config.stateDir, 'logs', `${api.name}-forward.log`),
    );
    await waitAlive(
      `kube-apiserver to answer GET /readyz (log: ${apiserver.log})`,
      [etcd, apiserver],
      async () => (await this.kube.request('GET', '/readyz')).status === 200,
      { timeoutMs: this.timeouts.apiMs, intervalMs: 500 },
    );
    const common = ['--leader-elect=false', '--bind-address=127.0.0.1', '--port=0', '--v=1'];
    this.spawn(
      'kube-scheduler',
      inNet(api.ns, [
        this.bin('kube-scheduler'),
        `--kubeconfig=${join(this.dir, 'kube-scheduler.kubeconfig')}`,
        ...common,
      ]),
    );
    this.spawn(
      'kube-controller-manager',
      inNet(api.ns, [
        this.bin('kube-controller-manager'),
        `--kubeconfig=${join(this.dir, 'kube-controller-manager.kubeconfig')}`,
        // The DaemonSet (and every other) controller acts with its own service account's rights.
        '--use-service-account-credentials',
        `--service-account-private-key-file=${pki.saKey}`,
        `--root-ca-file=${pki.caCrt}`,
        `--cluster-signing-cert-file=${pki.caCrt}`,
        `--cluster-signing-key-file=${pki.caKey}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        ...common,
      ]),
    );
  }

  // ---------------------------------------------------------------- objects

  /** Applies one object by kind (the kinds deploy/ and the lab use). */
  async applyObject(obj: Obj): Promise<void> {
    const kind = obj.kind as string;
    const ns = obj.metadata?.namespace ?? AGENT_NAMESPACE;
    const paths: Record<string, string> = {
      Namespace: '/api/v1/namespaces',
      ServiceAccount: `/api/v1/namespaces/${ns}/serviceaccounts`,
      ConfigMap: `/api/v1/namespaces/${ns}/configmaps`,
      ClusterRole: '/apis/rbac.authorization.k8s.io/v1/clusterroles',
      ClusterRoleBinding: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
      Role: `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`,
      RoleBinding: `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`,
      CustomResourceDefinition: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
      IPPool: '/apis/podnet.io/v1alpha1/ippools',
      BGPConfiguration: '/apis/podnet.io/v1alpha1/bgpconfigurations',
      BGPPeer: '/apis/podnet.io/v1alpha1/bgppeers',
    };
    const path = paths[kind];
    if (!path)
      throw new LabError(LabErrorCode.usage, `real cluster: no path known for kind ${JSON.stringify(kind)}`);
    await this.kube.apply(path, obj as { metadata: { name: string } });
  }

  private async applyFile(file: string): Promise<number> {
    let n = 0;
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      const obj = doc.toJS() as Obj | null;
      if (!obj?.kind || obj.kind === 'Kustomization') continue;
      await this.applyObject(obj);
      n++;
    }
    return n;
  }

  /** deploy/namespace.yaml, deploy/rbac.yaml and the CRDs as users apply them; the lab's pools and peers. */
  private async applyPodnetObjects(): Promise<void> {
    const deploy = join(this.config.repoRoot, 'deploy');
    await this.applyFile(join(deploy, 'namespace.yaml'));
    await this.applyFile(join(deploy, 'rbac.yaml'));
    for (const f of readdirSync(join(deploy, 'crds'))
      .filter((f) => f.startsWith('podnet.io_'))
      .sort())
      await this.applyFile(join(deploy, 'crds', f));
    await waitUntil(
      'the podnet.io/v1alpha1 resources to be served',
      async () => (await this.kube.request('GET', '/apis/podnet.io/v1alpha1/ippools')).status === 200,
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    const objects = labObjects(this.lab.project.settings, this.lab.model, this.lab.tors);
    // The graceful-restart time is deploy/'s (agent.yaml gracefulRestartTime, 120 s), not
    // compose.yaml's 15 s for the namespace lab's quick failure scenarios: a DaemonSet pod's restart
    // (SIGTERM, two init containers, the agent's start) takes tens of seconds, longer under load,
    // and peers drop a restarting node's routes when the time runs out.
    const gr = (objects.bgpConfiguration.spec as { gracefulRestart?: { restartTime?: number } })
      .gracefulRestart;
    if (gr) delete gr.restartTime;
    for (const obj of [...objects.ipPools, objects.bgpConfiguration, ...objects.bgpPeers])
      await this.applyObject(obj);
  }

  // ---------------------------------------------------------------- nodes

  private async startNode(node: PlannedService, images: { ref: string; tar: string }[]): Promise<void> {
    const pki = this.pki;
    if (!pki) throw new Error('startNode before makePki');
    const d = this.nodeDir(node.name);
    const ip = serviceAddress(node, 4);
    if (!ip)
      throw new LabError(LabErrorCode.composeInvalid, `compose: node ${node.name} has no IPv4 address`);
    const { holderPid, sock } = await startContainerd({
      name: node.name,
      ns: node.ns,
      dir: d,
      images,
      spawn: (service, argv) => this.spawn(service, argv),
    });
    this.mounts.set(node.name, holderPid);

    // kubelet: cgroupfs, no QoS cgroups, nothing enforced; its own root dir (the mount namespace's).
    const kcfg = join(d, 'kubelet.yaml');
    writeFileSync(kcfg, kubeletConfig(ip, pki, `node-${node.name}`));
    this.spawn(
      `${node.name}-kubelet`,
      inNet(
        node.ns,
        [
          this.bin('kubelet'),
          `--config=${kcfg}`,
          `--kubeconfig=${join(this.dir, `node-${node.name}.kubeconfig`)}`,
          '--container-runtime=remote',
          `--container-runtime-endpoint=unix://${sock}`,
          `--hostname-override=${node.name}`,
          `--node-ip=${ip}`,
          `--pod-infra-container-image=${PAUSE_IMAGE}`,
          '--cgroup-driver=cgroupfs',
          '--cgroups-per-qos=false',
          '--enforce-node-allocatable=',
          '--root-dir=/var/lib/kubelet',
          '--v=1',
        ],
        holderPid,
      ),
    );
    // kube-proxy (iptables mode) in the node's network namespace: Services, the `kubernetes` one
    // included, for the node's own processes (hostNetwork pods) and its pods. Global conntrack
    // sysctls are left alone (0 = as is): they are not the node namespace's to set.
    this.spawn(
      `${node.name}-kube-proxy`,
      inNet(
        node.ns,
        [
          this.bin('kube-proxy'),
          `--kubeconfig=${join(this.dir, 'kube-proxy.kubeconfig')}`,
          `--hostname-override=${node.name}`,
          `--bind-address=${ip}`,
          '--proxy-mode=iptables',
          '--conntrack-max-per-core=0',
          '--conntrack-tcp-timeout-established=0',
          '--conntrack-tcp-timeout-close-wait=0',
          '--metrics-bind-address=127.0.0.1:10249',
          '--healthz-bind-address=127.0.0.1:10256',
          '--v=1',
        ],
        holderPid,
      ),
    );
  }

  /** Waits for every node object; Ready ones when `ready`. */
  async waitForNodes(ready: boolean): Promise<void> {
    let last = '';
    await waitAlive(
      ready ? 'every node Ready' : 'every kubelet to register its node',
      this.lab.processes,
      async () => {
        const nodes = await this.kube.list('/api/v1/nodes');
        const state = new Map(
          nodes.map((n) => {
            const conds =
              (n.status as { conditions?: { type: string; status: string; message?: string }[] })
                ?.conditions ?? [];
            const r = conds.find((c) => c.type === 'Ready');
            return [
              (n.metadata as { name: string }).name,
              r?.status === 'True' ? 'Ready' : `NotReady (${r?.message ?? 'no condition'})`,
            ];
          }),
        );
        last = this.lab.nodes.map((n) => `${n.name}: ${state.get(n.name) ?? 'not registered'}`).join('; ');
        return this.lab.nodes.every((n) => state.has(n.name) && (!ready || state.get(n.name) === 'Ready'));
      },
      { timeoutMs: this.timeouts.nodeMs, intervalMs: 1000 },
    ).catch((err: LabError) => {
      throw new LabError(err.code, `${err.message}: ${last}\n${this.nodeLogTails()}`);
    });
  }

  private nodeLogTails(): string {
    return this.lab.nodes
      .map(
        (n) =>
          `--- ${n.name} kubelet log:\n${tail(join(this.config.stateDir, 'logs', `${n.name}-kubelet.log`), 6)}`,
      )
      .join('\n');
  }

  // ---------------------------------------------------------------- podnet

  /** The network namespace of the agent image's builder (scripts/docker-tier.sh). */
  private get builderNs(): string {
    return `${this.config.prefix}docker`;
  }

  /**
   * kubectl (Debian 12's 1.20 from scripts/fetch-kubectl.sh when there, else the one on PATH) in the
   * apiserver namespace with the admin kubeconfig; throws with its output on a non-zero exit.
   */
  async kubectl(args: string[], timeoutMs = 30_000): Promise<string> {
    const r = await this.kubectlExec(args, timeoutMs);
    if (r.code !== 0)
      throw new LabError(
        LabErrorCode.command,
        `kubectl ${args.join(' ')} exited ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).slice(0, 2000)}`,
      );
    return r.stdout;
  }

  /** kubectl as above, its exit code returned (`auth can-i` answers with it). */
  kubectlExec(args: string[], timeoutMs = 30_000) {
    const debian = join(this.config.repoRoot, 'node_modules', '.cache', 'kubectl-debian', 'kubectl');
    return exec(
      'nsenter',
      [
        `--net=/var/run/netns/${this.apiService.ns}`,
        existsSync(debian) ? debian : 'kubectl',
        `--kubeconfig=${join(this.dir, 'admin.kubeconfig')}`,
        ...args,
      ],
      { timeoutMs },
    );
  }

  /** The agent DaemonSet's status counters. */
  async daemonSetStatus() {
    const r = await this.kube.request(
      'GET',
      `/apis/apps/v1/namespaces/${AGENT_NAMESPACE}/daemonsets/${AGENT_DAEMONSET}`,
    );
    if (r.status !== 200) return undefined;
    const ds = r.body as {
      metadata: { generation: number };
      status?: {
        observedGeneration?: number;
        desiredNumberScheduled?: number;
        updatedNumberScheduled?: number;
        numberReady?: number;
        numberAvailable?: number;
      };
    };
    const st = ds.status ?? {};
    return {
      generation: ds.metadata.generation,
      observedGeneration: st.observedGeneration ?? 0,
      desired: st.desiredNumberScheduled ?? 0,
      updated: st.updatedNumberScheduled ?? 0,
      ready: st.numberReady ?? 0,
      available: st.numberAvailable ?? 0,
    };
  }

  /**
   * Waits until the DaemonSet is rolled out as `kubectl rollout status` means it: the current
   * generation observed, one pod per node, every one of the current template, Ready and available.
   */
  async waitForRollout(): Promise<void> {
    const nodes = this.lab.nodes.length;
    let last = '';
    await waitAlive(
      `DaemonSet ${AGENT_NAMESPACE}/${AGENT_DAEMONSET} rolled out on ${nodes} nodes`,
      this.lab.processes,
      async () => {
        const st = await this.daemonSetStatus();
        last = JSON.stringify(st);
        return (
          st !== undefined &&
          st.observedGeneration >= st.generation &&
          st.desired === nodes &&
          st.updated === nodes &&
          st.ready === nodes &&
          st.available === nodes
        );
      },
      { timeoutMs: this.timeouts.rolloutMs, intervalMs: 1000 },
    ).catch(async (err: LabError) => {
      const pods = await this.kubectlExec(['-n', AGENT_NAMESPACE, 'get', 'pods', '-o', 'wide']);
      throw new LabError(err.code, `${err.message}: status ${last}\n${pods.stdout}${this.nodeLogTails()}`);
    });
  }

  /** The agent pods (name, node, uid), from the API. */
  async agentPods(): Promise<{ name: string; node: string; uid: string; ready: boolean }[]> {
    const items = await this.kube.list(
      `/api/v1/namespaces/${AGENT_NAMESPACE}/pods?labelSelector=${encodeURIComponent('app.kubernetes.io/name=podnet-agent')}`,
    );
    return items
      .map((p) => {
        const meta = p.metadata as { name: string; uid: string };
        const status = p.status as { conditions?: { type: string; status: string }[] };
        return {
          name: meta.name,
          uid: meta.uid,
          node: (p.spec as { nodeName?: string }).nodeName ?? '',
          ready: (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
        };
      })
      .sort((a, b) => a.node.localeCompare(b.node));
  }

  /** A rolling update of the agent DaemonSet (what `kubectl rollout restart` does: a template annotation). */
  async restartAgents(): Promise<void> {
    await this.kubectl([
      '-n',
      AGENT_NAMESPACE,
      'patch',
      'daemonset',
      AGENT_DAEMONSET,
      '-p',
      JSON.stringify({
        spec: {
          template: {
            metadata: { annotations: { 'podnet.io/lab-restartedAt': new Date().toISOString() } },
          },
        },
      }),
    ]);
  }

  /**
   * Sets (or with undefined removes) the API endpoint override: the kubernetes-services-endpoint
   * ConfigMap. Takes effect as the agent pods restart (restartAgents).
   */
  async setApiEndpoint(endpoint: { host: string; port: number } | undefined): Promise<void> {
    const path = `/api/v1/namespaces/${AGENT_NAMESPACE}/configmaps`;
    if (!endpoint) {
      await this.kube.delete(`${path}/${API_ENDPOINT_CONFIGMAP}`);
      return;
    }
    await this.kube.apply(path, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: API_ENDPOINT_CONFIGMAP, namespace: AGENT_NAMESPACE },
      data: { KUBERNETES_SERVICE_HOST: endpoint.host, KUBERNETES_SERVICE_PORT: String(endpoint.port) },
    } as never);
  }

  /** The API server as the nodes reach it directly (the endpoint of the `kubernetes` Service). */
  get apiEndpoint(): { host: string; port: number } {
    return { host: this.apiIp, port: this.port };
  }

  /**
   * Established TCP connections of Node processes (the agent) in a node's network namespace, as
   * `ip:port` of the peer the process connected to (a Service address stays as such: kube-proxy's
   * DNAT is invisible to the socket).
   */
  async agentConnections(node: string): Promise<string[]> {
    const r = await exec('nsenter', [
      `--net=/var/run/netns/${this.lab.service(node).ns}`,
      'ss',
      '-Htnp',
      'state',
      'established',
    ]);
    const out: string[] = [];
    for (const line of r.stdout.split('\n')) {
      // Recv-Q Send-Q Local Peer users:(("comm",pid=N,fd=M)); the comm of Node's main thread is
      // "MainThread", so the process is told by its command line.
      const pid = /pid=(\d+)/.exec(line)?.[1];
      const peer = line.trim().split(/\s+/)[3];
      if (!pid || !peer) continue;
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('podnet-agent')) out.push(peer);
      } catch {}
    }
    return out;
  }

  /** The API server URL in the CNI plugin's kubeconfig that install-cni wrote on a node. */
  cniKubeconfigServer(node: string): string | undefined {
    const file = join(this.nodeDir(node), 'cni-net.d', 'podnet-kubeconfig');
    if (!existsSync(file)) return undefined;
    return /^\s*server:\s*(\S+)/m.exec(readFileSync(file, 'utf8'))?.[1];
  }

  /** `kubectl auth can-i VERB RESOURCE --as=system:serviceaccount:podnet-system:SA`: true for yes. */
  async canI(
    sa: string,
    verb: string,
    resource: string,
    opts: { namespace?: string; subresource?: string } = {},
  ): Promise<boolean> {
    const r = await this.kubectlExec([
      'auth',
      'can-i',
      verb,
      resource,
      `--as=system:serviceaccount:${AGENT_NAMESPACE}:${sa}`,
      ...(opts.namespace ? ['-n', opts.namespace] : []),
      ...(opts.subresource ? [`--subresource=${opts.subresource}`] : []),
    ]);
    const answer = r.stdout.trim();
    if (answer !== 'yes' && answer !== 'no')
      throw new LabError(
        LabErrorCode.command,
        `kubectl auth can-i ${verb} ${resource} as ${sa}: ${r.stderr.trim() || answer}`,
      );
    return answer === 'yes';
  }

  // ---------------------------------------------------------------- pods

  /**
   * A Deployment of busybox pods (an HTTP server with a readiness probe) spread evenly over the
   * nodes by the scheduler (topology spread on the host name).
   */
  async deployTestPods(replicas: number, name = TEST_APP): Promise<void> {
    const ns = this.lab.project.settings.podNamespace;
    const labels = { app: name };
    await this.kube.apply(`/apis/apps/v1/namespaces/${ns}/deployments`, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: ns },
      spec: {
        replicas,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            terminationGracePeriodSeconds: 2,
            topologySpreadConstraints: [
              {
                maxSkew: 1,
                topologyKey: 'kubernetes.io/hostname',
                whenUnsatisfiable: 'DoNotSchedule',
                labelSelector: { matchLabels: labels },
              },
            ],
            containers: [testContainer()],
          },
        },
      },
    } as never);
  }

  /** A bare pod (no controller) the scheduler places; deleting it is final. */
  async createTestPod(name: string): Promise<void> {
    const ns = this.lab.project.settings.podNamespace;
    await this.kube.apply(`/api/v1/namespaces/${ns}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns, labels: { app: `${TEST_APP}-single` } },
      spec: { terminationGracePeriodSeconds: 2, containers: [testContainer()] },
    } as never);
  }

  /** A ClusterIP Service (port 80) in front of the test Deployment's pods (their port 8080). */
  async exposeTestPods(name = TEST_APP): Promise<string> {
    const ns = this.lab.project.settings.podNamespace;
    await this.kube.apply(`/api/v1/namespaces/${ns}/services`, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: ns },
      spec: { type: 'ClusterIP', selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }] },
    } as never);
    const r = await this.kube.request('GET', `/api/v1/namespaces/${ns}/services/${name}`);
    const ip = (r.body as { spec?: { clusterIP?: string } }).spec?.clusterIP;
    if (r.status !== 200 || !ip)
      throw new LabError(LabErrorCode.command, `Service ${ns}/${name}: no clusterIP`);
    return ip;
  }

  /** An HTTP GET from a pod's network namespace (this Node's fetch, 3 s); the body, or undefined. */
  async httpGet(from: ClusterPod, url: string): Promise<string | undefined> {
    const script =
      'fetch(process.argv[1], { signal: AbortSignal.timeout(3000) })' +
      '.then(async (r) => { if (!r.ok) process.exit(1); process.stdout.write(await r.text()); })' +
      '.catch(() => process.exit(1))';
    const r = await this.podExec(from, [process.execPath, '-e', script, url]);
    return r.code === 0 ? r.stdout : undefined;
  }

  /** Pods matching the label selector, with their sandbox PIDs from the node's containerd. */
  async pods(selector: string): Promise<ClusterPod[]> {
    const ns = this.lab.project.settings.podNamespace;
    const items = await this.kube.list(
      `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`,
    );
    const out: ClusterPod[] = [];
    for (const p of items) {
      const meta = p.metadata as {
        name: string;
        annotations?: Record<string, string>;
        deletionTimestamp?: string;
      };
      if (meta.deletionTimestamp) continue;
      const spec = p.spec as { nodeName?: string };
      const status = p.status as {
        podIP?: string;
        phase?: string;
        conditions?: { type: string; status: string }[];
        containerStatuses?: { containerID?: string }[];
      };
      const cid = status.containerStatuses?.[0]?.containerID?.replace(/^containerd:\/\//, '');
      if (!spec.nodeName || !status.podIP || !cid) continue;
      const pid = await this.taskPid(spec.nodeName, cid);
      if (!pid) continue;
      out.push({
        name: meta.name,
        node: spec.nodeName,
        ip: status.podIP,
        annotatedIp: meta.annotations?.['podnet.io/podIP'],
        pid,
        ready:
          status.phase === 'Running' &&
          (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
      });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Waits until `count` pods match and every one is Running and Ready. */
  async waitForPods(selector: string, count: number): Promise<ClusterPod[]> {
    let last: ClusterPod[] = [];
    return waitAlive(
      `${count} pods (${selector}) Running and Ready`,
      this.lab.processes,
      async () => {
        last = await this.pods(selector);
        return last.length === count && last.every((p) => p.ready) ? last : undefined;
      },
      { timeoutMs: this.timeouts.podMs, intervalMs: 1000 },
    ).catch((err: LabError) => {
      throw new LabError(
        err.code,
        `${err.message}; have ${last.map((p) => `${p.name}@${p.node} ${p.ip} ${p.ready ? 'ready' : 'not ready'}`).join(', ') || 'none'}\n${this.nodeLogTails()}`,
      );
    });
  }

  /** PID of a container's task in a node's containerd (`ctr task ls`). */
  private async taskPid(node: string, containerId: string): Promise<number | undefined> {
    const sock = join(this.nodeDir(node), 'containerd.sock');
    const r = await exec('ctr', ['--address', sock, '-n', 'k8s.io', 'tasks', 'ls']);
    for (const line of r.stdout.split('\n')) {
      const [id, pid, status] = line.trim().split(/\s+/);
      if (id === containerId && status === 'RUNNING') return Number(pid);
    }
    return undefined;
  }

  /** A command inside a pod's network namespace (the host's tools). */
  podExec(pod: ClusterPod, argv: string[]) {
    return exec('nsenter', [`--net=/proc/${pod.pid}/ns/net`, ...argv], { timeoutMs: 10_000 });
  }

  /** One ICMP echo from a pod (or, with a lab namespace name, from a lab service) to `ip`. */
  async ping(from: ClusterPod | string, ip: string): Promise<boolean> {
    if (typeof from === 'string') return this.lab.ping(from, ip);
    return (await this.podExec(from, ['ping', '-n', '-q', '-c', '1', '-W', '1', ip])).code === 0;
  }

  /**
   * A continuous ping (every 200 ms) from a pod to `ip`. `running()` resolves once ping has run for
   * `ms` and rejects, with its exit status and stderr, if it ended before that. stop() ends it
   * (SIGINT, by its pid) and returns how many were sent and which sequence numbers went unanswered,
   * the last one excepted (it may still be in flight when ping is stopped), with ping's exit status
   * and stderr for the failure message.
   */
  startPing(
    from: ClusterPod,
    ip: string,
  ): {
    running: (ms: number) => Promise<void>;
    stop: () => Promise<{ sent: number; lost: number[]; exit: string; stderr: string }>;
  } {
    const child = spawn('nsenter', [`--net=/proc/${from.pid}/ns/net`, 'ping', '-n', '-i', '0.2', ip], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let exit = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', (e) => {
      err += String(e);
    });
    const exited = new Promise<void>((resolve) =>
      child.on('close', (code, signal) => {
        exit = signal ? `signal ${signal}` : `exit ${code}`;
        resolve();
      }),
    );
    const what = `ping from ${from.name} (pid ${from.pid}) to ${ip}`;
    return {
      running: async (ms) => {
        const ended = await Promise.race([exited.then(() => true), sleep(ms).then(() => false)]);
        if (ended)
          throw new LabError(
            LabErrorCode.command,
            `${what} ended at once (${exit}): ${err.trim() || out.trim()}`,
          );
      },
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
        await exited;
        const sent = Number(/(\d+) packets transmitted/.exec(out)?.[1] ?? 0);
        const got = new Set([...out.matchAll(/bytes from [^:]+: icmp_seq=(\d+) /g)].map((m) => Number(m[1])));
        const lost: number[] = [];
        for (let seq = 1; seq < sent; seq++) if (!got.has(seq)) lost.push(seq);
        return { sent, lost, exit, stderr: err.trim() };
      },
    };
  }

  /** Every pod → every other pod and the client(s) → every pod; unreachable pairs. */
  async unreachable(pods: readonly ClusterPod[]): Promise<string[]> {
    const clients = this.lab.plan.services.filter((s) => s.role === 'client');
    const pairs = [
      ...pods.flatMap((a) =>
        pods.filter((b) => b !== a).map((b) => ({ from: a as ClusterPod | string, name: a.name, to: b })),
      ),
      ...clients.flatMap((c) =>
        pods.map((b) => ({ from: c.ns as ClusterPod | string, name: c.name, to: b })),
      ),
    ];
    const res = await mapLimit(pairs, 8, async (p) =>
      (await this.ping(p.from, p.to.ip)) ? undefined : `${p.name} → ${p.to.name} (${p.to.ip})`,
    );
    return res.filter((x): x is string => x !== undefined);
  }

  // ---------------------------------------------------------------- down

  /**
   * Kills every container of every lab node (the descendants of the processes in the nodes'
   * network namespaces: containerd's shims and what they run, whose network namespace is the
   * pod's), then removes the lab (processes by pid, namespaces, state dir). Idempotent.
   */
  async down(opts: { quiet?: boolean } = {}): Promise<void> {
    await stopBuilder(this.config.repoRoot, this.builderNs);
    await killContainers(this.config.prefix);
    await this.lab.down(opts);
    this.client = undefined;
  }
}

function testContainer() {
  return {
    name: 'web',
    image: BUSYBOX_IMAGE,
    imagePullPolicy: 'Never',
    command: [
      'sh',
      '-c',
      'mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www',
    ],
    ports: [{ containerPort: 8080 }],
    readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 2 },
  };
}

function kubeletConfig(ip: string, pki: Pki, certName: string): string {
  return `${JSON.stringify(
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      address: ip,
      port: 10250,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: 10248,
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: pki.caCrt },
      },
      authorization: { mode: 'Webhook' },
      tlsCertFile: pki.crt(certName),
      tlsPrivateKeyFile: pki.key(certName),
      clusterDomain: 'cluster.local',
      failSwapOn: false,
      // A shared machine's disk and memory are not the lab's to guard: no evictions, no image GC.
      evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      serializeImagePulls: false,
    },
    null,
    2,
  )}\n`;
}
