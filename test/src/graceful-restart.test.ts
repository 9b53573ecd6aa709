// A graceful agent restart (SIGTERM): the kernel routes stay, the peers keep node-b's routes
// (graceful restart), so no packet to, from or through node-b is lost.
// Without BFD: the agent's BFD stops with it (its C bit is clear, RFC 5882 §4.3), and the BIRD ToR
// takes BGP down on BFD Down, purging node-b's routes for the ~1 s until it is back, unless BIRD's
// `bfd graceful` is set, which would also keep a dead node's routes for the restart time. With BFD
// on, the client → node-b pod pings lost about 1 s (docs/bfd.md, "BFD and graceful restart").
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupStaleScenarioLabs, Lab, pingRun, podIp, scenarioConfig, unreachable } from './harness.js';

const config = scenarioConfig('g', { bfd: false });
let lab: Lab;

beforeAll(async () => {
  await cleanupStaleScenarioLabs();
  lab = new Lab(config);
  await lab.up();
  expect(unreachable(await lab.waitForReachability(4))).toEqual([]);
});

afterAll(async () => {
  await new Lab(config).down({ quiet: true });
});

describe('lab graceful agent restart', () => {
  it('loses no ping while node-b’s agent restarts gracefully (SIGTERM, graceful restart)', async () => {
    const onA = lab.pods.find((p) => p.node === 'node-a')!;
    const onB = lab.pods.find((p) => p.node === 'node-b')!;
    const before = lab.processes.find((p) => p.service === 'node-b')?.pid;
    const count = 150; // 15 s of pings, 10 per second, covering the whole restart
    const tPing = Date.now();
    const onC = lab.pods.find((p) => p.node === 'node-c')!;
    const pings = [
      pingRun(onA.ns, podIp(onB), count, 0.1),
      pingRun(lab.service('client').ns, podIp(onB), count, 0.1),
      pingRun(onB.ns, podIp(onA), count, 0.1),
      pingRun(onB.ns, podIp(onC), count, 0.1),
    ];
    // Every route change in node-b while its agent restarts: the new agent must delete none of the
    // routes the old one kept (its first reconcile starts from the complete desired set).
    const monitor = spawn('ip', ['-ts', '-n', lab.service('node-b').ns, 'monitor', 'route'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let changes = '';
    monitor.stdout.on('data', (b: Buffer) => {
      changes += b.toString();
    });
    try {
      await new Promise((r) => setTimeout(r, 1000));
      await lab.restartService('node-b', 'SIGTERM');
      await lab.waitForSessions();
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      monitor.kill('SIGTERM');
    }
    const restarted = Date.now() - tPing;
    const after = lab.processes.find((p) => p.service === 'node-b')?.pid;
    expect(after, 'a new node-b agent process').not.toBe(before);
    const results = await Promise.all(pings);
    expect(restarted, 'the restart finished while the pings ran').toBeLessThan(count * 100);
    for (const r of results) expect(r.sent).toBe(count);
    const deleted = changes.split('\n').filter((l) => /\bDeleted .*proto (213|podnet)\b/.test(l));
    expect(deleted, 'podnet routes node-b deleted while its agent restarted').toEqual([]);
    expect(results.map((r) => r.sent - r.received)).toEqual([0, 0, 0, 0]);
    process.stderr.write(
      `[faults] node-b restarted and re-peered ${restarted} ms into ${count} pings, none lost\n`,
    );
  });
});
