// The CNI socket with the real shim executable (packages/cni/dist/podnet-cni-shim) and a fake
// command runner: what crosses the socket, and when the shim runs the standalone plugin instead.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CniServer, declineReason, nsId, startCniServer } from './cni-server.js';
import { createMetrics } from './metrics.js';

const SHIM = resolve(dirname(fileURLToPath(import.meta.url)), '../../cni/dist/podnet-cni-shim');
const log = pino({ level: 'silent' });
let dir: string;
let fallback: string;
const servers: CniServer[] = [];

beforeAll(() => {
  if (!existsSync(SHIM)) throw new Error(`${SHIM} is missing: build @podnet/cni first`);
});

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function setup() {
  dir = mkdtempSync(join(tmpdir(), 'podnet-cni-server-'));
  // A stand-in for the standalone plugin: says why it runs and echoes the configuration it got.
  fallback = join(dir, 'standalone');
  writeFileSync(fallback, '#!/bin/sh\necho "fallback:$PODNET_CNI_FALLBACK_REASON"\ncat\nexit 3\n');
  chmodSync(fallback, 0o755);
}

function runShim(env: Record<string, string>, stdin: string): Promise<{ code: number; stdout: string }> {
  return new Promise((res) => {
    const child = execFile(
      SHIM,
      [],
      { env: { PODNET_CNI_FALLBACK: fallback, ...env }, timeout: 20_000 },
      (err, stdout) => res({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout }),
    );
    child.stdin?.end(stdin);
  });
}

const addEnv = (socket: string) => ({
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c1',
  CNI_NETNS: '/proc/self/ns/net',
  CNI_IFNAME: 'eth0',
  CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=p1',
  PODNET_CNI_SOCKET: socket,
});

