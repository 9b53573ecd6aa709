// The agent's CNI socket: the shim the runtime runs as the `podnet` plugin (@podnet/cni
// shim/podnet-cni-shim.c) hands ADD, DEL and CHECK here, and the agent runs them with the plugin's
// own logic (@podnet/cni runPlugin) in this warm process: modules loaded, the API connection kept
// alive, IPAM's pool and block cache filled. Nothing here is in the pod's path when the agent is
// down: the shim then runs the standalone plugin (no socket, refused, no acceptance in time, or a
// decline from here).
//
// The agent declines (and the shim runs the standalone plugin) when it cannot act exactly as the
// standalone plugin would:
// - it does not share the host's pid namespace (the shim's pid and start time do not match
//   /proc here): the in-flight marker the ADD writes names the shim's pid, which GC checks on the
//   host;
// - it does not see the pod's network namespace at CNI_NETNS as the same namespace (st_dev and
//   st_ino differ, or the path is absent here: /var/run/netns not mounted, a /proc/<pid>/ns/net path
//   without the host's pid namespace).
// Unless the shim hands over descriptors (its preamble, see shim/podnet-cni-shim.c): the pod's
// namespace, a NETLINK_ROUTE socket made inside it and the node's /proc/sys/net, opened by the shim
// as root. Then none of the above is needed: no setns (the pod side goes over the handed socket,
// the veth's peer is placed with the namespace descriptor: CAP_NET_ADMIN), no writable /proc/sys
// here, no view of /var/run/netns, and the in-flight marker names the shim's pid as the shim (in
// the runtime's, the host's, pid namespace) reported it.
// Both paths may run at once on a node (an agent restarting, a timed-out shim): the allocation is a
// compare-and-swap on the block and the result cache is the same directory.
import { createHash } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import {
  type Datastore,
  decodeShimRequest,
  encodeShimAnswer,
  encodeShimDecline,
  type HandedNamespace,
  KubeDatastore,
  type Log,
  loadKubeTarget,
  MiniKube,
  NetlinkDataplane,
  type PluginConfig,
  type RunHooks,
  type RunOutcome,
  runPlugin,
  SHIM_ACCEPTED,
  type ShimRequest,
} from '@podnet/cni';
import { closeFd, recvFds } from '@podnet/native';
import type { Logger } from 'pino';
import { SpareAddresses, type SpareOptions } from './cni-spares.js';
import type { Metrics } from './metrics.js';

/** The commands the shim forwards. */
const SERVED = new Set(['ADD', 'DEL', 'CHECK']);
/** The shim's preamble: this, then one byte saying which descriptors came with it. */
const FDS_MAGIC = Buffer.from('podnet-cni-fds/1\0');
const FD_NETNS = 1;
const FD_NETLINK = 2;
const FD_SYSCTL = 4;
/** The descriptors the shim handed over for one request. */
export interface Handed {
  netnsFd?: number;
  netlinkFd?: number;
  sysctlFd?: number;
}
/** A request larger than this is refused (the shim allows 16 MiB of configuration). */
const MAX_REQUEST = 17 << 20;
/** A client that does not finish its request in this time is dropped (the shim gives up after 2 s). */
const REQUEST_TIMEOUT_MS = 10_000;
/** How long close() waits for the commands in progress before it drops their connections. */
const DRAIN_MS = 15_000;
/** How long a replaced API connection is kept for the requests still using it. */
const RETIRE_AFTER_MS = 120_000;

