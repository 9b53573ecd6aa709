// The Docker engine of the lab (`npm run lab -- --engine docker`): the same verbs as the namespace
// runner, over `docker compose` (or docker-compose 1.x) on the same compose.yaml. Compose starts
// the services and its lab-init service bootstraps the API; this driver installs the CNI plugin in
// every node container (`podnet-agent install-cni`, as the DaemonSet's init container does), creates
// pods as a kubelet would (the Pod object, a fresh network namespace inside the node container, then
// the plugin's ADD), and reads the reachability matrix and the peer tables through `docker exec`.
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { activeServices, type ComposeProject, type ComposeService, parseCompose } from './compose.js';
import { torPeers } from './configs.js';
import { LabError, LabErrorCode } from './errors.js';
import { birdRows, frrRows } from './peers.js';
import type { PeerRow, Probe } from './runner.js';
import { type ExecResult, elapsed, exec, mapLimit, sleep, waitUntil } from './sh.js';
import type { PodRecord } from './state.js';

export interface DockerLabConfig {
  composeFile: string;
  /** Compose project name (default: compose's own, the file's directory name). */
  project?: string;
  profiles?: string[];
  podsPerNode?: number;
  /** `docker` CLI (default `docker`, or $PODNET_DOCKER). */
  docker?: string;
  /** Compose command (default: `docker-compose` when installed, else `docker compose`, or $PODNET_COMPOSE). */
  compose?: string[];
  /** Environment for docker and compose (e.g. DOCKER_HOST); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Do not build images (`up --no-build`): they were built beforehand. */
  noBuild?: boolean;
  log?: (line: string) => void;
  timeouts?: Partial<{ upMs: number; initMs: number; bgpMs: number; reachMs: number }>;
}

const defaults = { upMs: 600_000, initMs: 120_000, bgpMs: 90_000, reachMs: 60_000 };
/** Where compose.yaml mounts the nodes' kubeconfig and where install-cni puts the plugin. */
const NODE_KUBECONFIG = '/etc/podnet/kubeconfig';
const CNI_PLUGIN = '/opt/cni/bin/podnet';

function defaultCompose(env: NodeJS.ProcessEnv): string[] {
  if (env.PODNET_COMPOSE) return env.PODNET_COMPOSE.split(' ').filter(Boolean);
  const path = (env.PATH ?? '').split(':');
  return path.some((d) => d && existsSync(`${d}/docker-compose`))
    ? ['docker-compose']
    : ['docker', 'compose'];
}

export class DockerLab {
  readonly project: ComposeProject;
  readonly pods: PodRecord[] = [];
  private readonly t: typeof defaults;
  private readonly log: (line: string) => void;
  private readonly env: NodeJS.ProcessEnv;
  private readonly docker: string;
  private readonly composeCmd: string[];

  constructor(readonly config: DockerLabConfig) {
    this.project = parseCompose(readFileSync(config.composeFile, 'utf8'));
    if (config.podsPerNode !== undefined) this.project.settings.podsPerNode = config.podsPerNode;
    this.t = { ...defaults, ...config.timeouts };
    this.log = config.log ?? (() => {});
    this.env = { ...(config.env ?? process.env) };
    // The lab-init service learns the active profiles from COMPOSE_PROFILES (compose.yaml).
    this.env.COMPOSE_PROFILES = (config.profiles ?? []).join(',');
    this.docker = this.env.PODNET_DOCKER ?? config.docker ?? 'docker';
    this.composeCmd = config.compose ?? defaultCompose(this.env);
  }

  get services(): ComposeService[] {
    return activeServices(this.project, this.config.profiles ?? []);
  }

  get nodes(): ComposeService[] {
    return this.services.filter((s) => s.role === 'node');
  }

  get tors(): ComposeService[] {
    return this.services.filter((s) => s.role === 'tor');
  }

  private composeArgs(args: string[]): [string, string[]] {
    const [cmd = 'docker-compose', ...pre] = this.composeCmd;
    const p = this.config.project ? ['-p', this.config.project] : [];
    return [
      cmd,
      [
        ...pre,
        ...p,
        '-f',
        this.config.composeFile,
        '--project-directory',
        dirname(this.config.composeFile),
        ...args,
      ],
    ];
  }

