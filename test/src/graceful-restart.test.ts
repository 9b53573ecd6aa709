// A graceful agent restart (SIGTERM): the kernel routes stay, the peers keep node-b's routes
// (graceful restart), so no packet to, from or through node-b is lost. With BFD on (the lab's
// default): node-b's BFD runs in its agent (C bit clear) and stops with it, and the BIRD ToR takes
// BGP down on BFD Down (`bfd on`). So before it stops, the agent asks each BFD peer to wait through
// its restart (RFC 5882 §4.3: a long Desired Min TX in a Poll Sequence), and the new agent resumes
// those sessions instead of starting new ones (docs/bfd.md, "BFD and graceful restart").
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupStaleScenarioLabs, Lab, pingRun, podIp, scenarioConfig, unreachable } from './harness.js';

const config = scenarioConfig('g');
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
    expect(lab.project.settings.bgp.bfd.enabled, 'BFD on in the lab').toBe(true);
    const birdc = (...args: string[]) =>
      execFileSync('birdc', [
        '-s',
        join(config.stateDir, 'tor', 'root', 'run', 'bird', 'bird.ctl'),
        ...args,
      ]).toString();
    const nodeB = lab.service('node-b').links[0]?.ipv4?.split('/')[0] ?? '';
    const bfdUp = () =>
      new RegExp(`${nodeB.replaceAll('.', '\\.')}\\s+\\S+\\s+Up`).test(birdc('show', 'bfd', 'sessions'));
    for (let i = 0; i < 300 && !bfdUp(); i++) await new Promise((r) => setTimeout(r, 100));
    expect(bfdUp(), 'the ToR’s BFD session with node-b is Up before the restart').toBe(true);
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
    // BFD stayed Up through the restart: the ToR never took node-b's session down for it, and the
    // new agent resumed its sessions with the ToR and the other nodes.
    expect(birdc('show', 'protocols', 'all', 'node_b_v4')).not.toMatch(/BFD session down/);
    expect(bfdUp(), 'the ToR’s BFD session with node-b is Up after the restart').toBe(true);
    const log = readFileSync(join(config.stateDir, 'node-b', 'node-b.log'), 'utf8');
    expect(log, 'the old agent held its BFD sessions over').toMatch(/"event":"bfd-hold-over"/);
    expect(log, 'the new agent resumed a held session').toMatch(/"reason":"resumed"/);
    process.stderr.write(
      `[faults] node-b restarted and re-peered ${restarted} ms into ${count} pings, none lost\n`,
    );
  });
});