describe('the CNI socket and the shim', () => {
  it("hands the CNI environment and configuration to the agent and prints the agent's answer with its exit code", async () => {
    setup();
    const metrics = createMetrics();
    const seen: { env: NodeJS.ProcessEnv; stdin: string; caller: unknown }[] = [];
    const socket = join(dir, 'cni.sock');
    servers.push(
      await startCniServer({
        path: socket,
        nodeName: 'node-a',
        log,
        metrics,
        can: { sysctls: true, setns: true },
        run: async (env, stdin, hooks) => {
          seen.push({ env, stdin, caller: hooks.caller });
          return { stdout: '{"cniVersion":"1.0.0","code":11,"msg":"try again"}\n', exitCode: 1 };
        },
      }),
    );
    const conf = JSON.stringify({
      cniVersion: '1.0.0',
      name: 'podnet',
      type: 'podnet',
      pad: 'x'.repeat(200_000),
    });
    const r = await runShim(addEnv(socket), conf);
    expect(r).toEqual({ code: 1, stdout: '{"cniVersion":"1.0.0","code":11,"msg":"try again"}\n' });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.stdin).toBe(conf);
    expect(seen[0]!.env).toEqual({
      PODNET_NODENAME: 'node-a',
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'c1',
      CNI_NETNS: '/proc/self/ns/net',
      CNI_IFNAME: 'eth0',
      CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=p1',
    });
    expect(seen[0]!.caller).toMatchObject({
      pid: expect.any(Number),
      pidStart: expect.stringMatching(/^\d+$/),
    });
    const counted = (await metrics.registry.getSingleMetricAsString('podnet_cni_duration_seconds'))
      .split('\n')
      .find((l) =>
        l.startsWith('podnet_cni_duration_seconds_count{command="ADD",result="error",via="agent"}'),
      );
    expect(counted).toMatch(/ 1$/);
  });

  it('runs the standalone plugin with the same configuration when no agent serves the socket', async () => {
    setup();
    const r = await runShim(addEnv(join(dir, 'absent.sock')), '{"cniVersion":"1.0.0"}');
    expect(r).toEqual({ code: 3, stdout: 'fallback:no-socket\n{"cniVersion":"1.0.0"}' });
  });

  it('runs the standalone plugin for the commands the agent does not serve, without dialling it', async () => {
    setup();
    const r = await runShim({ CNI_COMMAND: 'VERSION', PODNET_CNI_SOCKET: join(dir, 'absent.sock') }, '{}');
    expect(r).toEqual({ code: 3, stdout: 'fallback:not-forwarded\n{}' });
  });

  it('serves an ADD over the descriptors the shim hands over without CAP_SYS_ADMIN or a writable /proc/sys, and declines one the shim could hand nothing for', async () => {
    setup();
    const metrics = createMetrics();
    const socket = join(dir, 'cni.sock');
    const ran: boolean[] = [];
    servers.push(
      await startCniServer({
        path: socket,
        nodeName: 'node-a',
        log,
        metrics,
        can: { sysctls: false, setns: false },
        run: async (_env, _stdin, hooks) => {
          // The handed descriptors become the plugin's dataplane.
          ran.push(hooks.dataplane !== undefined);
          return { stdout: '', exitCode: 0 };
        },
      }),
    );
    const r = await runShim(addEnv(socket), '{"cniVersion":"1.0.0"}');
    expect(r).toEqual({ code: 0, stdout: '' });
    expect(ran).toEqual([true]);
    // A namespace the shim cannot open: nothing to hand over, and this agent cannot enter it.
    const absent = await runShim(
      { ...addEnv(socket), CNI_NETNS: join(dir, 'absent') },
      '{"cniVersion":"1.0.0"}',
    );
    expect(absent.code).toBe(3);
    expect(absent.stdout).toBe(
      'fallback:declined: the agent cannot enter pod network namespaces (no CAP_SYS_ADMIN) and the shim handed over none\n' +
        '{"cniVersion":"1.0.0"}',
    );
    expect(ran).toEqual([true]);
    expect(await metrics.registry.getSingleMetricAsString('podnet_cni_declined_total')).toContain(
      'podnet_cni_declined_total{reason="no-cap-sys-admin"} 1',
    );
  });

  it('declines an ADD whose sysctls it cannot write when no /proc/sys/net is handed over', () => {
    const req = {
      pid: process.pid,
      pidStart: '1',
      netnsId: undefined,
      runtime: '/usr/bin/containerd',
      env: { CNI_COMMAND: 'ADD', CNI_NETNS: '/proc/self/ns/net' },
      stdin: '{}',
    };
    const can = { sysctls: false, setns: false };
    expect(declineReason(req, can, { netnsFd: 5, netlinkFd: 6 })).toMatch(/sysctls/);
    expect(declineReason(req, can, { netnsFd: 5, netlinkFd: 6, sysctlFd: 7 })).toBeUndefined();
    expect(declineReason(req, can, { netnsFd: 5, sysctlFd: 7 })).toMatch(
      /cannot enter pod network namespaces/,
    );
  });

  it('declines a pod namespace it does not see as the shim does, and a shim outside its pid namespace', () => {
    setup();
    const ns = join(dir, 'netns');
    writeFileSync(ns, '');
    const start = readFileSync(`/proc/${process.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]!;
    const req = {
      pid: process.pid,
      pidStart: start,
      netnsId: nsId(ns),
      runtime: '/usr/bin/containerd',
      env: { CNI_COMMAND: 'ADD', CNI_NETNS: ns },
      stdin: '{}',
    };
    expect(declineReason(req)).toBeUndefined();
    expect(declineReason({ ...req, netnsId: '1:1' })).toMatch(
      /does not see the network namespace .*netns as the shim does/,
    );
    expect(declineReason({ ...req, env: { ...req.env, CNI_NETNS: join(dir, 'absent') } })).toMatch(
      /does not see the network namespace/,
    );
    expect(declineReason({ ...req, pidStart: '1' })).toMatch(/does not share the host's pid namespace/);
    expect(declineReason({ ...req, env: { CNI_COMMAND: 'GC' } })).toMatch(/command "GC" is not served/);
    expect(declineReason(req, { sysctls: false, setns: true })).toMatch(/sysctls/);
    const del = { ...req, env: { ...req.env, CNI_COMMAND: 'DEL' } };
    expect(declineReason(del, { sysctls: false, setns: true })).toBeUndefined();
    expect(declineReason(del, { sysctls: true, setns: false })).toMatch(
      /cannot enter pod network namespaces/,
    );
  });

  it('refuses to take over a socket another process serves', async () => {
    setup();
    const socket = join(dir, 'cni.sock');
    const first = await startCniServer({
      path: socket,
      nodeName: 'a',
      log,
      run: async () => ({ stdout: '', exitCode: 0 }),
    });
    servers.push(first);
    await expect(
      startCniServer({ path: socket, nodeName: 'a', log, run: async () => ({ stdout: '', exitCode: 0 }) }),
    ).rejects.toThrow(/is served by another process/);
  });
});