  /** Runs compose; throws naming the command and its output when it fails. */
  async compose(args: string[], timeoutMs = 120_000): Promise<string> {
    const [cmd, argv] = this.composeArgs(args);
    const r = await exec(cmd, argv, { env: this.env, timeoutMs });
    if (r.code !== 0)
      throw new LabError(
        LabErrorCode.command,
        `${cmd} ${argv.join(' ')} exited ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).slice(-3000)}`,
      );
    return r.stdout;
  }

  private async containerId(service: string): Promise<string> {
    const id = (await this.compose(['ps', '-q', service])).trim().split('\n')[0] ?? '';
    if (!id)
      throw new LabError(LabErrorCode.notRunning, `no container for service ${service} (is the lab up?)`);
    return id;
  }

  private readonly ids = new Map<string, string>();

  /** `docker exec [-i] <service's container> argv…`. */
  async exec(
    service: string,
    argv: string[],
    opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<ExecResult> {
    let id = this.ids.get(service);
    if (!id) {
      id = await this.containerId(service);
      this.ids.set(service, id);
    }
    const envArgs = Object.entries(opts.env ?? {}).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    return exec(this.docker, ['exec', ...(opts.input !== undefined ? ['-i'] : []), ...envArgs, id, ...argv], {
      env: this.env,
      timeoutMs: opts.timeoutMs ?? 30_000,
      ...(opts.input !== undefined ? { input: opts.input } : {}),
    });
  }

  private async execOk(service: string, argv: string[], opts: Parameters<DockerLab['exec']>[2] = {}) {
    const r = await this.exec(service, argv, opts);
    if (r.code !== 0)
      throw new LabError(
        LabErrorCode.command,
        `${service}: ${argv.join(' ')} exited ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).slice(0, 2000)}`,
      );
    return r.stdout;
  }

  // ---------------------------------------------------------------- up

  async up(): Promise<void> {
    const t0 = Date.now();
    const names = this.services.map((s) => s.name);
    await this.compose(['up', '-d', ...(this.config.noBuild ? ['--no-build'] : [])], this.t.upMs);
    this.log(`✓ compose up: ${names.join(', ')}, lab-init (${elapsed(t0)})`);
    await this.waitForInit();
    this.log(`✓ lab-init wrote the lab's objects to the API server (${elapsed(t0)})`);
    if (this.tors.length > 0 && this.nodes.length > 0) {
      await this.waitForSessions();
      this.log(
        `✓ BGP sessions established between ${this.tors.map((t) => t.name).join(', ')} and ${this.nodes.length} nodes (${elapsed(t0)})`,
      );
    }
    for (const node of this.nodes) {
      await this.execOk(node.name, ['podnet-agent', 'install-cni', '--node-name', node.name]);
    }
    const existing = new Set(await this.listPods());
    for (const node of this.nodes) {
      for (let i = 0; i < this.project.settings.podsPerNode; i++) {
        const name = `pod-${node.name}-${i}`;
        if (!existing.has(`${node.name}/${name}`)) await this.addPod(node.name, name);
        else await this.readPod(node.name, name);
      }
    }
    this.log(
      `✓ ${this.pods.length} pods on ${this.nodes.length} nodes, through podnet-cni ADD (${elapsed(t0)})`,
    );
  }

  /** Waits (bounded) for the lab-init container to exit 0; its log when it failed. */
  private async waitForInit(): Promise<void> {
    let state = '';
    try {
      await waitUntil(
        'the lab-init service to finish',
        async () => {
          const [cmd, argv] = this.composeArgs(['ps', '-a', '-q', 'lab-init']);
          const id = (await exec(cmd, argv, { env: this.env })).stdout.trim().split('\n')[0];
          if (!id) return false;
          const r = await exec(this.docker, ['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', id], {
            env: this.env,
          });
          state = r.stdout.trim();
          return state === 'exited 0';
        },
        { timeoutMs: this.t.initMs, intervalMs: 500 },
      );
    } catch (err) {
      const logs = await this.compose(['logs', '--no-color', '--tail', '30', 'lab-init']).catch((e) =>
        String(e),
      );
      throw new LabError(
        LabErrorCode.timeout,
        `${(err as Error).message} (state: ${state || 'none'})\n${logs}`,
      );
    }
  }

  /** Pods already made in the node containers (their network namespaces), as node/name. */
  private async listPods(): Promise<string[]> {
    const out: string[] = [];
    for (const node of this.nodes) {
      const r = await this.exec(node.name, ['ip', 'netns', 'list']);
      for (const line of r.stdout.split('\n')) {
        const ns = line.trim().split(/\s+/)[0];
        if (ns?.startsWith('pod-')) out.push(`${node.name}/${ns}`);
      }
    }
    return out;
  }

  private cniEnv(command: string, pod: PodRecord): Record<string, string> {
    return {
      CNI_COMMAND: command,
      CNI_CONTAINERID: pod.containerId,
      CNI_NETNS: `/var/run/netns/${pod.ns}`,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name}`,
      CNI_PATH: '/opt/cni/bin',
    };
  }

  private cniConfig(node: string): string {
    return JSON.stringify({
      cniVersion: '1.0.0',
      name: 'podnet',
      type: 'podnet',
      kubeconfig: NODE_KUBECONFIG,
      nodeName: node,
      ipam: {
        assign_ipv4: true,
        assign_ipv6: this.project.settings.ipPools.some((p) => p.cidr.includes(':')),
      },
    });
  }

  /** Where compose.yaml's apiserver writes its kubeconfig (`--kubeconfig`): its CA and the token. */
  private get apiKubeconfigPath(): string {
    const argv = this.project.services.find(
      (s) => s.name === this.project.settings.apiServer.service,
    )?.command;
    const i = argv?.indexOf('--kubeconfig') ?? -1;
    const path = i >= 0 ? argv?.[i + 1] : undefined;
    if (!path)
      throw new LabError(
        LabErrorCode.composeInvalid,
        `compose: services.${this.project.settings.apiServer.service}.command has no --kubeconfig FILE (the host's kubeconfig is read from it)`,
      );
    return path;
  }

  private hostKubeconfigText?: string;

  /**
   * A kubeconfig for kubectl on the host: the one the API server writes (HTTPS to its lab address,
   * 10.88.0.2 on compose's fabric network, which the Docker host reaches through the network's
   * bridge; its self-signed CA; the lab token), read from the container once it is there.
   */
  async hostKubeconfig(): Promise<string> {
    if (this.hostKubeconfigText) return this.hostKubeconfigText;
    const service = this.project.settings.apiServer.service;
    const file = this.apiKubeconfigPath;
    let last = '';
    const text = await waitUntil(
      `the API server to write ${file}`,
      async () => {
        const r = await this.exec(service, ['cat', file]);
        last = r.stderr.trim();
        return r.code === 0 && r.stdout.includes('certificate-authority-data') ? r.stdout : undefined;
      },
      { timeoutMs: this.t.initMs, intervalMs: 500 },
    ).catch((err: Error) => {
      throw new LabError(
        LabErrorCode.api,
        `${err.message} (${last || 'no output'}); see docker compose logs ${service}`,
      );
    });
    this.hostKubeconfigText = text;
    return text;
  }

  /** The API server's CA and URL, from its kubeconfig. */
  private async apiTarget(): Promise<{ url: string; ca: string }> {
    const text = await this.hostKubeconfig();
    const url = /^\s*server:\s*"?([^"\s]+)"?/m.exec(text)?.[1];
    const ca = /certificate-authority-data:\s*(\S+)/.exec(text)?.[1];
    if (!url || !ca)
      throw new LabError(LabErrorCode.api, `the API server's kubeconfig has no server or CA:\n${text}`);
    return { url, ca: Buffer.from(ca, 'base64').toString('utf8') };
  }

  /**
   * The Pod object, written from inside the node container (the API is on the lab's network), over
   * HTTPS checked against the API server's CA.
   */
  private async applyPodObject(node: string, name: string): Promise<void> {
    const { url, ca } = await this.apiTarget();
    const namespace = this.project.settings.podNamespace;
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace, labels: { app: 'podnet-lab' } },
      spec: { nodeName: node, containers: [{ name: 'pause', image: 'registry.k8s.io/pause:3.10' }] },
    };
    const script = [
      'const [url, token, ns, body, ca] = process.argv.slice(1);',
      "const h = { authorization: 'Bearer ' + token, 'content-type': 'application/json' };",
      "const req = require('node:https').request(url + '/api/v1/namespaces/' + ns + '/pods', { method: 'POST', headers: h, ca }, (r) => {",
      "  let t = ''; r.on('data', (d) => (t += d));",
      "  r.on('end', () => { if (r.statusCode !== 201 && r.statusCode !== 409) { console.error(r.statusCode, t); process.exit(1); } });",
      '});',
      "req.on('error', (e) => { console.error(String(e)); process.exit(1); });",
      'req.end(body);',
    ].join('\n');
    await this.execOk(node, [
      'node',
      '-e',
      script,
      url,
      this.project.settings.apiServer.token,
      namespace,
      JSON.stringify(pod),
      ca,
    ]);
  }

  /** Creates a pod as a kubelet would: the Pod object, a fresh namespace in the node, then CNI ADD. */
  async addPod(node: string, name: string): Promise<PodRecord> {
    const pod: PodRecord = {
      name,
      namespace: this.project.settings.podNamespace,
      node,
      ns: name,
      containerId: `${name}-${Date.now().toString(16)}`.padEnd(32, '0').slice(0, 64),
    };
    await this.applyPodObject(node, name);
    await this.execOk(node, ['ip', 'netns', 'add', pod.ns]);
    await this.execOk(node, ['ip', '-n', pod.ns, 'link', 'set', 'lo', 'up']);
    const out = await this.execOk(node, [CNI_PLUGIN], {
      input: this.cniConfig(node),
      env: this.cniEnv('ADD', pod),
      timeoutMs: 60_000,
    });
    setAddresses(pod, out);
    if (!pod.ipv4 && !pod.ipv6)
      throw new LabError(LabErrorCode.command, `podnet-cni ADD for ${name} returned no IP: ${out.trim()}`);
    this.pods.push(pod);
    return pod;
  }

  /** A pod made by an earlier `up`: its addresses, read from eth0 in its namespace. */
  private async readPod(node: string, name: string): Promise<void> {
    const out = await this.execOk(node, [
      'ip',
      '-n',
      name,
      '-j',
      'addr',
      'show',
      'dev',
      'eth0',
      'scope',
      'global',
    ]);
    const pod: PodRecord = {
      name,
      namespace: this.project.settings.podNamespace,
      node,
      ns: name,
      containerId: '',
    };
    const links = JSON.parse(out || '[]') as { addr_info?: { family: string; local: string }[] }[];
    for (const a of links[0]?.addr_info ?? []) {
      if (a.family === 'inet') pod.ipv4 = a.local;
      if (a.family === 'inet6') pod.ipv6 = a.local;
    }
    this.pods.push(pod);
  }

  /** Reads the pods of a running lab (for `status`). */
  async loadPods(): Promise<void> {
    this.pods.length = 0;
    for (const key of await this.listPods()) {
      const [node = '', name = ''] = key.split('/');
      await this.readPod(node, name);
    }
  }

  // ---------------------------------------------------------------- reachability

  /**
   * Every pod to every other pod, and the client(s) to every pod, for one address family: one
   * `docker exec` per source, pinging its targets in turn (one echo each, 1 s timeout).
   */
  async reachability(family: 4 | 6 = 4): Promise<Probe[]> {
    const targets = this.pods.filter((p) => (family === 4 ? p.ipv4 : p.ipv6));
    const sources = [
      ...this.pods.map((p) => ({ name: p.name, service: p.node, ns: p.ns as string | undefined })),
      ...this.services
        .filter((s) => s.role === 'client')
        .map((s) => ({ name: s.name, service: s.name, ns: undefined })),
    ];
    const script =
      'for ip in "$@"; do if ping -n -q -c 1 -W 1 "$ip" >/dev/null 2>&1; then echo "ok $ip"; else echo "no $ip"; fi; done';
    const rows = await mapLimit(sources, 4, async (src) => {
      const to = targets.filter((t) => t.name !== src.name);
      const ips = to.map((t) => (family === 4 ? t.ipv4 : t.ipv6) ?? '');
      const argv = ['sh', '-c', script, 'probe', ...ips];
      const r = await this.exec(src.service, src.ns ? ['ip', 'netns', 'exec', src.ns, ...argv] : argv, {
        timeoutMs: 30_000 + ips.length * 2_000,
      });
      const ok = new Set(
        r.stdout
          .split('\n')
          .filter((l) => l.startsWith('ok '))
          .map((l) => l.slice(3)),
      );
      return to.map((t, i) => ({ from: src.name, to: t.name, ip: ips[i] ?? '', ok: ok.has(ips[i] ?? '') }));
    });
    return rows.flat();
  }

  /** Waits (bounded) until every probe succeeds, and returns the last matrix. */
  async waitForReachability(family: 4 | 6 = 4): Promise<Probe[]> {
    const deadline = Date.now() + this.t.reachMs;
    for (;;) {
      const last = await this.reachability(family);
      if (last.every((p) => p.ok) || Date.now() >= deadline) return last;
      await sleep(500);
    }
  }

  // ---------------------------------------------------------------- BGP

  /** The peer table of every ToR: BIRD's `show protocols`, FRR's `show bgp summary json`. */
  async torPeerTables(): Promise<PeerRow[]> {
    const rows: PeerRow[] = [];
    for (const tor of this.tors) {
      const r =
        tor.daemon === 'frr'
          ? await this.exec(tor.name, ['vtysh', '--vty_socket', '/run/frr', '-c', 'show bgp summary json'])
          : await this.exec(tor.name, ['birdc', '-s', '/run/bird/bird.ctl', 'show', 'protocols']);
      if (r.code !== 0) {
        rows.push({
          router: tor.name,
          peer: '-',
          state: 'unreachable',
          since: '',
          info: r.stderr.trim() || r.stdout.trim(),
        });
        continue;
      }
      rows.push(...(tor.daemon === 'frr' ? frrRows(tor.name, r.stdout) : birdRows(tor.name, r.stdout)));
    }
    return rows;
  }

  /** Waits (bounded) until every ToR has its IPv4 and IPv6 sessions with every node Established. */
  async waitForSessions(): Promise<PeerRow[]> {
    // The static bird.conf names every node of every profile: only the active nodes' sessions count.
    const wanted = (tor: ComposeService, row: PeerRow) =>
      torPeers(tor, this.nodes).some((p) =>
        [4, 6].some((f) => {
          const addr = (f === 4 ? p.ipv4 : p.ipv6)?.split('/')[0];
          if (!addr) return false;
          return tor.daemon === 'frr' ? row.peer.startsWith(`${addr} (`) : row.peer === protoName(p.name, f);
        }),
      );
    const expected = this.tors.flatMap((t) =>
      torPeers(t, this.nodes).flatMap((p) => [p.ipv4, p.ipv6].filter(Boolean)),
    ).length;
    let last: PeerRow[] = [];
    try {
      await waitUntil(
        'BGP sessions between the ToR and every node',
        async () => {
          last = (await this.torPeerTables()).filter((r) => {
            const tor = this.tors.find((t) => t.name === r.router);
            return tor !== undefined && wanted(tor, r);
          });
          return last.length >= expected && last.every((r) => r.state === 'up' || r.state === 'Established');
        },
        { timeoutMs: this.t.bgpMs, intervalMs: 1000 },
      );
    } catch (err) {
      const down = last.filter((r) => r.state !== 'up' && r.state !== 'Established');
      throw new LabError(
        LabErrorCode.timeout,
        `${(err as Error).message}; not established: ${down.map((r) => `${r.router}↔${r.peer}: ${r.state} ${r.info}`).join('; ') || 'no peers listed'}`,
      );
    }
    return last;
  }

  /** The agent's /status document, fetched inside the node container, or undefined. */
  async agentStatus(node: string): Promise<unknown> {
    const script =
      "fetch('http://127.0.0.1:9099/status').then(r=>r.text()).then(t=>process.stdout.write(t),e=>{console.error(String(e));process.exit(1)})";
    const r = await this.exec(node, ['node', '-e', script], { timeoutMs: 10_000 });
    if (r.code !== 0) return undefined;
    try {
      return JSON.parse(r.stdout);
    } catch {
      return undefined;
    }
  }

  // ---------------------------------------------------------------- down

  /** `compose down -v`: every container, network and volume of the project. */
  async down(): Promise<void> {
    await this.compose(['down', '-v', '--remove-orphans'], 180_000);
    this.ids.clear();
    this.log('✓ compose down -v: containers, networks and volumes removed');
  }
}

/** Fills a pod's addresses from a CNI result. */
function setAddresses(pod: PodRecord, result: string): void {
  const r = JSON.parse(result) as { ips?: { address: string }[] };
  for (const ip of r.ips ?? []) {
    const a = ip.address.split('/')[0] ?? '';
    if (a.includes(':')) pod.ipv6 = a;
    else pod.ipv4 = a;
  }
}

const protoName = (name: string, family: number) => `${name.replace(/[^a-zA-Z0-9]/g, '_')}_v${family}`;