export interface CniServerOptions {
  /** The unix socket to serve (its directory is created). */
  path: string;
  /** This node: the default `nodeName` of a configuration that names none. */
  nodeName: string;
  log: Logger;
  metrics?: Pick<Metrics, 'cniDuration' | 'cniDeclined'> &
    Partial<Pick<Metrics, 'cniSpares' | 'cniSpareAllocations' | 'cniSparePending'>>;
  /**
   * Host paths in the network configuration → where this process sees them, e.g. the host's
   * /etc/cni/net.d (the conflist's `kubeconfig`) mounted at /host/etc/cni/net.d in the DaemonSet.
   */
  pathMap?: [host: string, here: string][];
  /**
   * What this agent can do (default agentLimits(): /proc/sys writable, CAP_SYS_ADMIN for setns);
   * tests override it.
   */
  can?: Partial<{ sysctls: boolean; setns: boolean }>;
  /**
   * Addresses kept allocated ahead per kind of request, so that an ADD answers without waiting on
   * the API server (cni-spares.ts). Default 0: every ADD allocates through IPAM.
   */
  spareAddresses?: number;
  /** Runs one command (default @podnet/cni runPlugin); tests replace it. */
  run?: (env: NodeJS.ProcessEnv, stdin: string, hooks: RunHooks) => Promise<RunOutcome>;
}

export interface CniServer {
  readonly path: string;
  /** The spare addresses of each configuration slot served so far (none when spareAddresses is 0). */
  spareAddresses(): SpareAddresses[];
  close(): Promise<void>;
}

/** st_dev:st_ino of a path, as the shim reports it; undefined when it cannot be stat'ed. */
export function nsId(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/<pid>/stat (the start time), as seen in this process's pid namespace. */
function startOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * Whether this process can write the per-interface sysctls an ADD sets on the host end of the veth
 * (forwarding, proxy_arp…). An unprivileged container's /proc/sys is read-only (the DaemonSet's
 * agent): its ADDs are left to the standalone plugin, which runs on the host as root.
 */
export function interfaceSysctlsWritable(procSys = '/proc/sys'): boolean {
  try {
    accessSync(`${procSys}/net/ipv4/conf/default/forwarding`, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether this process may enter other network namespaces (setns needs CAP_SYS_ADMIN): ADD, CHECK
 * and DEL work inside the pod's namespace. The DaemonSet's agent, unprivileged, has not.
 */
export function canEnterNamespaces(status = '/proc/self/status'): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(status, 'utf8'));
    return m !== null && (BigInt(`0x${m[1]}`) & (1n << 21n)) !== 0n;
  } catch {
    return false;
  }
}

/** What keeps this agent from running commands as the plugin would, whatever the request. */
export function agentLimits(): { sysctls: boolean; setns: boolean } {
  return { sysctls: interfaceSysctlsWritable(), setns: canEnterNamespaces() };
}

/** Why the agent cannot run this request as the standalone plugin would, or undefined. */
export function declineReason(
  r: ShimRequest,
  can: { sysctls: boolean; setns: boolean } = { sysctls: true, setns: true },
  handed: Handed = {},
): string | undefined {
  const cmd = r.env.CNI_COMMAND ?? '';
  if (!SERVED.has(cmd)) return `command ${JSON.stringify(cmd)} is not served by the agent`;
  // The shim opened the pod's namespace and a netlink socket in it: no setns here.
  const viaFds = r.env.CNI_NETNS
    ? handed.netnsFd !== undefined && handed.netlinkFd !== undefined
    : handed.sysctlFd !== undefined;
  if (!can.setns && !viaFds) {
    return 'the agent cannot enter pod network namespaces (no CAP_SYS_ADMIN) and the shim handed over none';
  }
  if (cmd === 'ADD' && !can.sysctls && handed.sysctlFd === undefined) {
    return "the agent cannot write the pod interface's sysctls (its /proc/sys is read-only)";
  }
  if (viaFds) return undefined;
  const start = startOf(r.pid);
  if (start === undefined || start !== r.pidStart) {
    return `the agent does not share the host's pid namespace (shim pid ${r.pid} not seen here)`;
  }
  const netns = r.env.CNI_NETNS;
  if (netns && r.netnsId !== undefined && nsId(netns) !== r.netnsId) {
    return `the agent does not see the network namespace ${netns} as the shim does`;
  }
  return undefined;
}

/**
 * One API connection per distinct credential (server, CA, client certificate, token): a token that
 * rotates gets a new connection, and the old one is closed once its requests are done.
 */
class WarmDatastores {
  private current = new Map<string, { key: string; kube: MiniKube; ds: KubeDatastore }>();
  private readonly retired = new Set<NodeJS.Timeout>();
  /** Per configuration slot: they outlive a rotated connection (their journal is the slot's). */
  readonly spares = new Map<string, SpareAddresses>();

