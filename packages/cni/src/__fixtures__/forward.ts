// Test-only: makes a TCP port of this (root) namespace reachable inside a test namespace, with no
// link or route in either: a unix socket (the filesystem is shared across network namespaces) is
// served here and piped to the target; a small process inside the namespace listens on
// 127.0.0.1:<port> there and pipes each connection to that socket. Both stop in close().
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Netns } from '@podnet/testkit';

const INNER = `
const net = require('node:net');
const [sock, port, host] = process.argv.slice(1);
const srv = net.createServer((c) => {
  const up = net.connect(sock);
  c.pipe(up); up.pipe(c);
  const end = () => { c.destroy(); up.destroy(); };
  c.on('error', end); up.on('error', end); c.on('close', end); up.on('close', end);
});
srv.listen(Number(port), host, () => process.stdout.write('ready\\n'));
process.on('SIGTERM', () => process.exit(0));
setInterval(() => { if (process.ppid === 1) process.exit(0); }, 1000);
`;

let n = 0;

export interface Forward {
  /** Cuts every current connection and refuses new ones until resume() (an API outage). */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

/**
 * Forwards `targetHost:port` (reached from this namespace: loopback or a remote cluster) to
 * `listenHost:port` inside `ns` (any 127.x address is local on a namespace's lo).
 */
export async function forwardIntoNetns(
  ns: Netns,
  port: number,
  targetHost = '127.0.0.1',
  listenHost = '127.0.0.1',
): Promise<Forward> {
  n += 1;
  const sock = join(tmpdir(), `pnt-fwd-${process.pid}-${n}.sock`);
  if (existsSync(sock)) unlinkSync(sock);
  let paused = false;
  const live = new Set<Socket>();
  const server: Server = createServer((c) => {
    if (paused) {
      c.destroy();
      return;
    }
    const up = connect(port, targetHost);
    live.add(c);
    live.add(up);
    c.pipe(up);
    up.pipe(c);
    const end = () => {
      c.destroy();
      up.destroy();
      live.delete(c);
      live.delete(up);
    };
    c.on('error', end);
    up.on('error', end);
    c.on('close', end);
    up.on('close', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(sock, () => resolve());
  });
  const child: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', ns.name, process.execPath, '-e', INNER, sock, String(port), listenHost],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`forwarder in ${ns.name} did not start within 10 s`)),
      10_000,
    );
    child.stdout?.on('data', (b: Buffer) => {
      if (b.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`forwarder in ${ns.name} exited with ${code}`));
    });
  });
  return {
    pause() {
      paused = true;
      for (const s of live) s.destroy();
      live.clear();
    },
    resume() {
      paused = false;
    },
    async close() {
      if (child.pid && child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      }
      for (const s of live) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      if (existsSync(sock)) unlinkSync(sock);
    },
  };
}
