// A TCP port inside a test namespace that reaches a TCP server in the caller's namespace, with no
// route or link in either: a listener in the namespace pipes each connection to a unix socket
// (the filesystem is shared across network namespaces), which the caller pipes to the target.
// Used to give processes in node namespaces the API server that runs in the test process.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Netns } from './index.js';

let n = 0;

const IN_NS = `
const net = require('node:net');
const [sock, port] = process.argv.slice(1);
const srv = net.createServer((c) => {
  const up = net.connect(sock);
  c.pipe(up); up.pipe(c);
  const close = () => { c.destroy(); up.destroy(); };
  c.on('error', close); up.on('error', close); c.on('close', close); up.on('close', close);
});
srv.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\\n'));
process.on('SIGTERM', () => process.exit(0));
`;

export interface Tunnel {
  /** The URL host:port to use inside the namespace. */
  address: string;
  close(): Promise<void>;
}

/** Makes `127.0.0.1:listenPort` inside `ns` reach `target` (host, port) in the caller's namespace. */
export async function tunnelIntoNetns(
  ns: Netns,
  listenPort: number,
  target: { host: string; port: number },
): Promise<Tunnel> {
  n += 1;
  const sock = join(tmpdir(), `podnet-tunnel-${process.pid}-${n}.sock`);
  if (existsSync(sock)) unlinkSync(sock);
  const open = new Set<{ destroy(): void }>();
  const server: Server = createServer((c) => {
    const up = connect(target.port, target.host);
    open.add(c);
    open.add(up);
    c.on('close', () => open.delete(c));
    up.on('close', () => open.delete(up));
    c.pipe(up);
    up.pipe(c);
    const close = () => {
      c.destroy();
      up.destroy();
    };
    c.on('error', close);
    up.on('error', close);
    c.on('close', close);
    up.on('close', close);
  });
  await new Promise<void>((r) => server.listen(sock, () => r()));
  const child: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', ns.name, process.execPath, '-e', IN_NS, sock, String(listenPort)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let err = '';
  child.stderr?.on('data', (d) => {
    err += String(d);
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`tunnel into ${ns.name} did not start in 10 s: ${err}`)),
      10_000,
    );
    child.stdout?.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tunnel into ${ns.name} exited ${code}: ${err}`));
    });
  });
  return {
    address: `127.0.0.1:${listenPort}`,
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        await exited;
      }
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      if (existsSync(sock)) unlinkSync(sock);
    },
  };
}
