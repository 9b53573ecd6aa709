// Test-only helpers shared by every package's network tests and by test/ scenarios.
//
// Safety rules (docs/testing.md) are built in:
// - every namespace is named `pnt-<tag>-<pid>-<n>`, so a test only ever deletes namespaces it (or a
//   dead earlier run) created; `cleanupStale()` removes those whose creating pid is gone;
// - commands run inside a namespace with `ip netns exec`, never in the caller's namespace;
// - processes are tracked by pid and ended by pid, never by name;
// - every wait is bounded and fails with a message naming what did not happen.
import { type ChildProcess, execFile, type SpawnOptions, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

export const NETNS_PREFIX = 'pnt-';
let counter = 0;

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a command and returns its output and exit status; never throws for a non-zero exit. */
export async function exec(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}) {
  return new Promise<ExecResult>((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
          reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}`));
          return;
        }
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ stdout: String(stdout), stderr: String(stderr), code });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs a command and returns stdout; throws with stderr when it fails. */
export async function run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}) {
  const r = await exec(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

export class Netns {
  readonly path: string;
  constructor(readonly name: string) {
    this.path = `/var/run/netns/${name}`;
  }

  /** Runs a command inside this namespace; never throws for a non-zero exit. */
  exec(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}) {
    return exec('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  /** Runs a command inside this namespace and returns stdout; throws when it fails. */
  run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}) {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  /** `ip <args>` inside this namespace (`ip -n NAME ...`). */
  ip(...args: string[]) {
    return run('ip', ['-n', this.name, ...args]);
  }

  /** `ip -json <args>` inside this namespace, parsed. */
  async ipJson<T = unknown>(...args: string[]): Promise<T> {
    const out = await run('ip', ['-n', this.name, '-json', ...args]);
    return (out.trim() ? JSON.parse(out) : []) as T;
  }

  /** Writes a sysctl inside this namespace. */
  sysctl(key: string, value: string | number) {
    return this.run('sysctl', ['-qw', `${key}=${value}`]);
  }

  /** Starts a long-running process inside this namespace. Track it with a ProcessGroup. */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: 'pipe', ...opts });
  }
}

function uniqueName(tag: string): string {
  const clean = tag.replace(/[^a-z0-9]/gi, '').slice(0, 12) || 'x';
  counter += 1;
  return `${NETNS_PREFIX}${clean}-${process.pid}-${counter}`;
}

/** Creates a fresh namespace with loopback up. */
export async function createNetns(tag: string): Promise<Netns> {
  const ns = new Netns(uniqueName(tag));
  await run('ip', ['netns', 'add', ns.name]);
  await ns.ip('link', 'set', 'lo', 'up');
  return ns;
}

/** Deletes a namespace this process created; a missing namespace is not an error. */
export async function deleteNetns(ns: Netns | string): Promise<void> {
  const name = typeof ns === 'string' ? ns : ns.name;
  if (!name.startsWith(NETNS_PREFIX))
    throw new Error(`refusing to delete namespace ${name}: not a test namespace`);
  if (!existsSync(`/var/run/netns/${name}`)) return;
  await exec('ip', ['netns', 'del', name]);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes test namespaces left behind by runs whose process is gone. Call in beforeAll. */
export async function cleanupStale(): Promise<string[]> {
  if (!existsSync('/var/run/netns')) return [];
  const removed: string[] = [];
  for (const name of readdirSync('/var/run/netns')) {
    const m = /^pnt-[a-z0-9]*-(\d+)-\d+$/i.exec(name);
    if (!m) continue;
    if (pidAlive(Number(m[1]))) continue;
    await exec('ip', ['netns', 'del', name]);
    removed.push(name);
  }
  return removed;
}

/** Creates a veth pair with one end in each namespace (both ends up). */
export async function vethPair(a: Netns, aName: string, b: Netns, bName: string): Promise<void> {
  await a.ip('link', 'add', aName, 'type', 'veth', 'peer', 'name', bName, 'netns', b.name);
  await a.ip('link', 'set', aName, 'up');
  await b.ip('link', 'set', bName, 'up');
}

/**
 * A set of namespaces created by one test file, removed together in teardown.
 * `const lab = new NetnsSet(); beforeAll(() => cleanupStale()); afterAll(() => lab.destroy());`
 */
export class NetnsSet {
  private readonly all: Netns[] = [];

  async create(tag: string): Promise<Netns> {
    const ns = await createNetns(tag);
    this.all.push(ns);
    return ns;
  }

  async destroy(): Promise<void> {
    for (const ns of this.all.splice(0)) await deleteNetns(ns);
  }
}

/** Processes started by a test, each ended by its own pid (SIGTERM, then SIGKILL). */
export class ProcessGroup {
  private readonly children = new Set<ChildProcess>();

  add(child: ChildProcess): ChildProcess {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  async stop(child: ChildProcess, graceMs = 3000): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  async stopAll(graceMs = 3000): Promise<void> {
    await Promise.all([...this.children].map((c) => this.stop(c, graceMs)));
  }
}

/** Polls `check` until it returns a truthy value, or fails naming `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export { type TestCluster, testCluster } from './cluster.js';
export { type Tunnel, tunnelIntoNetns } from './tunnel.js';
