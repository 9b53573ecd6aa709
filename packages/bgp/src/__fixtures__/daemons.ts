// Test helpers to run BIRD 2 and FRR's bgpd inside test namespaces, as processes tracked by pid.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec, type Netns, type ProcessGroup, run, waitFor } from '@podnet/testkit';

export interface Bird {
  dir: string;
  sock: string;
  pid: number;
  cmd(...args: string[]): Promise<string>;
  route(prefix: string): Promise<string>;
}

/** Starts `bird -f` in `ns` with `conf`; resolves once birdc answers. */
export async function startBird(ns: Netns, group: ProcessGroup, conf: string): Promise<Bird> {
  const dir = mkdtempSync(join(tmpdir(), 'pnt-bird-'));
  const sock = join(dir, 'bird.ctl');
  writeFileSync(join(dir, 'bird.conf'), conf);
  const child = group.add(ns.spawn('bird', ['-f', '-c', join(dir, 'bird.conf'), '-s', sock]));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const cmd = (...args: string[]) => run('birdc', ['-s', sock, ...args], { timeoutMs: 10_000 });
  await waitFor(
    `BIRD to answer on ${sock}`,
    async () => {
      if (child.exitCode !== null) throw new Error(`bird exited ${child.exitCode}: ${stderr}`);
      const r = await exec('birdc', ['-s', sock, 'show', 'status']);
      return r.code === 0 && r.stdout.includes('Daemon is up');
    },
    { timeoutMs: 15_000 },
  );
  // birdc exits 1 for "Network not found": return the text either way.
  const route = async (p: string) =>
    (await exec('birdc', ['-s', sock, 'show', 'route', p, 'all'], { timeoutMs: 10_000 })).stdout;
  return { dir, sock, pid: child.pid!, cmd, route };
}

/** True when BIRD's protocol `name` is Established. */
export async function birdEstablished(b: Bird, name: string): Promise<boolean> {
  const out = await b.cmd('show', 'protocols', name);
  return /Established/.test(out);
}

export interface Frr {
  dir: string;
  pid: number;
  vtysh(cmd: string): Promise<string>;
  json<T = unknown>(cmd: string): Promise<T>;
}

/** Starts FRR's zebra and bgpd in `ns` with `bgpConf`; resolves once vtysh answers. */
export async function startFrr(ns: Netns, group: ProcessGroup, bgpConf: string): Promise<Frr> {
  const dir = mkdtempSync(join(tmpdir(), 'pnt-frr-'));
  writeFileSync(join(dir, 'bgpd.conf'), bgpConf);
  writeFileSync(join(dir, 'zebra.conf'), 'hostname zebra\n');
  writeFileSync(join(dir, 'vtysh.conf'), '');
  // The daemons drop privileges to the frr user: let it use the directory.
  chmodSync(dir, 0o777);
  for (const f of ['bgpd.conf', 'zebra.conf', 'vtysh.conf']) chmodSync(join(dir, f), 0o644);
  const zsock = join(dir, 'zserv.api');
  const common = ['--vty_socket', dir, '-z', zsock];
  const zebra = group.add(
    ns.spawn('/usr/lib/frr/zebra', ['-f', join(dir, 'zebra.conf'), '-i', join(dir, 'zebra.pid'), ...common]),
  );
  let stderr = '';
  zebra.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  await waitFor(
    'zebra socket',
    async () => {
      if (zebra.exitCode !== null) throw new Error(`zebra exited ${zebra.exitCode}: ${stderr}`);
      return (await exec('test', ['-S', zsock])).code === 0;
    },
    { timeoutMs: 15_000 },
  );
  const bgpd = group.add(
    ns.spawn('/usr/lib/frr/bgpd', ['-f', join(dir, 'bgpd.conf'), '-i', join(dir, 'bgpd.pid'), ...common]),
  );
  bgpd.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const vtysh = (cmd: string) =>
    run('vtysh', ['--vty_socket', dir, '-d', 'bgpd', '-c', cmd], { timeoutMs: 10_000 });
  await waitFor(
    'bgpd to answer vtysh',
    async () => {
      if (bgpd.exitCode !== null) throw new Error(`bgpd exited ${bgpd.exitCode}: ${stderr}`);
      const r = await exec('vtysh', ['--vty_socket', dir, '-d', 'bgpd', '-c', 'show bgp summary json']);
      return r.code === 0;
    },
    { timeoutMs: 20_000 },
  );
  return { dir, pid: bgpd.pid!, vtysh, json: async (c) => JSON.parse(await vtysh(c)) };
}

/** `waitFor` with a default generous enough for a loaded CI machine (20 s). */
export function wait<T>(
  what: string,
  check: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
) {
  return waitFor(what, check, { timeoutMs: 20_000, ...opts });
}
