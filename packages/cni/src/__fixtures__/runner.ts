// Test-only: runs a CNI plugin binary the way a container runtime does (environment + stdin,
// result or error object on stdout), inside a node's namespace, and chains a conflist.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Netns } from '@podnet/testkit';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist');
/** The launcher a runtime runs (Node from the plugin's startup snapshot), as the bench measures it. */
export const PLUGIN = join(DIST, 'podnet-cni');
/** The script form: `node podnet-cni.js` loads the bundle. */
export const SCRIPT = join(DIST, 'podnet-cni.js');
export const BUNDLE = join(DIST, 'podnet-cni-bundle.cjs');

export function requireBuiltPlugin(): void {
  if (!existsSync(PLUGIN) || !existsSync(SCRIPT)) {
    throw new Error(
      `${PLUGIN} is missing: build the package first (npx turbo run build --filter=@podnet/cni)`,
    );
  }
}

export interface Invocation {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
  containerId?: string;
  netns?: string;
  ifname?: string;
  pod?: { namespace: string; name: string };
  env?: Record<string, string>;
}

export interface CniRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is JSON. */
  json: Record<string, unknown> | undefined;
}

/** Runs `cmd` (the podnet plugin by default) inside `node` with the CNI environment. */
export function invoke(node: Netns, inv: Invocation, config: unknown, cmd: string[] = [PLUGIN]) {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: inv.command,
  };
  if (inv.containerId) env.CNI_CONTAINERID = inv.containerId;
  if (inv.netns) env.CNI_NETNS = inv.netns;
  if (inv.ifname ?? (inv.command !== 'VERSION' && inv.command !== 'STATUS' && inv.command !== 'GC')) {
    env.CNI_IFNAME = inv.ifname ?? 'eth0';
  }
  if (inv.pod)
    env.CNI_ARGS = `IgnoreUnknown=1;K8S_POD_NAMESPACE=${inv.pod.namespace};K8S_POD_NAME=${inv.pod.name}`;
  env.CNI_PATH = '/usr/lib/cni';
  Object.assign(env, inv.env ?? {});
  return new Promise<CniRun>((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', node.name, ...cmd], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString();
      let json: Record<string, unknown> | undefined;
      try {
        json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? -1, stdout, stderr: Buffer.concat(err).toString(), json });
    });
    child.stdin.end(JSON.stringify(config));
  });
}

/** Asserts success and returns the run; the error names the plugin's message. */
export function ok(r: CniRun, what: string): CniRun {
  if (r.code !== 0)
    throw new Error(`${what} exited ${r.code}: ${r.stdout.trim()} ${r.stderr.trim().slice(-2000)}`);
  return r;
}
