// The namespace runner: realises a compose project on Linux network namespaces. Everything it
// creates is recorded in the state dir and carries the lab's namespace prefix, so `down` (and the
// next `up`, after an interrupted run) removes exactly that. It never changes routes, links or
// sysctls of the namespace it runs in: the bridges live in a namespace of their own, and the
// runner reaches the API server through a unix socket forwarded into the API server's namespace.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { activeServices, type ComposeProject, parseCompose } from './compose.js';
import { apiServerUrl, birdConfig, frrConfig, kubeconfig, torPeers } from './configs.js';
import { DEFAULT_ECHO_LIFETIME_S, DEFAULT_ECHO_PORT, type EchoResult, formatTarget } from './echo.js';
import { LabError, LabErrorCode } from './errors.js';
import { bridgedKubeconfig, type ExternalApi, readKubeconfig, serverNameFor } from './external.js';
import { Kube } from './kube.js';
import { type NetworkModel, selectModel } from './models.js';
import { labObjects } from './objects.js';
import { birdRows, frrRows } from './peers.js';
import { type LabPlan, type PlannedService, planLab, serviceAddress } from './plan.js';
import {
  elapsed,
  exec,
  ipIn,
  mapLimit,
  nsExec,
  run,
  shebangNodeFlags,
  sleep,
  tail,
  waitUntil,
} from './sh.js';
import { splice } from './splice.js';
import {
  isOurs,
  type LabState,
  type PodRecord,
  type ProcessRecord,
  processStartTime,
  readState,
  writeState,
} from './state.js';
import { type Endpoint, type MeasuredRow, planTable, rowProblems, type Seen } from './table.js';

export interface LabTimeouts {
  apiMs: number;
  bgpMs: number;
  podMs: number;
  reachMs: number;
  /** How long one echo probe waits for its answer (a probe that gets none fails after this). */
  probeMs: number;
}

export interface LabConfig {
  /** The repository root: where packages/*\/dist live. */
  repoRoot: string;
  composeFile: string;
  /** Where state, logs and generated files go (default /run/podnet-lab). */
  stateDir: string;
  /** Prefix of every namespace (default `pnl-`). */
  prefix: string;
  profiles?: string[];
  only?: string[];
  podsPerNode?: number;
  /** Overrides x-podnet.bgp.bfd.enabled (BFD on the ToR and the nodes). */
  bfd?: boolean;
  /**
   * Start the node agents (default true). Without them the nodes are namespaces that the CNI plugin
   * wires pods into, but nothing routes between nodes: for testing the runner itself.
   */
  agents?: boolean;
  /**
   * An outside API server (e.g. a real kube-apiserver) to use instead of the compose file's
   * `apiserver` service: the lab bridges it onto the API server's lab address, and `down` deletes
   * the objects the lab created there.
   */
  kubeconfig?: string;
  /**
   * Port on the host's loopback (127.0.0.1) forwarded to the lab's API server, for kubectl from
   * the host (hostKubeconfig()); 0 or absent for none. `npm run lab` passes
   * DEFAULT_API_HOST_PORT; tests and benchmarks leave it out, so labs side by side do not collide.
   */
  apiHostPort?: number;
  /**
   * The network model (a name under x-podnet.models: flat, island, isolated; default flat). It is
   * also a compose profile: services tagged with it join the lab.
   */
  model?: string;
  /** Port of the echo servers the model table probes (default 7777). */
  echoPort?: number;
  /** Seconds after which the echo servers stop by themselves (default 600). */
  echoLifetimeS?: number;
  /** Progress lines; the CLI prints them. */
  log?: (line: string) => void;
  timeouts?: Partial<LabTimeouts>;
}

const defaultTimeouts: LabTimeouts = {
  apiMs: 60_000,
  bgpMs: 90_000,
  podMs: 60_000,
  reachMs: 60_000,
  probeMs: 2_000,
};

export const DEFAULT_PREFIX = 'pnl-';
export const DEFAULT_STATE_DIR = '/run/podnet-lab';
export const DEFAULT_API_HOST_PORT = 16443;

/** One pod's reachability from one source. */
export interface Probe {
  from: string;
  to: string;
  ip: string;
  ok: boolean;
}

export interface PeerRow {
  router: string;
  peer: string;
  state: string;
  since: string;
  info: string;
}

function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new LabError(
      LabErrorCode.notRoot,
      'the lab creates network namespaces and needs root (run it as root)',
    );
  }
}

const nodeBin = process.execPath;
/** The protocol number podnet marks its kernel routes with (@podnet/routes PODNET_PROTO). */
const PODNET_ROUTE_PROTO = 213;

/** A running (or to-be-started) lab described by one compose file and one state dir. */
export class Lab {
  readonly project: ComposeProject;
  readonly plan: LabPlan;
  readonly kube: Kube;
  readonly external: ExternalApi | undefined;
  /** The network model this lab runs (x-podnet.models). */
  readonly model: NetworkModel;
  private readonly timeouts: LabTimeouts;
  private readonly log: (line: string) => void;
  private state: LabState;

  constructor(readonly config: LabConfig) {
    this.project = parseCompose(readFileSync(config.composeFile, 'utf8'));
    if (config.podsPerNode !== undefined) this.project.settings.podsPerNode = config.podsPerNode;
    if (config.bfd !== undefined) this.project.settings.bgp.bfd.enabled = config.bfd;
    this.model = selectModel(this.project.settings.models, config.model);
    this.plan = planLab(this.project, {
      prefix: config.prefix,
      profiles: [...(config.profiles ?? []), this.model.name],
      only: config.only ?? [],
    });
    this.timeouts = { ...defaultTimeouts, ...config.timeouts };
    this.log = config.log ?? (() => {});
    this.state = readState(config.stateDir) ?? this.freshState();
    const kc = config.kubeconfig ?? this.state.kubeconfig;
    this.external = kc ? readKubeconfig(kc) : undefined;
    const ext = this.external;
    this.kube = ext
      ? new Kube({
          url: ext.server.href,
          ...(ext.token ? { token: ext.token } : {}),
          ...(ext.caPem ? { caPem: ext.caPem } : {}),
          ...(ext.certPem ? { certPem: ext.certPem } : {}),
          ...(ext.keyPem ? { keyPem: ext.keyPem } : {}),
          ...(ext.tlsServerName ? { servername: ext.tlsServerName } : {}),
          insecure: ext.insecure,
        })
      : new Kube({
          socketPath: this.apiSocket,
          token: this.project.settings.apiServer.token,
          // HTTPS through the socket once the API server has written its CA.
          caPem: () => this.apiCaPem(),
        });
  }

