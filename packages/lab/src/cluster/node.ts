// A node's container runtime in the real-cluster mode: a private mount namespace (per-node
// directories bound over the host paths that kubelet, containerd and CNI plugins share), containerd
// in it with its own root, state and socket, and the lab's images imported. Also the teardown of
// containers, which live in the pods' network namespaces rather than the lab's.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { LabError, LabErrorCode } from '../errors.js';
import { exec, run, sleep, tail, waitUntil } from '../sh.js';
import { isOurs, type ProcessRecord } from '../state.js';
import { PAUSE_IMAGE } from './images.js';

/**
 * argv run in a lab namespace with nsenter (and in a mount namespace when `mntPid` is given):
 * daemons that need the host's cgroup and sysfs mounts, which `ip netns exec` replaces.
 */
export const inNet = (ns: string, argv: string[], mntPid?: number) => [
  'nsenter',
  `--net=/var/run/netns/${ns}`,
  ...(mntPid ? [`--mount=/proc/${mntPid}/ns/mnt`] : []),
  ...argv,
];

/** Per-node directories (under `dir`) and the host paths they are bound over in the node's mount namespace. */
export function nodeMounts(dir: string): [string, string][] {
  return [
    [join(dir, 'cni-net.d'), '/etc/cni/net.d'],
    [join(dir, 'cni-bin'), '/opt/cni/bin'],
    [join(dir, 'var-lib-cni'), '/var/lib/cni'],
    [join(dir, 'kubelet'), '/var/lib/kubelet'],
    [join(dir, 'log-pods'), '/var/log/pods'],
    [join(dir, 'log-containers'), '/var/log/containers'],
    [join(dir, 'run-containerd'), '/run/containerd'],
    [join(dir, 'run-netns'), '/run/netns'],
    // The agent's and the CNI plugin's /var/run/podnet (timing records, the CNI socket).
    [join(dir, 'run-podnet'), '/run/podnet'],
  ];
}

export interface NodeRuntimeOptions {
  name: string;
  /** The node's network namespace. */
  ns: string;
  dir: string;
  images: { ref: string; tar: string }[];
  /** Starts a process detached and records it for teardown. */
  spawn: (service: string, argv: string[]) => ProcessRecord;
}

/**
 * Polls `check` until truthy (bounded, like sh.ts waitUntil), but fails at once, with the log's
 * tail, when one of `procs` has exited: a daemon that dies on a bad flag is reported in a second.
 */
export async function waitAlive<T>(
  what: string,
  procs: readonly ProcessRecord[],
  check: () => T | Promise<T>,
  opts: { timeoutMs: number; intervalMs?: number },
): Promise<NonNullable<T>> {
  return waitUntil(what, check, {
    ...opts,
    alive: () => {
      for (const p of procs) {
        if (!isOurs(p))
          throw new LabError(
            LabErrorCode.command,
            `${p.service} exited while waiting for ${what}: ${p.argv.join(' ')}\n${tail(p.log)}`,
          );
      }
    },
  });
}

/** The mount namespace holder, then containerd in it, then the images; returns the holder and socket. */
export async function startContainerd(o: NodeRuntimeOptions): Promise<{ holderPid: number; sock: string }> {
  const mounts = nodeMounts(o.dir);
  for (const [src, target] of mounts) {
    mkdirSync(src, { recursive: true });
    // The mount point must exist on the host's file system (an empty directory when it did not).
    mkdirSync(target, { recursive: true });
  }
  // The loopback plugin containerd runs for every pod, and portmap (podnet's conflist chains it).
  for (const p of ['loopback', 'portmap']) copyFileSync(`/usr/lib/cni/${p}`, join(o.dir, 'cni-bin', p));
  const ready = join(o.dir, 'mounts.ready');
  rmSync(ready, { force: true });
  const script = [
    'set -e',
    ...mounts.map(([src, target]) => `mount --bind '${src}' '${target}'`),
    `touch '${ready}'`,
    'exec sleep infinity',
  ].join('; ');
  const holder = o.spawn(
    `${o.name}-mounts`,
    inNet(o.ns, ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script]),
  );
  await waitAlive(`${o.name}'s mount namespace`, [holder], () => existsSync(ready), {
    timeoutMs: 10_000,
    intervalMs: 100,
  });
  const sock = join(o.dir, 'containerd.sock');
  const cfg = join(o.dir, 'containerd.toml');
  writeFileSync(cfg, containerdConfig(o.dir, sock));
  const containerd = o.spawn(
    `${o.name}-containerd`,
    inNet(o.ns, ['containerd', '--config', cfg], holder.pid),
  );
  await waitAlive(`${o.name}'s containerd socket ${sock}`, [containerd], () => existsSync(sock), {
    timeoutMs: 30_000,
    intervalMs: 100,
  });
  for (const img of o.images)
    await run('ctr', ['--address', sock, '-n', 'k8s.io', 'images', 'import', img.tar], {
      timeoutMs: 120_000,
    });
  return { holderPid: holder.pid, sock };
}