  constructor(
    private readonly log: Log,
    private readonly pathMap: [string, string][],
    private readonly spare?: {
      node: string;
      count: number;
      dir: string;
      log: Logger;
      metrics?: SpareOptions['metrics'];
    },
  ) {}

  private here(path: string): string {
    for (const [host, here] of this.pathMap) {
      if (path === host || path.startsWith(`${host}/`)) return here + path.slice(host.length);
    }
    return path;
  }

  get(cfg: PluginConfig): Datastore {
    const path = cfg.kubeconfig === undefined ? undefined : this.here(cfg.kubeconfig);
    const target = loadKubeTarget(path, process.env, cfg.cacheDir);
    const h = createHash('sha256');
    for (const part of [
      target.server.href,
      target.ca,
      target.cert,
      target.key,
      target.token,
      target.basic ? `${target.basic.username}:${target.basic.password}` : undefined,
      String(target.insecure ?? false),
      target.tlsServerName,
      String(cfg.datastoreTimeoutMs),
    ]) {
      h.update(part ?? '');
      h.update('\0');
    }
    const key = h.digest('hex');
    const slot = path ?? '(in-cluster)';
    let e = this.current.get(slot);
    if (e?.key !== key) {
      if (e) this.retire(e.kube);
      const kube = new MiniKube(target, cfg.datastoreTimeoutMs);
      e = { key, kube, ds: new KubeDatastore(kube, this.log) };
      this.current.set(slot, e);
    }
    const ds = e.ds;
    const spares = this.sparesFor(slot, ds);
    if (!spares) {
      return {
        allocate: (r) => ds.allocate(r),
        releaseByHandle: (h) => ds.releaseByHandle(h),
        annotatePod: (p, ips) => ds.annotatePod(p, ips),
        listHandles: (n, p) => ds.listHandles(n, p),
        status: (n) => ds.status(n),
        close: async () => {},
      };
    }
    // One command's datastore: the spare its ADD took (if any) gets the pod's annotation later.
    let taken: Awaited<ReturnType<SpareAddresses['allocate']>>['taken'];
    return {
      allocate: async (r) => {
        const got = await spares.allocate(r, { cacheDir: cfg.cacheDir, network: cfg.name });
        taken = got.taken;
        return got.alloc;
      },
      releaseByHandle: (h) => spares.releaseByHandle(h),
      annotatePod: async (p, ips) => {
        if (taken && spares.annotateLater(taken, p, ips)) return;
        await ds.annotatePod(p, ips);
      },
      listHandles: (n, p) => ds.listHandles(n, p),
      status: (n) => ds.status(n),
      // The connection outlives the command.
      close: async () => {},
    };
  }

  private sparesFor(slot: string, ds: KubeDatastore): SpareAddresses | undefined {
    if (!this.spare || this.spare.count <= 0) return undefined;
    let s = this.spares.get(slot);
    if (s) {
      s.rebind(ds.ipam, ds);
      return s;
    }
    const tag = createHash('sha256').update(slot).digest('hex').slice(0, 12);
    s = new SpareAddresses(
      {
        node: this.spare.node,
        count: this.spare.count,
        journal: `${this.spare.dir}/cni-spares-${tag}.journal`,
        log: this.spare.log.child({ component: 'cni-spares', slot }),
        ...(this.spare.metrics ? { metrics: this.spare.metrics } : {}),
      },
      ds.ipam,
      ds,
    );
    this.spares.set(slot, s);
    return s;
  }

  private retire(kube: MiniKube) {
    const t = setTimeout(() => {
      this.retired.delete(t);
      kube.close();
    }, RETIRE_AFTER_MS);
    t.unref();
    this.retired.add(t);
  }

  close() {
    for (const s of this.spares.values()) s.close();
    for (const t of this.retired) clearTimeout(t);
    this.retired.clear();
    for (const e of this.current.values()) e.kube.close();
    this.current.clear();
  }
}

