// Failures a platform team rehearses: the ToR restarted, a node lost. Each checks what the kernel routes and the pods see, on the real lab.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupStaleScenarioLabs, Lab, podIp, routesVia, scenarioConfig, unreachable } from './harness.js';

const config = scenarioConfig('f');
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

const nodeIp = (name: string) => lab.service(name).links[0]?.ipv4?.split('/')[0] ?? '';

describe('lab faults', () => {
  it('re-establishes the ToR’s sessions and the client’s reachability after the ToR restarts', async () => {
    await lab.restartService('tor', 'SIGTERM');
    await lab.waitForSessions();
    for (const node of lab.nodes) {
      expect(
        routesVia(lab.service('tor').ns, nodeIp(node.name)).length,
        `tor routes via ${node.name}`,
      ).toBeGreaterThan(0);
    }
    expect(unreachable(await lab.waitForReachability(4))).toEqual([]);
  });

  it('withdraws node-b’s routes everywhere when node-b dies, and keeps every other pod reachable', async () => {
    const b = nodeIp('node-b');
    const watchers = ['node-a', 'node-c', 'tor'].map((n) => lab.service(n).ns);
    for (const ns of watchers)
      expect(routesVia(ns, b).length, `${ns} routes via node-b before`).toBeGreaterThan(0);
    // A node lost: its link goes down first, so no TCP FIN or RST reaches the peers, then its agent
    // dies. The peers find out only when their hold timers expire.
    execFileSync('ip', ['-n', lab.service('node-b').ns, 'link', 'set', 'eth0', 'down']);
    await lab.stopService('node-b', 'SIGKILL');
    const { holdTime, restartTime } = lab.project.settings.bgp;
    const t0 = Date.now();
    const bound = (holdTime + restartTime + 10) * 1000;
    for (const ns of watchers) {
      while (routesVia(ns, b).length > 0 && Date.now() - t0 < bound)
        await new Promise((r) => setTimeout(r, 250));
      expect(routesVia(ns, b), `${ns} still routes via node-b after ${(Date.now() - t0) / 1000} s`).toEqual(
        [],
      );
    }
    process.stderr.write(`[faults] node-b's routes withdrawn everywhere after ${Date.now() - t0} ms\n`);
    const rest = lab.pods.filter((p) => p.node !== 'node-b');
    for (const src of [...rest.map((p) => p.ns), lab.service('client').ns]) {
      for (const dst of rest) {
        if (dst.ns === src) continue;
        expect(await lab.ping(src, podIp(dst)), `${src} → ${dst.name}`).toBe(true);
      }
    }
  });
});