/**
 * SIGKILLs the descendants of every process in the namespaces named `prefix…`: containerd's shims
 * run in the node's namespace, the containers they started in the pods' (invisible to
 * `ip netns pids`). Of the namespaces' own processes only the shims go here (the rest, which the lab
 * started itself, are left to its teardown). Returns the count.
 */
export async function killContainers(prefix: string): Promise<number> {
  const roots = new Set<number>();
  if (existsSync('/var/run/netns')) {
    for (const n of readdirSync('/var/run/netns')) {
      if (!n.startsWith(prefix)) continue;
      const r = await exec('ip', ['netns', 'pids', n]);
      for (const pid of r.stdout.split(/\s+/).filter(Boolean)) roots.add(Number(pid));
    }
  }
  if (roots.size === 0) return 0;
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(e)]);
    } catch {}
  }
  const victims = new Set<number>();
  const walk = (pid: number) => {
    for (const c of children.get(pid) ?? []) {
      if (roots.has(c) || victims.has(c)) continue;
      victims.add(c);
      walk(c);
    }
  };
  for (const r of roots) walk(r);
  // containerd's shims live in the node's namespace but outlive containerd (they are reparented to
  // init), so they go too: a shim left behind keeps running after the lab is gone.
  for (const r of roots) {
    try {
      if (readFileSync(`/proc/${r}/cmdline`, 'utf8').split('\0')[0]!.endsWith('containerd-shim-runc-v2'))
        victims.add(r);
    } catch {}
  }
  // The containers' own cgroups (cgroupfs: a directory named by the container's 64-hex id), to
  // remove once they are empty; nothing else is touched.
  const cgroups = new Set<string>();
  for (const pid of victims) {
    try {
      for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
        const [, controllers, path] = line.split(':');
        if (!path || !/\/[0-9a-f]{64}$/.test(path)) continue;
        // v1: one hierarchy per controller ("cpu,cpuacct" is mounted as cpu and cpuacct too).
        for (const c of controllers ? controllers.split(',') : ['unified'])
          cgroups.add(join('/sys/fs/cgroup', c.replace(/^name=/, ''), path));
      }
    } catch {}
  }
  for (const pid of victims) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  const deadline = Date.now() + 5_000;
  while ([...victims].some((p) => existsSync(`/proc/${p}`)) && Date.now() < deadline) await sleep(50);
  for (const dir of cgroups) {
    try {
      rmdirSync(dir);
      // containerd's namespace level (/k8s.io) too once empty (rmdir fails while in use).
      if (dirname(dir).endsWith('/k8s.io')) rmdirSync(dirname(dir));
    } catch {}
  }
  return victims.size;
}

export function containerdConfig(dir: string, sock: string): string {
  return `version = 2
root = "${join(dir, 'containerd', 'root')}"
state = "${join(dir, 'containerd', 'state')}"

[grpc]
  address = "${sock}"

[plugins."io.containerd.internal.v1.opt"]
  path = "${join(dir, 'containerd', 'opt')}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # This machine withholds CAP_SYS_RESOURCE even from root: without this runc fails every sandbox
  # ("can't get final child's PID from pipe: EOF") raising oom_score_adj above the runtime's own.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
`;
}
