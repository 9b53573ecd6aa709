// The podnet-apiserver command, run as a process from the built dist/ (turbo builds before tests).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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

  it('authenticates the users of --token-auth-file and counts their requests', async () => {
    const tokens = join(dir, 'tokens.csv');
    await writeFile(tokens, 'node-token,node-1,uid-1\n');
    const p = run(['--port', '0', '--no-tls', '--token', 'admin-token', '--token-auth-file', tokens]);
    await until('the listening line', () => /listening on http:\/\/127\.0\.0\.1:\d+/.test(p.out()));
    const url = /listening on (http:\/\/\S+)/.exec(p.out())![1]!;
    const get = (path: string, token: string) =>
      fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    expect((await get('/api/v1/nodes', 'node-token')).status).toBe(200);
    const counts = (await (await get('/debug/podnet/requests', 'admin-token')).json()) as {
      users: Record<string, { requests: number }>;
    };
    expect(counts.users['node-1']?.requests).toBe(1);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  });

  it('rejects a malformed --token-auth-file naming the line', async () => {
    const tokens = join(dir, 'bad-tokens.csv');
    await writeFile(tokens, 'just-a-token\n');
    const p = run(['--port', '0', '--token-auth-file', tokens]);
    expect(await p.exited).toBe(2);
    expect(p.err()).toContain(`--token-auth-file ${tokens}: token file line 1`);
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
