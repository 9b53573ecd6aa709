// kubectl from the host against the namespace lab: the lab's API server (compose's `apiserver`, in
// its own namespace) serves HTTPS, a node's CNI plugin reaches it with the lab's CA, and the
// kubeconfig the lab writes for the host (hostKubeconfig, through a loopback forward) works with
// Debian's kubectl builds. Beside it, the plain-HTTP server the lab used to run, with the same token:
// kubectl sends no bearer token over http://, so it gets 401. kubectl comes from
// scripts/fetch-tools.sh (node_modules/.cache); a missing build is skipped, saying so.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfig } from './configs.js';
import { cleanupStaleLabs, Lab, type LabConfig } from './runner.js';

const repoRoot = resolve(import.meta.dirname, '..', '..', '..');
const prefix = `pnt-l${process.pid}k-`;

function fetched(dir: string, label: string) {
  const bin = join(repoRoot, 'node_modules/.cache', dir, 'kubectl');
  return {
    label,
    bin: existsSync(bin) ? bin : undefined,
    missing: `${bin} is missing: run scripts/fetch-tools.sh (extracts it from Debian's package)`,
  };
}
const kubectls = [
  fetched('kubectl-trixie', "Debian trixie's current kubectl"),
  fetched('kubectl-debian', "Debian 12's kubectl 1.20"),
];

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let home = '';
function kubectl(bin: string, kubeconfigPath: string, args: string[]): Promise<Run> {
  return new Promise((done) => {
    const child = spawn(bin, ['--request-timeout', '20s', ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, KUBECONFIG: kubeconfigPath },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

let config: LabConfig;
let lab: Lab;
let hostKubeconfig = '';
let httpServer: ChildProcess | undefined;
let httpKubeconfig = '';

beforeAll(async () => {
  await cleanupStaleLabs(/^pnt-l(\d+)[a-z]*-/);
  home = mkdtempSync(join(tmpdir(), 'podnet-lab-kubectl-'));
  config = {
    repoRoot,
    composeFile: join(repoRoot, 'compose.yaml'),
    stateDir: join(home, 'state'),
    prefix,
    only: ['apiserver', 'node-a'],
    agents: false,
    podsPerNode: 1,
    apiHostPort: await freePort(),
  };
  lab = new Lab(config);
  await lab.up();
  hostKubeconfig = join(home, 'lab.kubeconfig');
  writeFileSync(hostKubeconfig, lab.hostKubeconfig());

  // The lab's API server as compose.yaml runs it for Docker (--no-tls), on this host's loopback.
  httpServer = spawn(
    process.execPath,
    [
      join(repoRoot, 'packages/apiserver/dist/cli.js'),
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--token',
      lab.project.settings.apiServer.token,
      '--no-tls',
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const url = await new Promise<string>((ok, fail) => {
    let out = '';
    httpServer!.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) ok(m[1]!);
    });
    httpServer!.on('exit', (code) => fail(new Error(`podnet-apiserver --no-tls exited ${code}: ${out}`)));
  });
  httpKubeconfig = join(home, 'http.kubeconfig');
  writeFileSync(httpKubeconfig, kubeconfig(url, lab.project.settings.apiServer.token));
}, 180_000);

afterAll(async () => {
  if (httpServer?.pid) httpServer.kill('SIGTERM');
  await new Lab(config).down({ quiet: true });
  rmSync(home, { recursive: true, force: true });
}, 60_000);

describe('the namespace lab serves its API over HTTPS', () => {
  it("hands the nodes a kubeconfig with the API server's https address and CA", () => {
    const node = readFileSync(join(config.stateDir, 'node-a', 'kubeconfig'), 'utf8');
    expect(node).toContain('server: https://10.88.0.2:6443');
    expect(node).toMatch(/certificate-authority-data: \S+/);
    expect(node).not.toContain('insecure-skip-tls-verify');
    // The CNI plugin used it to create the pod (its IPAM talks to the API server).
    expect(lab.pods.length).toBe(1);
    expect(lab.pods[0]!.ipv4).toMatch(/^10\.244\./);
  });

  it('gives the host a kubeconfig through a loopback forward, with the CA and the token', () => {
    const text = lab.hostKubeconfig();
    expect(text).toContain(`server: https://127.0.0.1:${config.apiHostPort}`);
    expect(text).toMatch(/certificate-authority-data: \S+/);
    expect(text).toContain(`token: ${lab.project.settings.apiServer.token}`);
  });
});

describe('openApiTunnel', () => {
  it("gives an https URL on 127.0.0.1 that the server's CA verifies", async () => {
    const t = await lab.openApiTunnel();
    try {
      expect(t.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const status = await new Promise<number>((ok, fail) => {
        const req = httpsRequest(
          `${t.url}/api/v1/namespaces`,
          { ca: t.caPem, headers: { authorization: `Bearer ${t.token}` } },
          (res) => {
            res.resume();
            ok(res.statusCode ?? 0);
          },
        );
        req.on('error', fail);
        req.end();
      });
      expect(status).toBe(200);
    } finally {
      await t.close();
    }
  });
});

describe.each(kubectls)('kubectl against the lab with $label', ({ bin, missing }) => {
  it.skipIf(!bin)(
    `get pods -A and get ippools succeed with the lab's kubeconfig${bin ? '' : ` (skipped: ${missing})`}`,
    async () => {
      const pods = await kubectl(bin!, hostKubeconfig, ['get', 'pods', '-A', '-o', 'name']);
      expect(pods.stderr).toBe('');
      expect(pods.code).toBe(0);
      expect(pods.stdout.trim()).toBe(`pod/${lab.pods[0]!.name}`);
      const pools = await kubectl(bin!, hostKubeconfig, ['get', 'ippools', '-o', 'name']);
      expect(pools.stderr).toBe('');
      expect(pools.code).toBe(0);
      expect(pools.stdout.trim().split('\n').sort()).toEqual(
        lab.project.settings.ipPools.map((p) => `ippool.podnet.io/${p.name}`).sort(),
      );
    },
  );

  it.skipIf(!bin)(
    `gets 401 from the same server kind over plain HTTP: kubectl sends no token to http://${bin ? '' : ` (skipped: ${missing})`}`,
    async () => {
      const r = await kubectl(bin!, httpKubeconfig, ['get', 'pods', '-A']);
      expect(r.code).not.toBe(0);
      // 401, as each kubectl words it: "Unauthorized" (1.20), "the server has asked for the client
      // to provide credentials" (current).
      expect(r.stderr).toMatch(/Unauthorized|asked for the client to provide credentials/);
    },
  );
});
