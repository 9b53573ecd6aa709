// BIRD 2 and FRR's bfdd as BFD neighbours inside test namespaces, as processes tracked by pid.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec, type Netns, type ProcessGroup, run, waitFor } from '@podnet/testkit';

export interface Daemon {
  pid: number;
  kill(): void;
  /** The neighbour's view of its session to `peer`: state and negotiated timers. */
  session(peer: string): Promise<{ state: string; txMs?: number; detectMs?: number } | undefined>;
}

/** BIRD 2 with a `bfd` protocol towards `neighbor`. */
export async function startBirdBfd(
  ns: Netns,
  group: ProcessGroup,
  opts: { neighbor: string; minTx: number; minRx: number; multiplier: number; extra?: string[] },
): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'pnt-bird-bfd-'));
  const sock = join(dir, 'bird.ctl');
  const conf = [
    'router id 10.255.0.2;',
    'protocol device {}',
    'protocol bfd {',
    `  interface "*" { min rx interval ${opts.minRx} ms; min tx interval ${opts.minTx} ms; multiplier ${opts.multiplier}; };`,
    ...[opts.neighbor, ...(opts.extra ?? [])].map((n) => `  neighbor ${n};`),
    '}',
    '',
  ].join('\n');
  writeFileSync(join(dir, 'bird.conf'), conf);
  const child = group.add(ns.spawn('bird', ['-f', '-c', join(dir, 'bird.conf'), '-s', sock]));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  await waitFor(
    'BIRD to answer',
    async () => {
      if (child.exitCode !== null) throw new Error(`bird exited ${child.exitCode}: ${stderr}`);
      const r = await exec('birdc', ['-s', sock, 'show', 'status']);
      return r.code === 0 && r.stdout.includes('Daemon is up');
    },
    { timeoutMs: 15_000 },
  );
  return {
    pid: child.pid!,
    kill: () => child.kill('SIGKILL'),
    async session(peer) {
      const out = await run('birdc', ['-s', sock, 'show', 'bfd', 'sessions']);
      // IP address  Interface  State  Since  Interval  Timeout
      for (const line of out.split('\n')) {
        const f = line.trim().split(/\s+/);
        if (f[0] !== peer) continue;
        const n = f.length;
        return { state: f[2]!, txMs: Number(f[n - 2]) * 1000, detectMs: Number(f[n - 1]) * 1000 };
      }
      return undefined;
    },
  };
}

/** FRR's zebra and bfdd with one single-hop peer. */
export async function startFrrBfd(
  ns: Netns,
  group: ProcessGroup,
  opts: { neighbor: string; local: string; minTx: number; minRx: number; multiplier: number },
): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'pnt-frr-bfd-'));
  const conf = [
    'bfd',
    ` peer ${opts.neighbor} local-address ${opts.local}`,
    `  receive-interval ${opts.minRx}`,
    `  transmit-interval ${opts.minTx}`,
    `  detect-multiplier ${opts.multiplier}`,
    ' !',
    '!',
    '',
  ].join('\n');
  writeFileSync(join(dir, 'bfdd.conf'), conf);
  writeFileSync(join(dir, 'zebra.conf'), 'hostname zebra\n');
  writeFileSync(join(dir, 'vtysh.conf'), '');
  chmodSync(dir, 0o777);
  for (const f of ['bfdd.conf', 'zebra.conf', 'vtysh.conf']) chmodSync(join(dir, f), 0o644);
  const zsock = join(dir, 'zserv.api');
  const common = ['--vty_socket', dir, '-z', zsock];
  let stderr = '';
  const zebra = group.add(
    ns.spawn('/usr/lib/frr/zebra', ['-f', join(dir, 'zebra.conf'), '-i', join(dir, 'zebra.pid'), ...common]),
  );
  zebra.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  await waitFor('zebra socket', async () => (await exec('test', ['-S', zsock])).code === 0, {
    timeoutMs: 15_000,
  });
  const bfdd = group.add(
    ns.spawn('/usr/lib/frr/bfdd', [
      '-f',
      join(dir, 'bfdd.conf'),
      '-i',
      join(dir, 'bfdd.pid'),
      '--bfdctl',
      join(dir, 'bfdd.sock'),
      ...common,
    ]),
  );
  bfdd.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const vtysh = (cmd: string) =>
    run('vtysh', ['--vty_socket', dir, '-d', 'bfdd', '-c', cmd], { timeoutMs: 10_000 });
  await waitFor(
    'bfdd to answer vtysh',
    async () => {
      if (bfdd.exitCode !== null) throw new Error(`bfdd exited ${bfdd.exitCode}: ${stderr}`);
      return (
        (await exec('vtysh', ['--vty_socket', dir, '-d', 'bfdd', '-c', 'show bfd peers json'])).code === 0
      );
    },
    { timeoutMs: 20_000 },
  );
  return {
    pid: bfdd.pid!,
    kill: () => {
      bfdd.kill('SIGKILL');
    },
    async session(peer) {
      const all = JSON.parse(await vtysh('show bfd peers json')) as {
        peer: string;
        status: string;
        'transmit-interval'?: number;
        'remote-detect-multiplier'?: number;
        'receive-interval'?: number;
        'remote-transmit-interval'?: number;
      }[];
      const p = all.find((x) => x.peer === peer);
      if (!p) return undefined;
      return {
        state: p.status,
        ...(p['transmit-interval'] !== undefined ? { txMs: p['transmit-interval'] } : {}),
      };
    },
  };
}
