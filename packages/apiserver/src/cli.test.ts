// The podnet-apiserver command, run as a process from the built dist/ (turbo builds before tests).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
let dir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  if (!existsSync(cli))
    throw new Error(
      `${cli} is missing: build the package first (npx turbo run build --filter=@podnet/apiserver)`,
    );
  dir = await mkdtemp(join(tmpdir(), 'podnet-apiserver-cli-'));
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

function run(args: string[]) {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => {
    stdout += c;
  });
  child.stderr.on('data', (c) => {
    stderr += c;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, out: () => stdout, err: () => stderr };
}

async function until(what: string, check: () => boolean, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('podnet-apiserver', () => {
  it('prints where it listens, serves with the kubeconfig it wrote, and stops on SIGTERM keeping its data', async () => {
    const kubeconfig = join(dir, 'kubeconfig');
    const data = join(dir, 'data.json');
    const p = run(['--port', '0', '--data', data, '--kubeconfig', kubeconfig, '--log-level', 'warn']);
    // The two lines are two writes: the pipe may hand them over in two reads.
    await until('the listening and kubeconfig lines', () =>
      /listening on https:\/\/127\.0\.0\.1:\d+[\s\S]*kubeconfig written/.test(p.out()),
    );
    expect(p.out()).toContain(`kubeconfig written to ${kubeconfig}`);
    const kc = new KubeConfig();
    kc.loadFromString(await readFile(kubeconfig, 'utf8'));
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNode({ body: { metadata: { name: 'cli-node' } } });
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(p.out()).toContain('SIGTERM, stopping');
    const saved = JSON.parse(await readFile(data, 'utf8')) as {
      objects: { obj: { metadata: { name: string } } }[];
    };
    expect(saved.objects.map((o) => o.obj.metadata.name)).toContain('cli-node');
  });

  it.each([
    [['--port', 'http'], '--port: invalid port "http"'],
    [['--bogus'], "Unknown option '--bogus'"],
    [['--log-level', 'loud'], '--log-level: invalid level "loud"'],
  ])('rejects %j with exit status 2 and a message naming the flag', async (args, message) => {
    const p = run(args);
    expect(await p.exited).toBe(2);
    expect(p.err()).toContain(message);
    expect(p.err()).toContain('usage: podnet-apiserver');
  });
});
