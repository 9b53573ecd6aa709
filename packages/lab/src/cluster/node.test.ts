// A real-cluster node's runtime without Kubernetes: containerd in a fresh network namespace and a
// private mount namespace, the lab's pause and busybox images (docker archives made without Docker)
// imported and run, and the teardown of containers. Namespaces use a per-run prefix (pnt-c<pid>-).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupStaleLabs } from '../runner.js';
import { exec, run, sleep } from '../sh.js';
import { isOurs, type ProcessRecord, processStartTime } from '../state.js';
import { BUSYBOX_IMAGE, labImages, PAUSE_IMAGE } from './images.js';
import { inNet, killContainers, startContainerd } from './node.js';

const repoRoot = resolve(import.meta.dirname, '..', '..', '..', '..');
const prefix = `pnt-c${process.pid}-`;
const ns = `${prefix}node`;
const dir = `/tmp/podnet-cluster-node-test-${process.pid}`;
const procs: ProcessRecord[] = [];
let holderPid = 0;
let sock = '';

function spawnRecorded(service: string, argv: string[]): ProcessRecord {
  const log = join(dir, `${service}.log`);
  const fd = openSync(log, 'a');
  const child = spawn(argv[0] ?? '', argv.slice(1), { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  child.unref();
  const pid = child.pid ?? 0;
  const rec = { service, pid, startTime: processStartTime(pid) ?? '', argv, log };
  procs.push(rec);
  return rec;
}

/** ctr against the node's containerd, inside its network and mount namespaces. */
const ctr = (...args: string[]) =>
  exec('nsenter', inNet(ns, ['ctr', '--address', sock, '-n', 'k8s.io', ...args], holderPid).slice(1));

async function taskState(id: string): Promise<{ pid: number; status: string } | undefined> {
  const r = await ctr('tasks', 'ls');
  for (const line of r.stdout.split('\n')) {
    const [tid, pid, status] = line.trim().split(/\s+/);
    if (tid === id) return { pid: Number(pid), status: status ?? '' };
  }
  return undefined;
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** The pids of containerd shims serving the containerd at `address`. */
function shimsOf(address: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (argv[0]!.endsWith('containerd-shim-runc-v2') && argv.includes(address)) out.push(Number(e));
    } catch {}
  }
  return out;
}

beforeAll(async () => {
  await cleanupStaleLabs(/^pnt-c(\d+)-/);
  mkdirSync(dir, { recursive: true });
  await run('ip', ['netns', 'add', ns]);
  const images = await labImages(repoRoot, join(dir, 'images'));
  ({ holderPid, sock } = await startContainerd({ name: 'node', ns, dir, images, spawn: spawnRecorded }));
}, 120_000);

afterAll(async () => {
  await killContainers(prefix);
  for (const p of procs) {
    try {
      if (isOurs(p)) process.kill(p.pid, 'SIGKILL');
    } catch {}
  }
  await until('the test processes to exit', () => procs.every((p) => !isOurs(p))).catch(() => {});
  await exec('ip', ['netns', 'del', ns]);
  rmSync(dir, { recursive: true, force: true });
  // `ctr run` puts containers under /k8s.io/<id> in every hierarchy: the parent goes when empty
  // (rmdir fails on a cgroup another containerd still uses).
  for (const h of readdirSync('/sys/fs/cgroup')) {
    try {
      rmdirSync(join('/sys/fs/cgroup', h, 'k8s.io'));
    } catch {}
  }
}, 60_000);

describe('a real-cluster node runtime (containerd in private namespaces, local images)', () => {
  it('imports the pause and busybox docker archives into the k8s.io namespace', async () => {
    const r = await ctr('images', 'ls', '-q');
    expect(r.stdout.split('\n')).toEqual(expect.arrayContaining([PAUSE_IMAGE, BUSYBOX_IMAGE]));
  });

  it('runs a busybox container whose applets work', async () => {
    const r = await ctr('run', '--rm', BUSYBOX_IMAGE, 'bb-run', 'sh', '-c', 'echo $((6*7)); ls /bin/httpd');
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual(expect.arrayContaining(['42', '/bin/httpd']));
  }, 60_000);

  it('stops the pause container on SIGTERM', async () => {
    await ctr('run', '-d', PAUSE_IMAGE, 'pause-term');
    await until('pause-term RUNNING', async () => (await taskState('pause-term'))?.status === 'RUNNING');
    await ctr('tasks', 'kill', '--signal', 'SIGTERM', 'pause-term');
    await until('pause-term STOPPED', async () => (await taskState('pause-term'))?.status === 'STOPPED');
    await ctr('tasks', 'delete', 'pause-term');
    await ctr('containers', 'delete', 'pause-term');
  }, 60_000);

  it("keeps the node's /etc/cni/net.d its own: written inside, the file lands in the node's directory", async () => {
    const name = `probe-${process.pid}`;
    const r = await exec('nsenter', [
      `--mount=/proc/${holderPid}/ns/mnt`,
      'sh',
      '-c',
      `echo x > /etc/cni/net.d/${name}`,
    ]);
    expect(r.code).toBe(0);
    expect(existsSync(join(dir, 'cni-net.d', name))).toBe(true);
    expect(existsSync(join('/etc/cni/net.d', name))).toBe(false);
  });

  it('kills the containers on teardown (they are not in the node namespace)', async () => {
    // A 64-hex id, as the CRI gives its containers (and their cgroups).
    const id = createHash('sha256').update(`bb-sleep-${process.pid}`).digest('hex');
    await ctr('run', '-d', BUSYBOX_IMAGE, id, 'sleep', '600');
    await until('bb-sleep RUNNING', async () => (await taskState(id))?.status === 'RUNNING');
    const pid = (await taskState(id))?.pid ?? 0;
    expect(pid).toBeGreaterThan(0);
    const ip = await exec('ip', ['netns', 'pids', ns]);
    expect(ip.stdout.split(/\s+/)).not.toContain(String(pid));
    // Its cgroups (cgroupfs: directories named by the container id) go with it.
    const cgroups = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .flatMap((l) => {
        const [, ctrls, path] = l.split(':');
        return path && /\/[0-9a-f]{64}$/.test(path)
          ? (ctrls ? ctrls.split(',') : ['unified']).map((c) =>
              join('/sys/fs/cgroup', c.replace(/^name=/, ''), path),
            )
          : [];
      })
      .filter((d) => existsSync(d));
    expect(cgroups.length, 'the container has cgroups of its own').toBeGreaterThan(0);
    expect(await killContainers(prefix)).toBeGreaterThan(0);
    await until(`container process ${pid} to be gone`, () => !existsSync(`/proc/${pid}`));
    expect(cgroups.filter((d) => existsSync(d))).toEqual([]);
    // containerd's shim for it (reparented to init, so no descendant of the namespace's processes).
    await until('the shims of this containerd to be gone', () => shimsOf(sock).length === 0);
  }, 60_000);
});