/** The dataplane's view of the handed descriptors (the sysctl directory as a path through /proc/self/fd). */
function toNamespace(netns: string, h: Handed): HandedNamespace {
  const ns: HandedNamespace = { netns };
  if (h.netnsFd !== undefined) ns.netnsFd = h.netnsFd;
  if (h.netlinkFd !== undefined) ns.netlinkFd = h.netlinkFd;
  if (h.sysctlFd !== undefined) ns.sysctlNetDir = `/proc/self/fd/${h.sysctlFd}`;
  // The dataplane owns (and closes) the namespace and netlink descriptors from here on.
  h.netnsFd = undefined;
  h.netlinkFd = undefined;
  return ns;
}

/** Closes the handed descriptors nobody took over. */
function closeHanded(h: Handed): void {
  for (const k of ['netnsFd', 'netlinkFd', 'sysctlFd'] as const) {
    const fd = h[k];
    if (fd === undefined) continue;
    h[k] = undefined;
    try {
      closeFd(fd);
    } catch {
      // Already closed: nothing to release.
    }
  }
}

/** Whether something accepts connections on the socket (an earlier agent's file does not). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Serves the CNI socket until close(). A stale socket file from an earlier agent is replaced. */
export async function startCniServer(o: CniServerOptions): Promise<CniServer> {
  const log = o.log.child({ component: 'cni-server' });
  const run = o.run ?? runPlugin;
  const datastores = new WarmDatastores(log as unknown as Log, o.pathMap ?? [], {
    node: o.nodeName,
    count: o.spareAddresses ?? 0,
    dir: dirname(o.path),
    log,
    ...(o.metrics?.cniSpares && o.metrics.cniSpareAllocations && o.metrics.cniSparePending
      ? {
          metrics: {
            cniSpares: o.metrics.cniSpares,
            cniSpareAllocations: o.metrics.cniSpareAllocations,
            cniSparePending: o.metrics.cniSparePending,
          },
        }
      : {}),
  });
  mkdirSync(dirname(o.path), { recursive: true, mode: 0o755 });
  if (existsSync(o.path)) {
    if (!lstatSync(o.path).isSocket()) {
      throw new Error(`--cni-socket ${o.path} exists and is not a socket`);
    }
    if (await answers(o.path)) throw new Error(`--cni-socket ${o.path} is served by another process`);
    unlinkSync(o.path);
  }
  const can = { ...agentLimits(), ...o.can };
  if (!can.setns) {
    log.info(
      { path: o.path },
      'no CAP_SYS_ADMIN: CNI commands are served when the shim hands over the pod namespace, else left to the standalone plugin',
    );
  } else if (!can.sysctls) {
    log.info(
      { path: o.path },
      '/proc/sys is read-only here: ADD is served when the shim hands over /proc/sys/net, else left to the standalone plugin',
    );
  }
  const sockets = new Set<Socket>();
  const inProgress = new Set<Promise<void>>();

  const serve = async (c: Socket, buf: Buffer, connectedAt: bigint, handed: Handed) => {
    const decoded = decodeShimRequest(buf);
    if (!decoded.ok) {
      log.warn({ error: decoded.error }, 'CNI shim request refused');
      o.metrics?.cniDeclined.inc({ reason: 'bad-request' });
      c.end(encodeShimDecline(decoded.error));
      return;
    }
    const req = decoded.request;
    const why = declineReason(req, can, handed);
    if (why) {
      log.warn({ reason: why, command: req.env.CNI_COMMAND }, 'CNI request left to the standalone plugin');
      o.metrics?.cniDeclined.inc({
        reason: why.startsWith('command')
          ? 'command'
          : why.includes('sysctls')
            ? 'sysctl-readonly'
            : why.includes('CAP_SYS_ADMIN')
              ? 'no-cap-sys-admin'
              : why.includes('pid')
                ? 'pid-namespace'
                : 'netns',
      });
      c.end(encodeShimDecline(why));
      return;
    }
    c.write(SHIM_ACCEPTED);
    const command = req.env.CNI_COMMAND!;
    const t0 = process.hrtime.bigint();
    const out = await run({ PODNET_NODENAME: o.nodeName, ...req.env }, req.stdin, {
      logger: async () => log as unknown as Log,
      datastore: async (cfg) => datastores.get(cfg),
      ...(handed.netnsFd !== undefined || handed.sysctlFd !== undefined
        ? { dataplane: async () => new NetlinkDataplane(toNamespace(req.env.CNI_NETNS ?? '', handed)) }
        : {}),
      caller: { runtime: req.runtime, pid: req.pid, pidStart: req.pidStart },
    });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    o.metrics?.cniDuration.observe(
      { command, result: out.exitCode === 0 ? 'success' : 'error', via: 'agent' },
      seconds,
    );
    log.debug(
      {
        command,
        containerId: req.env.CNI_CONTAINERID,
        exitCode: out.exitCode,
        receiveMs: Number(t0 - connectedAt) / 1e6,
        runMs: seconds * 1000,
      },
      'CNI command answered',
    );
    c.end(encodeShimAnswer(out.exitCode, out.stdout));
  };

  // Half-open: the shim shuts its side down after the request and reads the answer afterwards.
  // Paused: the preamble and its descriptors are read with recvmsg (recvFds) before Node reads.
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (c) => {
    const connectedAt = process.hrtime.bigint();
    sockets.add(c);
    const chunks: Buffer[] = [];
    const handed: Handed = {};
    let size = 0;
    c.setTimeout(REQUEST_TIMEOUT_MS, () => c.destroy());
    c.on('data', (b: Buffer) => {
      size += b.length;
      if (size > MAX_REQUEST) {
        log.warn({ bytes: size }, 'CNI shim request too large: dropped');
        c.destroy();
        return;
      }
      chunks.push(b);
    });
    c.on('end', () => {
      // The answer may take as long as the command does; the shim bounds its own wait.
      c.setTimeout(0);
      const p = serve(c, Buffer.concat(chunks), connectedAt, handed)
        .catch((err: unknown) => {
          log.error({ err }, 'CNI request failed in the agent');
          c.destroy();
        })
        .finally(() => {
          closeHanded(handed);
          inProgress.delete(p);
        });
      inProgress.add(p);
    });
    c.on('error', () => c.destroy());
    c.on('close', () => sockets.delete(c));
    const fd = (c as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (fd === undefined || fd < 0) {
      c.resume();
      return;
    }
    recvFds(fd, { maxBytes: FDS_MAGIC.length + 1, maxFds: 3, timeoutMs: REQUEST_TIMEOUT_MS }).then(
      (got) => {
        if (
          got.data.length === FDS_MAGIC.length + 1 &&
          got.data.subarray(0, FDS_MAGIC.length).equals(FDS_MAGIC)
        ) {
          const mask = got.data[FDS_MAGIC.length]!;
          const fds = [...got.fds];
          if (mask & FD_NETNS) handed.netnsFd = fds.shift();
          if (mask & FD_NETLINK) handed.netlinkFd = fds.shift();
          if (mask & FD_SYSCTL) handed.sysctlFd = fds.shift();
          for (const extra of fds) closeFd(extra);
        } else {
          // A shim without the preamble: these bytes begin its request.
          for (const extra of got.fds) closeFd(extra);
          size += got.data.length;
          chunks.push(got.data);
        }
        c.resume();
      },
      (err: unknown) => {
        log.warn({ err }, 'CNI shim connection dropped before its request');
        c.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Only root (the runtime that runs the shim) connects.
  chmodSync(o.path, 0o600);
  log.info({ path: o.path }, 'serving the CNI socket');
  return {
    path: o.path,
    spareAddresses: () => [...datastores.spares.values()],
    close: async () => {
      // No new requests; the ones in progress finish (a shim whose connection drops mid-command
      // runs the standalone plugin, which would redo the command beside this one).
      const closed = new Promise<void>((r) => server.close(() => r()));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(inProgress),
        new Promise((r) => {
          timer = setTimeout(r, DRAIN_MS);
        }),
      ]);
      clearTimeout(timer);
      for (const s of sockets) s.destroy();
      await closed;
      datastores.close();
      if (existsSync(o.path) && lstatSync(o.path).isSocket()) unlinkSync(o.path);
    },
  };
}
