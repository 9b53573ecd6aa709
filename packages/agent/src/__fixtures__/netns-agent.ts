// What the agent's namespace tests share: the built agent and CNI plugin, a test API server with
// the CRDs and an IPPool, a node namespace's kubeconfig reaching it through a tunnel, podnet-agent
// processes with their logs in the work directory, CNI ADD into a pod namespace, and teardown.
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IPPOOL, installCrds, KubeClient } from '@podnet/k8s';
import {
  cleanupStale,
  exec,
  type Netns,
  NetnsSet,
  ProcessGroup,
  type TestCluster,
  type Tunnel,
  testCluster,
  tunnelIntoNetns,
} from '@podnet/testkit';
import { parse as parseYaml, stringify as toYaml } from 'yaml';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
export const AGENT = join(ROOT, 'packages/agent/dist/podnet-agent.js');
export const CNI = join(ROOT, 'packages/cni/dist/podnet-cni.js');
/** The API server's port inside each node namespace (the tunnel's end). */
const API_PORT = 6443;
/** The agents' --status-listen, inside their node namespace. */
export const STATUS_URL = 'http://127.0.0.1:9099';

type Kubeconfig = { clusters: { cluster: { server: string } }[] };

export class AgentLab {
  readonly nets = new NetnsSet();
  readonly procs = new ProcessGroup();
  /** Logs, kubeconfigs and CNI caches; kept when PODNET_KEEP_TEST_LOGS is set. */
  readonly work: string;
  private readonly tunnels: Tunnel[] = [];
  private testCluster?: TestCluster;
  private kubeClient?: KubeClient;

  /** `tag` names the work directory: podnet-<tag>-test-<pid>. */
  constructor(tag: string) {
    this.work = join(tmpdir(), `podnet-${tag}-test-${process.pid}`);
  }

  get cluster(): TestCluster {
    if (!this.testCluster) throw new Error('AgentLab.start() first');
    return this.testCluster;
  }

  get client(): KubeClient {
    if (!this.kubeClient) throw new Error('AgentLab.start() first');
    return this.kubeClient;
  }

  /** Checks `built` exist, clears stale namespaces, starts the API server with the CRDs and `pool`. */
  async start(built: string[], pool: { cidr: string; blockSize: number }): Promise<void> {
    for (const f of built)
      if (!existsSync(f))
        throw new Error(`${f} is missing: build first (npx turbo run build --filter=@podnet/agent)`);
    await cleanupStale();
    mkdirSync(this.work, { recursive: true });
    this.testCluster = await testCluster();
    this.kubeClient = new KubeClient({ kubeconfigPath: this.testCluster.kubeconfigPath });
    await installCrds(this.kubeClient);
    await this.kubeClient.resource(IPPOOL).create({ metadata: { name: 'pods' }, spec: pool });
  }

  /** A tunnel from `ns`'s 127.0.0.1:6443 to the API server; closed by stop() if still open. */
  async tunnelInto(ns: Netns): Promise<Tunnel> {
    const kc = parseYaml(readFileSync(this.cluster.kubeconfigPath, 'utf8')) as Kubeconfig;
    const server = new URL(kc.clusters[0]!.cluster.server);
    const t = await tunnelIntoNetns(ns, API_PORT, { host: server.hostname, port: Number(server.port) });
    this.tunnels.push(t);
    return t;
  }

  /** Opens a tunnel into `ns` and writes `<name>.kubeconfig` that reaches the API server through it. */
  async kubeconfigIn(ns: Netns, name: string): Promise<{ kubeconfig: string; tunnel: Tunnel }> {
    const tunnel = await this.tunnelInto(ns);
    const kc = parseYaml(readFileSync(this.cluster.kubeconfigPath, 'utf8')) as Kubeconfig;
    for (const c of kc.clusters) {
      const u = new URL(c.cluster.server);
      u.hostname = '127.0.0.1';
      u.port = String(API_PORT);
      c.cluster.server = u.toString().replace(/\/$/, '');
    }
    const kubeconfig = join(this.work, `${name}.kubeconfig`);
    writeFileSync(kubeconfig, toYaml(kc));
    return { kubeconfig, tunnel };
  }

  /** podnet-agent's arguments: the node, its kubeconfig, eth0's address, the status listener, `extra`. */
  agentArgv(nodeName: string, kubeconfig: string, extra: string[] = []): string[] {
    return [
      AGENT,
      '--node-name',
      nodeName,
      '--kubeconfig',
      kubeconfig,
      '--ip-autodetection-method',
      'interface=eth0',
      '--status-listen',
      STATUS_URL.replace('http://', ''),
      ...extra,
    ];
  }

  /** Tracks `child` for teardown and appends its output to `logFile` in the work directory. */
  logged(child: ChildProcess, logFile: string): ChildProcess {
    this.procs.add(child);
    const log = createWriteStream(join(this.work, logFile), { flags: 'a' });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    return child;
  }

  /** Runs the CNI plugin's ADD in `node` for the pod in `podNs`; returns its result. */
  async cniAdd(
    node: Netns,
    podNs: Netns,
    pod: { name: string; containerId: string },
    conf: Record<string, unknown>,
  ): Promise<{ ips: { address: string }[]; interfaces: { name: string }[] }> {
    const env = {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: pod.containerId,
      CNI_NETNS: podNs.path,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.name}`,
      CNI_PATH: dirname(CNI),
    };
    const r = await exec(
      'ip',
      [
        'netns',
        'exec',
        node.name,
        'env',
        ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
        process.execPath,
        CNI,
      ],
      {
        input: JSON.stringify({ cniVersion: '1.0.0', name: 'podnet', type: 'podnet', ...conf }),
        timeoutMs: 60_000,
      },
    );
    if (r.code !== 0)
      throw new Error(`podnet-cni ADD ${pod.name} in ${node.name} exited ${r.code}: ${r.stdout} ${r.stderr}`);
    return JSON.parse(r.stdout) as { ips: { address: string }[]; interfaces: { name: string }[] };
  }

  /** Stops the processes, closes the tunnels, removes the namespaces, the API server and the work directory. */
  async stop(): Promise<void> {
    await this.procs.stopAll(5000);
    for (const t of this.tunnels.splice(0)) await t.close();
    await this.nets.destroy();
    await this.testCluster?.close();
    if (!process.env.PODNET_KEEP_TEST_LOGS) rmSync(this.work, { recursive: true, force: true });
  }
}