  private freshState(): LabState {
    return {
      version: 1,
      prefix: this.config.prefix,
      composeFile: this.config.composeFile,
      repoRoot: this.config.repoRoot,
      profiles: this.config.profiles ?? [],
      only: this.config.only ?? [],
      startedAt: new Date().toISOString(),
      namespaces: [],
      processes: [],
      pods: [],
      token: this.project.settings.apiServer.token,
      model: this.model.name,
      ...(this.config.kubeconfig ? { kubeconfig: resolve(this.config.kubeconfig) } : {}),
      ...(this.config.kubeconfig ? {} : { apiHostPort: this.config.apiHostPort ?? 0 }),
    };
  }

  /** The URL the lab's nodes use for the API: the API service's lab address (bridged when outside). */
  get labApiUrl(): string {
    const url = apiServerUrl(this.project, 'https') ?? 'https://127.0.0.1:6443';
    if (!this.external) return url;
    return `${this.external.server.protocol}//${serverNameFor(this.external)}:${this.project.settings.apiServer.port}`;
  }

  /**
   * KUBECONFIG mode: inside each node namespace the outside server's certificate name resolves to
   * the API service's lab address (`ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts).
   */
  private writeNodeHosts(): void {
    if (!this.external) return;
    const ip = apiServerUrl(this.project)
      ?.replace(/^https?:\/\//, '')
      .replace(/:\d+$/, '');
    if (!ip) return;
    for (const node of this.nodes) {
      const dir = `/etc/netns/${node.ns}`;
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, 'hosts'),
        `127.0.0.1 localhost\n::1 localhost\n${ip} ${serverNameFor(this.external)}\n`,
      );
    }
  }

  /** The kubeconfig the lab's nodes and CNI use. */
  private nodeKubeconfig(): string {
    return this.external
      ? bridgedKubeconfig(this.external, this.project.settings.apiServer.port)
      : kubeconfig(this.labApiUrl, this.project.settings.apiServer.token, this.requireApiCa());
  }

  /** The kubeconfig the lab's API server writes (HTTPS, its CA, its lab address). */
  get apiServerKubeconfigPath(): string {
    return join(this.config.stateDir, 'apiserver.kubeconfig');
  }

  /** The API server's CA (its self-signed certificate), once it has written its kubeconfig. */
  apiCaPem(): string | undefined {
    const file = this.apiServerKubeconfigPath;
    if (!existsSync(file)) return undefined;
    const kc = parseYaml(readFileSync(file, 'utf8')) as {
      clusters?: { cluster?: { 'certificate-authority-data'?: string } }[];
    };
    const data = kc.clusters?.[0]?.cluster?.['certificate-authority-data'];
    return data ? Buffer.from(data, 'base64').toString('utf8') : undefined;
  }

  private requireApiCa(): string {
    const ca = this.apiCaPem();
    if (!ca)
      throw new LabError(
        LabErrorCode.api,
        `the API server has not written its CA to ${this.apiServerKubeconfigPath} (is it running? npm run lab -- logs ${this.project.settings.apiServer.service})`,
      );
    return ca;
  }

  /**
   * A kubeconfig for kubectl on the host: the lab's API server over HTTPS through the host's
   * loopback forward (https://127.0.0.1:<apiHostPort>), with its CA and the lab token. In
   * KUBECONFIG mode, the outside server's own kubeconfig.
   */
  hostKubeconfig(): string {
    if (this.state.kubeconfig) return readFileSync(this.state.kubeconfig, 'utf8');
    const port = this.state.apiHostPort;
    if (!port)
      throw new LabError(
        LabErrorCode.usage,
        'this lab forwards no host port to its API server (started with --api-port 0)',
      );
    return kubeconfig(
      `https://127.0.0.1:${port}`,
      this.project.settings.apiServer.token,
      this.requireApiCa(),
    );
  }

  /** Where up() writes hostKubeconfig(). */
  get hostKubeconfigPath(): string {
    return join(this.config.stateDir, 'kubeconfig');
  }

  /** The host's loopback port piped to the API server's socket (kubectl from the host). */
  private async forwardApiToHost(): Promise<void> {
    const port = this.state.apiHostPort;
    if (!port) return;
    const fwd = join(this.config.repoRoot, 'packages', 'lab', 'dist', 'forward.js');
    const api = this.project.settings.apiServer.service;
    const rec = this.spawnDetached(
      `${api}-host-forward`,
      undefined,
      [nodeBin, fwd, `tcp:127.0.0.1:${port}`, `unix:${this.apiSocket}`],
      {},
      join(this.serviceDir(api), 'host-forward.log'),
    );
    await sleep(300);
    if (!isOurs(rec))
      throw new LabError(
        LabErrorCode.command,
        `the forward of 127.0.0.1:${port} to the API server exited right after starting (port in use? pick another with --api-port)\n${tail(rec.log)}`,
      );
    writeFileSync(this.hostKubeconfigPath, this.hostKubeconfig(), { mode: 0o600 });
  }

  get apiSocket(): string {
    return join(this.config.stateDir, 'api.sock');
  }

  get pods(): readonly PodRecord[] {
    return this.state.pods;
  }

  get processes(): readonly ProcessRecord[] {
    return this.state.processes;
  }

  service(name: string): PlannedService {
    const s = this.plan.services.find((x) => x.name === name);
    if (!s)
      throw new LabError(
        LabErrorCode.usage,
        `no service ${name} in this lab (have: ${this.plan.services.map((x) => x.name).join(', ')})`,
      );
    return s;
  }

  get nodes(): PlannedService[] {
    return this.plan.services.filter((s) => s.role === 'node');
  }

  get tors(): PlannedService[] {
    return this.plan.services.filter((s) => s.role === 'tor');
  }

  private save(): void {
    writeState(this.config.stateDir, this.state);
  }

  // ---------------------------------------------------------------- up

  /** Brings the lab up: cleans leftovers, wires namespaces, starts services, creates pods. */
  async up(): Promise<void> {
    requireRoot();
    await this.down({ quiet: true });
    this.state = this.freshState();
    mkdirSync(this.config.stateDir, { recursive: true });
    this.save();
    const t0 = Date.now();
    await this.wire();
    this.log(
      `✓ ${this.state.namespaces.length} namespaces, ${this.plan.bridges.length} bridges (${elapsed(t0)})`,
    );
    const api = this.plan.services.find((s) => s.role === 'apiserver');
    if (api) {
      if (this.external) {
        this.writeNodeHosts();
        await this.bridgeExternalApi(api);
      } else await this.startService(api.name);
      await this.waitForApi();
      if (!this.external) await this.forwardApiToHost();
      this.log(
        this.external
          ? `✓ outside API server ${this.external.server.origin} answers, bridged to ${this.labApiUrl} (${elapsed(t0)})`
          : `✓ API server ${this.labApiUrl} answers (${elapsed(t0)})`,
      );
      await this.bootstrapApi();
    }
    const agents = this.config.agents ?? true;
    for (const s of this.plan.services) {
      if (s.role === 'tor' || (s.role === 'node' && agents)) await this.startService(s.name);
    }
    if (this.tors.length > 0 && this.nodes.length > 0 && agents) {
      await this.waitForSessions();
      this.log(
        `✓ BGP sessions established between ${this.tors.map((t) => t.name).join(', ')} and ${this.nodes.length} nodes (${elapsed(t0)})`,
      );
    }
    if (this.nodes.length > 0 && this.project.settings.podsPerNode > 0) {
      for (const node of this.nodes) {
        for (let i = 0; i < this.project.settings.podsPerNode; i++)
          await this.addPod(node.name, `pod-${node.name}-${i}`);
      }
      this.log(`✓ ${this.state.pods.length} pods created through podnet-cni ADD (${elapsed(t0)})`);
      if (agents && (await this.waitForMeshRoutes())) {
        this.log(`✓ every node routes the other nodes' pod blocks through them (${elapsed(t0)})`);
      }
    }
  }

  /**
   * Cleans leftovers and wires the namespaces, bridges and addresses, and starts nothing: the
   * real-cluster mode (cluster/real.ts) starts its own processes in them.
   */
  async wireOnly(): Promise<void> {
    requireRoot();
    await this.down({ quiet: true });
    this.state = this.freshState();
    mkdirSync(this.config.stateDir, { recursive: true });
    this.save();
    await this.wire();
  }

  /**
   * Waits (bounded) until every node routes each other node's pod blocks through that node: the
   * node-to-node mesh has converged. Pods reach each other through the ToR before that, so
   * reachability alone does not show it. Returns false when there is no mesh to wait for.
   */
  async waitForMeshRoutes(): Promise<boolean> {
    const { bgp, ipPools } = this.project.settings;
    if (!bgp.nodeToNodeMesh || this.nodes.length < 2 || this.state.pods.length === 0) return false;
    const families = ipPools.some((p) => p.cidr.includes(':')) ? ([4, 6] as const) : ([4] as const);
    const addressOf = (n: PlannedService, f: 4 | 6) =>
      (f === 4 ? n.links.find((l) => l.ipv4)?.ipv4 : n.links.find((l) => l.ipv6)?.ipv6)?.split('/')[0];
    const withPods = this.nodes.filter((n) => this.state.pods.some((p) => p.node === n.name));
    let missing: string[] = [];
    const check = async () => {
      missing = [];
      for (const node of this.nodes) {
        for (const f of families) {
          const r = await exec('ip', [`-${f}`, '-N', '-n', node.ns, '-json', 'route', 'show']);
          const routes = JSON.parse(r.stdout.trim() || '[]') as {
            gateway?: string;
            protocol?: string;
            nexthops?: { gateway?: string }[];
          }[];
          const via = (gw: string) => (rt: (typeof routes)[number]) =>
            rt.gateway === gw || (rt.nexthops?.some((h) => h.gateway === gw) ?? false);
          // Nodes on another subnet (profile racks): their blocks go via this node's gateway (the
          // ToR), resolved through the route to their address; one podnet route each at least.
          const offLink: PlannedService[] = [];
          for (const other of withPods.filter((o) => o !== node)) {
            const addr = addressOf(other, f);
            if (!addr) continue;
            if (!node.links.some((l) => other.links.some((o) => o.network === l.network))) {
              offLink.push(other);
              continue;
            }
            if (!routes.some(via(addr)))
              missing.push(`${node.name} has no IPv${f} route via ${other.name} (${addr})`);
          }
          const gw = f === 4 ? node.compose.gateway.ipv4 : node.compose.gateway.ipv6;
          if (offLink.length && gw) {
            const n = routes.filter((rt) => rt.protocol === String(PODNET_ROUTE_PROTO) && via(gw)(rt)).length;
            if (n < offLink.length)
              missing.push(
                `${node.name} has ${n} IPv${f} podnet routes via its gateway ${gw}, wants one per node on another subnet (${offLink.map((o) => o.name).join(', ')})`,
              );
          }
        }
      }
      return missing.length === 0;
    };
    try {
      await waitUntil("every node routing the other nodes' pod blocks", check, {
        timeoutMs: this.timeouts.bgpMs,
        intervalMs: 250,
      });
    } catch (err) {
      throw new LabError(
        LabErrorCode.timeout,
        `${(err as Error).message}: ${missing.join('; ')}\n${this.nodeLogTails()}`,
      );
    }
    return true;
  }

  /** Creates the bridge namespace, one namespace per service, veths, addresses, routes, sysctls. */
  private async wire(): Promise<void> {
    const br = this.plan.bridgeNs;
    await this.createNs(br);
    for (const b of this.plan.bridges) {
      await ipIn(br, 'link', 'add', b.bridge, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0');
      await ipIn(br, 'link', 'set', b.bridge, 'up');
    }
    for (const s of this.plan.services) {
      await this.createNs(s.ns);
      for (const l of s.links) {
        await ipIn(s.ns, 'link', 'add', l.ifname, 'type', 'veth', 'peer', 'name', l.peer, 'netns', br);
        await ipIn(br, 'link', 'set', l.peer, 'master', l.bridge, 'up');
        if (l.ipv6) await nsExec(s.ns, 'sysctl', ['-qw', `net.ipv6.conf.${l.ifname}.accept_dad=0`]);
        if (l.ipv4) await ipIn(s.ns, 'addr', 'add', l.ipv4, 'dev', l.ifname);
        if (l.ipv6) await ipIn(s.ns, 'addr', 'add', l.ipv6, 'dev', l.ifname, 'nodad');
        await ipIn(s.ns, 'link', 'set', l.ifname, 'up');
      }
      for (const [k, v] of Object.entries(s.sysctls)) {
        const r = await nsExec(s.ns, 'sysctl', ['-qw', `${k}=${v}`]);
        if (r.code !== 0)
          throw new LabError(LabErrorCode.command, `sysctl ${k}=${v} in ${s.name}: ${r.stderr.trim()}`);
      }
      for (const r of s.routes) await ipIn(s.ns, ...r);
    }
  }

  private async createNs(name: string): Promise<void> {
    await run('ip', ['netns', 'add', name]);
    this.state.namespaces.push(name);
    this.save();
    await ipIn(name, 'link', 'set', 'lo', 'up');
  }

  // ---------------------------------------------------------------- services

  private serviceDir(name: string): string {
    return join(this.config.stateDir, name);
  }

  /** Maps an absolute container path onto the host: a bind mount's source, else the service's root dir. */
  private hostPath(s: PlannedService, path: string, generated: Map<string, string>): string {
    const gen = generated.get(path);
    if (gen) return gen;
    for (const v of s.compose.volumes) {
      if (path === v.target || path.startsWith(`${v.target}/`)) {
        const src = isAbsolute(v.source) ? v.source : resolve(dirname(this.config.composeFile), v.source);
        return src + path.slice(v.target.length);
      }
    }
    const mapped = join(this.serviceDir(s.name), 'root', path);
    mkdirSync(dirname(mapped), { recursive: true });
    return mapped;
  }

  /** Files the runner writes for a service instead of the compose file's static copies. */
  private generatedFiles(s: PlannedService): Map<string, string> {
    const out = new Map<string, string>();
    const dir = this.serviceDir(s.name);
    mkdirSync(dir, { recursive: true });
    // The routers peer with the nodes of the active profiles (not node-d/e without `racks`).
    const all = activeServices(this.project, this.config.profiles ?? []);
    for (const v of s.compose.volumes) {
      let text: string | undefined;
      if (s.role === 'tor' && v.target.endsWith('bird.conf'))
        text = birdConfig(s.compose, all, this.project.settings.bgp);
      if (s.role === 'tor' && v.target.endsWith('frr.conf'))
        text = frrConfig(s.compose, all, this.project.settings.bgp);
      if (s.role === 'node' && v.target === s.compose.environment.KUBECONFIG) {
        text = this.nodeKubeconfig();
      }
      if (text === undefined) continue;
      const file = join(dir, v.target.split('/').pop() ?? 'generated');
      writeFileSync(file, text);
      out.set(v.target, file);
    }
    return out;
  }

  /** The service's command translated for this host. */
  commandFor(s: PlannedService): { argv: string[]; env: Record<string, string> } | undefined {
    if (s.role === 'client') return undefined;
    const generated = this.generatedFiles(s);
    const [cmd, ...rest] = s.compose.command;
    if (!cmd) throw new LabError(LabErrorCode.composeInvalid, `compose: services.${s.name}.command is empty`);
    const mapArg = (a: string) => (a.startsWith('/') ? this.hostPath(s, a, generated) : a);
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(s.compose.environment)) env[k] = mapArg(v);
    const dist = (pkg: string, file: string) => {
      const path = join(this.config.repoRoot, 'packages', pkg, 'dist', file);
      if (!existsSync(path)) {
        throw new LabError(
          LabErrorCode.missingBuild,
          `${s.name}: ${path} does not exist (build it: npx turbo run build --filter=@podnet/${pkg})`,
        );
      }
      return path;
    };
    let argv: string[];
    switch (cmd) {
      case 'podnet-apiserver': {
        // HTTPS (kubectl sends no token over http://). The server makes its certificate (kept in
        // its data file) for its lab addresses, and writes a kubeconfig with its CA, which the
        // nodes' kubeconfigs and the runner use: compose's own --advertise and --kubeconfig (the
        // Docker lab's paths) give way to these.
        const advertise = s.links.flatMap((l) =>
          [l.ipv4, l.ipv6].flatMap((a) => (a ? ['--advertise', a.split('/')[0]!] : [])),
        );
        const own = rest.filter(
          (a, i) =>
            a !== '--no-tls' &&
            a !== '--advertise' &&
            a !== '--kubeconfig' &&
            rest[i - 1] !== '--advertise' &&
            rest[i - 1] !== '--kubeconfig',
        );
        argv = [
          nodeBin,
          dist('apiserver', 'cli.js'),
          ...own.map(mapArg),
          ...advertise,
          '--kubeconfig',
          this.apiServerKubeconfigPath,
        ];
        break;
      }
      case 'podnet-agent': {
        // The bundle `podnet-agent` runs in the image, with the node flags of its `#!` line.
        const cli = dist('agent', 'podnet-agent.js');
        argv = [nodeBin, ...shebangNodeFlags(cli), cli, ...rest.map(mapArg)];
        break;
      }
      case 'bird':
        argv = ['bird', ...rest.map(mapArg)];
        break;
      default:
        argv = [cmd, ...rest.map(mapArg)];
    }
    if (s.compose.daemon === 'frr') mkdirSync(this.hostPath(s, '/run/frr', generated), { recursive: true });
    return { argv, env };
  }

  /** Starts a service's process inside its namespace, detached, with its output in its log file. */
  async startService(name: string): Promise<ProcessRecord | undefined> {
    const s = this.service(name);
    const c = this.commandFor(s);
    if (!c) return undefined;
    const log = join(this.serviceDir(s.name), `${s.name}.log`);
    const rec = this.spawnDetached(s.name, s.ns, c.argv, c.env, log);
    if (s.role === 'apiserver') {
      const port = String(this.project.settings.apiServer.port);
      const fwd = join(this.config.repoRoot, 'packages', 'lab', 'dist', 'forward.js');
      this.spawnDetached(
        `${s.name}-forward`,
        s.ns,
        [nodeBin, fwd, `unix:${this.apiSocket}`, `tcp:127.0.0.1:${port}`],
        {},
        join(this.serviceDir(s.name), 'forward.log'),
      );
    }
    // A process that dies at once (bad flags, missing binary) is reported now, with its log.
    await sleep(300);
    if (!isOurs(rec)) {
      throw new LabError(
        LabErrorCode.command,
        `${s.name} exited right after starting: ${c.argv.join(' ')}\n${tail(log)}`,
      );
    }
    return rec;
  }

  /**
   * KUBECONFIG mode: the outside API server appears at the API service's lab address. In the API
   * service's namespace a forwarder listens on the compose port and pipes to a unix socket; in the
   * root namespace a relay pipes that socket to the outside server. TLS passes through untouched.
   */
  private async bridgeExternalApi(api: PlannedService): Promise<void> {
    const ext = this.external;
    if (!ext) return;
    const fwd = join(this.config.repoRoot, 'packages', 'lab', 'dist', 'forward.js');
    const sock = join(this.config.stateDir, 'ext-api.sock');
    const host = ext.server.hostname.replace(/^\[|\]$/g, '');
    const port = ext.server.port || (ext.server.protocol === 'https:' ? '443' : '80');
    const dir = this.serviceDir(api.name);
    const relay = this.spawnDetached(
      `${api.name}-relay`,
      undefined,
      [nodeBin, fwd, `unix:${sock}`, `tcp:${host}:${port}`],
      {},
      join(dir, 'relay.log'),
    );
    const forward = this.spawnDetached(
      `${api.name}-forward`,
      api.ns,
      [nodeBin, fwd, `tcp:0.0.0.0:${this.project.settings.apiServer.port}`, `unix:${sock}`],
      {},
      join(dir, 'forward.log'),
    );
    await sleep(300);
    for (const p of [relay, forward]) {
      if (!isOurs(p))
        throw new LabError(LabErrorCode.command, `${p.service} exited right after starting\n${tail(p.log)}`);
    }
  }

  /** Starts a process detached (in `ns` via `ip netns exec` when given), recorded for `down`. */
  spawnDetached(
    service: string,
    ns: string | undefined,
    argv: string[],
    env: Record<string, string>,
    log: string,
  ): ProcessRecord {
    mkdirSync(dirname(log), { recursive: true });
    const fd = openSync(log, 'a');
    const [cmd, args] = ns ? ['ip', ['netns', 'exec', ns, ...argv]] : [argv[0] ?? '', argv.slice(1)];
    const child = spawn(cmd, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...env },
      cwd: this.config.repoRoot,
    });
    closeSync(fd);
    child.unref();
    const pid = child.pid;
    if (pid === undefined)
      throw new LabError(LabErrorCode.command, `could not start ${service}: ${argv.join(' ')}`);
    const rec: ProcessRecord = { service, pid, startTime: processStartTime(pid) ?? '', argv, log };
    this.state.processes.push(rec);
    this.save();
    return rec;
  }

  /** Stops a service's processes by pid: SIGTERM (graceful) or SIGKILL (a crash). */
  async stopService(name: string, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM', graceMs = 5000): Promise<void> {
    const recs = this.state.processes.filter((p) => p.service === name || p.service === `${name}-forward`);
    await Promise.all(recs.map((p) => stopProcess(p, signal, graceMs)));
    this.state.processes = this.state.processes.filter((p) => !recs.includes(p));
    this.save();
  }

  /** Restarts a service: stop (graceful unless told otherwise), then start again. */
  async restartService(name: string, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    await this.stopService(name, signal);
    await this.startService(name);
  }

  // ---------------------------------------------------------------- API

  private async waitForApi(): Promise<void> {
    await waitUntil(
      this.external
        ? `the outside API server ${this.external.server.origin} to answer GET /api/v1/namespaces`
        : `the API server (${this.labApiUrl}) to answer GET /api/v1/namespaces through ${this.apiSocket}`,
      async () => (await this.kube.request('GET', '/api/v1/namespaces')).status === 200,
      { timeoutMs: this.timeouts.apiMs, intervalMs: 200 },
    );
  }

  /**
   * What compose's lab-init service runs (`podnet-lab bootstrap`): waits for the API server, then
   * writes the same objects `up` writes.
   */
  async bootstrap(): Promise<void> {
    await this.waitForApi();
    await this.bootstrapApi();
  }

  /** CRDs from deploy/crds, the IPPools, BGP configuration, the ToR peers and the Node objects. */
  private async bootstrapApi(): Promise<void> {
    const crdDir = join(this.config.repoRoot, 'deploy', 'crds');
    const crds = existsSync(crdDir)
      ? readdirSync(crdDir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
      : [];
    let n = 0;
    for (const f of crds.sort()) {
      for (const doc of parseAllDocuments(readFileSync(join(crdDir, f), 'utf8'))) {
        const obj = doc.toJS() as { kind?: string; metadata?: { name: string } } | null;
        if (obj?.kind !== 'CustomResourceDefinition' || !obj.metadata) continue;
        await this.kube.apply(
          '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
          obj as { metadata: { name: string } },
        );
        n++;
      }
    }
    const ns = this.project.settings.podNamespace;
    await this.kube.apply('/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns },
    } as never);
    // The agents' own namespace, as deploy/ creates it: their Lease (the one agent that writes pool
    // conditions and runs the IPAM garbage collection) and BGP password Secrets live there.
    const agentNs = join(this.config.repoRoot, 'deploy', 'namespace.yaml');
    if (existsSync(agentNs)) {
      const obj = parseAllDocuments(readFileSync(agentNs, 'utf8'))[0]?.toJS() as
        | { kind?: string; metadata?: { name: string } }
        | undefined;
      if (obj?.kind === 'Namespace' && obj.metadata)
        await this.kube.apply('/api/v1/namespaces', obj as { metadata: { name: string } });
    }
    if (this.nodes.length === 0) {
      this.log(`✓ ${n} CRDs applied`);
      return;
    }
    if (n === 0) {
      throw new LabError(
        LabErrorCode.missingBuild,
        `no CustomResourceDefinitions in ${crdDir}: the podnet CRDs must be generated there (packages/k8s)`,
      );
    }
    const crd = '/apis/podnet.io/v1alpha1';
    // The CRDs may take a moment to be served after they are created.
    await waitUntil(
      'the podnet.io/v1alpha1 resources to be served',
      async () => (await this.kube.request('GET', `${crd}/ippools`)).status === 200,
      {
        timeoutMs: 15_000,
      },
    );
    const { bgp, ipPools } = this.project.settings;
    const objects = labObjects(this.project.settings, this.model, this.tors);
    for (const p of objects.ipPools) await this.kube.apply(`${crd}/ippools`, p);
    await this.kube.apply(`${crd}/bgpconfigurations`, objects.bgpConfiguration);
    for (const peer of objects.bgpPeers) await this.kube.apply(`${crd}/bgppeers`, peer);
    const peers = objects.bgpPeers.length;
    for (const node of this.nodes) {
      const annotations: Record<string, string> = { 'podnet.io/as-number': String(bgp.nodeAsNumber) };
      if (node.compose.routeReflectorClusterId) {
        annotations['podnet.io/route-reflector-cluster-id'] = node.compose.routeReflectorClusterId;
      }
      const v4 = node.links.find((l) => l.ipv4)?.ipv4;
      const v6 = node.links.find((l) => l.ipv6)?.ipv6;
      if (v4) annotations['podnet.io/ipv4-address'] = v4;
      if (v6) annotations['podnet.io/ipv6-address'] = v6;
      const addresses = [v4, v6]
        .filter((a): a is string => !!a)
        .map((a) => ({ type: 'InternalIP', address: a.split('/')[0] }));
      await this.kube.apply('/api/v1/nodes', {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: node.name, annotations, labels: { 'kubernetes.io/hostname': node.name } },
        status: { addresses },
      } as never);
    }
    this.log(
      `✓ ${n} CRDs, ${ipPools.length} IPPools, BGPConfiguration default, ${peers} BGPPeers (ToR), ${this.nodes.length} Nodes (model ${this.model.name})`,
    );
  }

  /**
   * A TCP listener on 127.0.0.1 (in the caller's namespace) that tunnels to the lab's API server,
   * for clients that need a URL (e.g. @kubernetes/client-node in tests). Close it when done.
   */
  async openApiTunnel(): Promise<{
    url: string;
    token: string;
    /** The API server's CA when it serves HTTPS (the namespace lab; the certificate names 127.0.0.1). */
    caPem?: string;
    close: () => Promise<void>;
  }> {
    const server: Server = createServer((conn) => splice(conn, netConnect(this.apiSocket)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const caPem = this.apiCaPem();
    return {
      url: `${caPem ? 'https' : 'http'}://127.0.0.1:${port}`,
      token: this.project.settings.apiServer.token,
      ...(caPem ? { caPem } : {}),
      close: () => new Promise<void>((r) => server.close(() => r())),
    };
  }

  // ---------------------------------------------------------------- BGP

  /** `show protocols` of a BIRD ToR, parsed. */
  async birdProtocols(tor: PlannedService): Promise<PeerRow[]> {
    const sock = join(this.serviceDir(tor.name), 'root', 'run', 'bird', 'bird.ctl');
    const r = await exec('birdc', ['-s', sock, 'show', 'protocols'], { timeoutMs: 5000 });
    if (r.code !== 0)
      throw new LabError(LabErrorCode.command, `birdc on ${tor.name}: ${r.stderr.trim() || r.stdout.trim()}`);
    return birdRows(tor.name, r.stdout);
  }

  /** `show bgp summary json` of an FRR ToR. */
  async frrPeers(tor: PlannedService): Promise<PeerRow[]> {
    const dir = join(this.serviceDir(tor.name), 'root', 'run', 'frr');
    const r = await exec('vtysh', ['--vty_socket', dir, '-c', 'show bgp summary json'], { timeoutMs: 5000 });
    if (r.code !== 0)
      throw new LabError(LabErrorCode.command, `vtysh on ${tor.name}: ${r.stderr.trim() || r.stdout.trim()}`);
    return frrRows(tor.name, r.stdout);
  }

  /** The peer table of every ToR (BIRD or FRR). */
  async torPeerTables(): Promise<PeerRow[]> {
    const rows: PeerRow[] = [];
    for (const tor of this.tors) {
      try {
        rows.push(
          ...(tor.compose.daemon === 'frr' ? await this.frrPeers(tor) : await this.birdProtocols(tor)),
        );
      } catch (err) {
        rows.push({
          router: tor.name,
          peer: '-',
          state: 'unreachable',
          since: '',
          info: (err as Error).message.split('\n')[0] ?? '',
        });
      }
    }
    return rows;
  }

  /** The agent's /status document from inside the node's namespace, or undefined. */
  async agentStatus(node: string): Promise<unknown> {
    const s = this.service(node);
    const script =
      "fetch('http://127.0.0.1:9099/status').then(r=>r.text()).then(t=>process.stdout.write(t),e=>{console.error(String(e));process.exit(1)})";
    const r = await nsExec(s.ns, nodeBin, ['-e', script], { timeoutMs: 5000 });
    if (r.code !== 0) return undefined;
    try {
      return JSON.parse(r.stdout);
    } catch {
      return undefined;
    }
  }

  /** Waits (bounded) until every ToR has its IPv4 session with every node Established. */
  async waitForSessions(): Promise<void> {
    const expected = this.tors.flatMap((t) =>
      torPeers(
        t.compose,
        this.project.services.filter((s) => this.nodes.some((n) => n.name === s.name)),
      ),
    );
    let last: PeerRow[] = [];
    try {
      await waitUntil(
        'BGP sessions between the ToR and every node',
        async () => {
          last = await this.torPeerTables();
          const v4 = last.filter((r) => /_v4$|\(ipv4/i.test(r.peer));
          return (
            v4.length >= expected.length && v4.every((r) => r.state === 'up' || r.state === 'Established')
          );
        },
        { timeoutMs: this.timeouts.bgpMs, intervalMs: 500 },
      );
    } catch (err) {
      const down = last
        .filter((r) => r.state !== 'up' && r.state !== 'Established')
        .map((r) => `${r.router}↔${r.peer}: ${r.state} ${r.info}`);
      throw new LabError(
        LabErrorCode.timeout,
        `${(err as Error).message}; not established: ${down.join('; ') || 'no peers listed'}\n${this.nodeLogTails()}`,
      );
    }
  }

  private nodeLogTails(): string {
    return this.nodes
      .map((n) => `--- ${n.name} log:\n${tail(join(this.serviceDir(n.name), `${n.name}.log`), 8)}`)
      .join('\n');
  }

  // ---------------------------------------------------------------- pods

  private cniConfig(node: PlannedService): string {
    mkdirSync(this.serviceDir(node.name), { recursive: true });
    const kc = join(this.serviceDir(node.name), 'kubeconfig');
    if (!existsSync(kc)) writeFileSync(kc, this.nodeKubeconfig());
    const hasV6 = this.project.settings.ipPools.some((p) => p.cidr.includes(':'));
    return JSON.stringify({
      cniVersion: '1.0.0',
      name: 'podnet',
      type: 'podnet',
      kubeconfig: kc,
      nodeName: node.name,
      cacheDir: join(this.serviceDir(node.name), 'cni-cache'),
      logFile: join(this.serviceDir(node.name), 'cni.log'),
      // Where this node's agent reads the plugin's timing records (compose's PODNET_CNI_TIMING_DIR,
      // mapped like the agent's own environment); none without it.
      timingDir: node.compose.environment.PODNET_CNI_TIMING_DIR
        ? this.hostPath(node, node.compose.environment.PODNET_CNI_TIMING_DIR, new Map())
        : 'none',
      logLevel: 'info',
      ipam: { assign_ipv4: true, assign_ipv6: hasV6 },
    });
  }

  private async cni(node: PlannedService, command: 'ADD' | 'DEL' | 'CHECK', pod: PodRecord): Promise<string> {
    // The launcher a runtime runs: Node started from the plugin's startup snapshot.
    const plugin = join(this.config.repoRoot, 'packages', 'cni', 'dist', 'podnet-cni');
    if (!existsSync(plugin)) {
      throw new LabError(
        LabErrorCode.missingBuild,
        `${plugin} does not exist (build it: npx turbo run build --filter=@podnet/cni)`,
      );
    }
    const env = {
      ...process.env,
      CNI_COMMAND: command,
      CNI_CONTAINERID: pod.containerId,
      CNI_NETNS: `/var/run/netns/${pod.ns}`,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name}`,
      CNI_PATH: join(this.config.repoRoot, 'packages', 'cni', 'dist'),
    };
    const r = await nsExec(node.ns, plugin, [], {
      env,
      input: this.cniConfig(node),
      timeoutMs: 60_000,
    });
    if (r.code !== 0) {
      throw new LabError(
        LabErrorCode.command,
        `podnet-cni ${command} for ${pod.name} on ${node.name} exited ${r.code}: ${r.stdout.trim() || r.stderr.trim()}`,
      );
    }
    return r.stdout;
  }

  /** Creates a pod as a kubelet would: the Pod object, a fresh namespace, then `podnet-cni ADD`. */
  async addPod(
    nodeName: string,
    name: string,
    opts: { namespace?: string; labels?: Record<string, string>; ports?: unknown[] } = {},
  ): Promise<PodRecord> {
    const node = this.service(nodeName);
    const namespace = opts.namespace ?? this.project.settings.podNamespace;
    const ns = `${this.config.prefix}${opts.namespace ? `${opts.namespace}-` : ''}${name}`;
    const pod: PodRecord = {
      name,
      namespace,
      node: nodeName,
      ns,
      containerId: createHash('sha256').update(`${ns}/${Date.now()}`).digest('hex').slice(0, 32),
    };
    await this.kube.apply(`/api/v1/namespaces/${namespace}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace, labels: opts.labels ?? { app: 'podnet-lab' } },
      spec: {
        nodeName,
        containers: [
          {
            name: 'pause',
            image: 'registry.k8s.io/pause:3.10',
            ...(opts.ports ? { ports: opts.ports } : {}),
          },
        ],
      },
    } as never);
    await this.createNs(ns);
    this.state.pods.push(pod);
    this.save();
    const out = await this.cni(node, 'ADD', pod);
    const result = JSON.parse(out) as { ips?: { address: string }[] };
    for (const ip of result.ips ?? []) {
      const a = ip.address.split('/')[0] ?? '';
      if (a.includes(':')) pod.ipv6 = a;
      else pod.ipv4 = a;
    }
    if (!pod.ipv4 && !pod.ipv6)
      throw new LabError(LabErrorCode.command, `podnet-cni ADD for ${name} returned no IP: ${out.trim()}`);
    this.save();
    return pod;
  }

  /** Deletes a pod as a kubelet would: `podnet-cni DEL`, the namespace, then the Pod object. */
  async deletePod(name: string): Promise<void> {
    const pod = this.state.pods.find((p) => p.name === name);
    if (!pod) throw new LabError(LabErrorCode.usage, `no pod ${name} in this lab`);
    await this.cni(this.service(pod.node), 'DEL', pod);
    await exec('ip', ['netns', 'del', pod.ns]);
    this.state.namespaces = this.state.namespaces.filter((n) => n !== pod.ns);
    this.state.pods = this.state.pods.filter((p) => p !== pod);
    this.save();
    await this.kube.delete(`/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`);
  }

  // ---------------------------------------------------------------- reachability

  /** One ICMP echo from a namespace to an address (1 s timeout). */
  async ping(
    ns: string,
    ip: string,
    opts: { count?: number; intervalS?: number; timeoutS?: number } = {},
  ): Promise<boolean> {
    const count = opts.count ?? 1;
    const args = ['-n', '-q', '-c', String(count), '-W', String(opts.timeoutS ?? 1)];
    if (opts.intervalS !== undefined) args.push('-i', String(opts.intervalS));
    const r = await nsExec(ns, 'ping', [...args, ip], { timeoutMs: 5_000 + count * 1_000 });
    return r.code === 0;
  }

  /**
   * Every pod to every other pod, and the client(s) to every pod, for one address family. Without
   * `clients` (models where nothing outside reaches a pod) only pod to pod.
   */
  async reachability(family: 4 | 6 = 4, opts: { clients?: boolean } = {}): Promise<Probe[]> {
    const targets = this.state.pods.filter((p) => (family === 4 ? p.ipv4 : p.ipv6));
    const sources = [
      ...this.state.pods.map((p) => ({ name: p.name, ns: p.ns })),
      ...(opts.clients === false ? [] : this.plan.services.filter((s) => s.role === 'client')).map((s) => ({
        name: s.name,
        ns: s.ns,
      })),
    ];
    const pairs = sources.flatMap((src) =>
      targets
        .filter((t) => t.name !== src.name)
        .map((t) => ({ src, t, ip: (family === 4 ? t.ipv4 : t.ipv6) ?? '' })),
    );
    return mapLimit(pairs, 8, async ({ src, t, ip }) => ({
      from: src.name,
      to: t.name,
      ip,
      ok: await this.ping(src.ns, ip),
    }));
  }

  /** Waits until every probe of `reachability()` succeeds (bounded), and returns the last matrix. */
  async waitForReachability(family: 4 | 6 = 4, opts: { clients?: boolean } = {}): Promise<Probe[]> {
    let last: Probe[] = [];
    const deadline = Date.now() + this.timeouts.reachMs;
    for (;;) {
      last = await this.reachability(family, opts);
      if (last.every((p) => p.ok) || Date.now() >= deadline) return last;
      await sleep(500);
    }
  }

  // ---------------------------------------------------------------- the model's table

  private get echoPort(): number {
    return this.config.echoPort ?? DEFAULT_ECHO_PORT;
  }

  /** The pods, nodes and external host (the first `client` service) of the model's table. */
  tableEndpoints(): { pods: Endpoint[]; nodes: Endpoint[]; external: Endpoint } {
    const svc = (s: PlannedService): Endpoint => {
      const e: Endpoint = { name: s.name, ns: s.ns };
      const v4 = serviceAddress(s, 4);
      const v6 = serviceAddress(s, 6);
      if (v4) e.ipv4 = v4;
      if (v6) e.ipv6 = v6;
      return e;
    };
    const client = this.plan.services.find((s) => s.role === 'client');
    if (!client)
      throw new LabError(
        LabErrorCode.usage,
        'the model table needs an external host: a service with role client',
      );
    return {
      pods: this.state.pods.map((p) => ({
        name: p.name,
        ns: p.ns,
        node: p.node,
        ...(p.ipv4 ? { ipv4: p.ipv4 } : {}),
        ...(p.ipv6 ? { ipv6: p.ipv6 } : {}),
      })),
      nodes: this.nodes.map(svc),
      external: svc(client),
    };
  }

  /**
   * Starts the echo (TCP and UDP, answers with the source address it saw) in every pod, node and
   * the external host that has none running yet, and waits until each listens. The servers stop
   * by themselves after `echoLifetimeS`; `down` stops them before.
   */
  async startEcho(): Promise<void> {
    const { pods, nodes, external } = this.tableEndpoints();
    const script = join(this.config.repoRoot, 'packages', 'lab', 'dist', 'echo-cli.js');
    const lifetime = this.config.echoLifetimeS ?? DEFAULT_ECHO_LIFETIME_S;
    const started: ProcessRecord[] = [];
    for (const e of [...pods, ...nodes, external]) {
      const service = `echo-${e.name}`;
      if (this.state.processes.some((p) => p.service === service && isOurs(p))) continue;
      const log = join(this.config.stateDir, 'echo', `${e.name}.log`);
      const argv = [
        nodeBin,
        script,
        'serve',
        '--port',
        String(this.echoPort),
        '--lifetime-s',
        String(lifetime),
      ];
      started.push(this.spawnDetached(service, e.ns, argv, {}, log));
    }
    await waitUntil(
      `the echo servers to listen on port ${this.echoPort}`,
      () => started.every((p) => existsSync(p.log) && readFileSync(p.log, 'utf8').includes('listening')),
      { timeoutMs: 30_000, intervalMs: 100 },
    ).catch((err: Error) => {
      const dead = started.filter((p) => !isOurs(p)).map((p) => `${p.service}: ${tail(p.log, 3)}`);
      throw new LabError(LabErrorCode.command, `${err.message}\n${dead.join('\n')}`);
    });
  }

  /**
   * Probes the model's whole table once: every sender asks every receiver's echo over TCP and UDP,
   * IPv4 and IPv6, and each row records the source address the receiver reported.
   */
  async probeTable(): Promise<MeasuredRow[]> {
    await this.startEcho();
    const rows = planTable(this.model, this.tableEndpoints());
    const script = join(this.config.repoRoot, 'packages', 'lab', 'dist', 'echo-cli.js');
    const bySource = new Map<string, { ns: string; rows: MeasuredRow[] }>();
    const measured: MeasuredRow[] = rows.map((r) => ({ ...r, seen: {} }));
    for (const r of measured) {
      const g = bySource.get(r.from.ns) ?? { ns: r.from.ns, rows: [] };
      g.rows.push(r);
      bySource.set(r.from.ns, g);
    }
    await mapLimit([...bySource.values()], 4, async ({ ns, rows }) => {
      const asks: { row: MeasuredRow; family: 4 | 6; proto: 'tcp' | 'udp'; target: string }[] = [];
      for (const row of rows) {
        for (const family of [4, 6] as const) {
          const address = family === 4 ? row.to.ipv4 : row.to.ipv6;
          if (row.expected[family] === undefined || !address) continue;
          for (const proto of ['tcp', 'udp'] as const) {
            asks.push({ row, family, proto, target: formatTarget({ proto, address, port: this.echoPort }) });
          }
        }
      }
      const r = await nsExec(
        ns,
        nodeBin,
        [script, 'probe', '--timeout-ms', String(this.timeouts.probeMs), ...asks.map((a) => a.target)],
        { timeoutMs: this.timeouts.probeMs + 30_000 },
      );
      if (r.code !== 0) throw new LabError(LabErrorCode.command, `echo probe in ${ns}: ${r.stderr.trim()}`);
      const results = r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as EchoResult);
      asks.forEach((a, i) => {
        const res = results[i];
        const seen: Seen = a.row.seen[a.family] ?? {};
        if (res?.seen) seen[a.proto] = res.seen;
        else seen[`${a.proto}Error`] = res?.error ?? 'no result';
        a.row.seen[a.family] = seen;
      });
    });
    return measured;
  }

  /**
   * Probes the table until every row is what the model promises, or the reachability timeout
   * passes (bounded); returns the last table.
   */
  async waitForTable(): Promise<MeasuredRow[]> {
    const deadline = Date.now() + this.timeouts.reachMs;
    for (;;) {
      const rows = await this.probeTable();
      if (rows.every((r) => rowProblems(r).length === 0) || Date.now() >= deadline) return rows;
      await sleep(500);
    }
  }

  // ---------------------------------------------------------------- down

  /** Stops every process (by pid), deletes every namespace and the state dir. Idempotent. */
  async down(opts: { quiet?: boolean } = {}): Promise<{ processes: number; namespaces: number }> {
    requireRoot();
    const state = readState(this.config.stateDir);
    let processes = 0;
    if (state?.kubeconfig && this.external) await this.deleteExternalObjects(state);
    if (state) {
      const ours = state.processes.filter(isOurs);
      await Promise.all(ours.map((p) => stopProcess(p, 'SIGTERM', 3000)));
      processes = ours.length;
    }
    const names = new Set(state?.namespaces ?? []);
    if (existsSync('/var/run/netns')) {
      for (const n of readdirSync('/var/run/netns')) if (n.startsWith(this.config.prefix)) names.add(n);
    }
    // Anything still running inside a lab namespace was started in it by the lab (or `lab exec`).
    for (const n of names) {
      const r = await exec('ip', ['netns', 'pids', n]);
      for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
        try {
          process.kill(pid, 'SIGKILL');
          processes++;
        } catch {}
      }
    }
    let namespaces = 0;
    for (const n of names) {
      if (!n.startsWith(this.config.prefix)) continue;
      if (!existsSync(`/var/run/netns/${n}`)) continue;
      await exec('ip', ['netns', 'del', n]);
      namespaces++;
    }
    if (existsSync('/etc/netns')) {
      for (const n of readdirSync('/etc/netns')) {
        if (n.startsWith(this.config.prefix)) rmSync(join('/etc/netns', n), { recursive: true, force: true });
      }
    }
    if (existsSync(this.config.stateDir)) rmSync(this.config.stateDir, { recursive: true, force: true });
    if (!opts.quiet || processes + namespaces > 0) {
      this.log(`✓ removed ${processes} processes, ${namespaces} namespaces and ${this.config.stateDir}`);
    }
    this.state = this.freshState();
    return { processes, namespaces };
  }

  /**
   * KUBECONFIG mode: the outside cluster outlives the lab, so `down` deletes what the lab put there:
   * its Pods, Nodes, IPPools, ToR BGPPeers, and the IPAM objects of its nodes. Best effort: a
   * failure is logged and `down` goes on.
   */
  private async deleteExternalObjects(state: LabState): Promise<void> {
    const crd = '/apis/podnet.io/v1alpha1';
    const nodes = new Set(this.nodes.map((n) => n.name));
    const paths = [
      ...state.pods.map((p) => `/api/v1/namespaces/${p.namespace}/pods/${p.name}`),
      ...[...nodes].map((n) => `/api/v1/nodes/${n}`),
      ...this.project.settings.ipPools.map((p) => `${crd}/ippools/${p.name}`),
      ...this.tors.flatMap((t) => [`${crd}/bgppeers/${t.name}-v4`, `${crd}/bgppeers/${t.name}-v6`]),
    ];
    try {
      for (const kind of ['blockaffinities', 'ipamblocks', 'ipamhandles']) {
        for (const o of await this.kube.list(`${crd}/${kind}`)) {
          const text = JSON.stringify(o.spec ?? {});
          const name = (o.metadata as { name?: string } | undefined)?.name;
          if (name && [...nodes].some((n) => text.includes(`"${n}"`) || text.includes(`host:${n}`))) {
            paths.push(`${crd}/${kind}/${name}`);
          }
        }
      }
      for (const p of paths) await this.kube.delete(p);
      this.log(`✓ deleted ${paths.length} lab objects from ${this.external?.server.origin}`);
    } catch (err) {
      this.log(`! could not delete every lab object from the outside API server: ${(err as Error).message}`);
    }
  }

  /** Whether state exists and the recorded processes still run. */
  statusSummary(): { service: string; pid: number; running: boolean; log: string }[] {
    return this.state.processes.map((p) => ({
      service: p.service,
      pid: p.pid,
      running: isOurs(p),
      log: p.log,
    }));
  }

  get isUp(): boolean {
    return existsSync(join(this.config.stateDir, 'state.json')) && this.state.namespaces.length > 0;
  }
}

/**
 * Removes labs left by test runs whose process is gone: namespaces whose name matches `pattern`
 * (group 1 = the creating pid), after killing what still runs inside them.
 */
export async function cleanupStaleLabs(pattern: RegExp): Promise<string[]> {
  if (!existsSync('/var/run/netns')) return [];
  const removed: string[] = [];
  for (const name of readdirSync('/var/run/netns')) {
    const m = pattern.exec(name);
    if (!m?.[1] || existsSync(`/proc/${m[1]}`)) continue;
    const r = await exec('ip', ['netns', 'pids', name]);
    for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    await exec('ip', ['netns', 'del', name]);
    removed.push(name);
  }
  return removed;
}

async function stopProcess(p: ProcessRecord, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (!isOurs(p)) return;
  try {
    process.kill(p.pid, signal);
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isOurs(p) && Date.now() < deadline) await sleep(50);
  if (isOurs(p)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {}
    const hard = Date.now() + 2000;
    while (isOurs(p) && Date.now() < hard) await sleep(50);
  }
}
