// Fast failover with BFD on the real lab: a node cut off without a word (its link taken down inside
// its namespace, its agent left running) leaves the fabric by BFD, not by the hold timer. The ToR
// and every other node withdraw its blocks, and the client's traffic to the pods on the surviving
// nodes never stops.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupStaleScenarioLabs,
  Lab,
  pingRun,
  podIp,
  routesVia,
  scenarioConfig,
  unreachable,
} from './harness.js';

const config = scenarioConfig('fo');
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
const birdc = (...args: string[]) =>
  execFileSync('birdc', [
    '-s',
    join(config.stateDir, 'tor', 'root', 'run', 'bird', 'bird.ctl'),
    ...args,
  ]).toString();

/** Polls `done` every 100 ms, at most `bound` ms. */
async function until(done: () => boolean, bound: number): Promise<boolean> {
  const t0 = Date.now();
  while (!done() && Date.now() - t0 < bound) await new Promise((r) => setTimeout(r, 100));
  return done();
}

describe('failover with BFD', () => {
  it('withdraws a silently cut node’s blocks on the ToR and every node by BFD, and the client’s traffic to the others never stops', async () => {
    const { bfd } = lab.project.settings.bgp;
    expect(bfd.enabled).toBe(true);
    const b = nodeIp('node-b');
    // Every node's BFD session with the ToR is Up before the cut.
    for (const n of lab.nodes)
      expect(
        await until(
          () =>
            new RegExp(`${nodeIp(n.name).replaceAll('.', '\\.')}\\s+\\S+\\s+Up`).test(
              birdc('show', 'bfd', 'sessions'),
            ),
          30_000,
        ),
        `tor BFD session with ${n.name} Up`,
      ).toBe(true);
    const watchers = ['node-a', 'node-c', 'tor'].map((n) => lab.service(n).ns);
    for (const ns of watchers)
      expect(routesVia(ns, b).length, `${ns} routes via node-b before`).toBeGreaterThan(0);

    // Client traffic to every pod on the surviving nodes, 10 per second, across the cut.
    const rest = lab.pods.filter((p) => p.node !== 'node-b');
    const client = lab.service('client').ns;
    const pings = rest.map((p) => pingRun(client, podIp(p), 60, 0.1));
    await new Promise((r) => setTimeout(r, 1000));

    // The cut: node-b's link goes down inside its namespace; its agent keeps running, nobody is told.
    const t0 = Date.now();
    execFileSync('ip', ['-n', lab.service('node-b').ns, 'link', 'set', 'eth0', 'down']);
    const bound = (lab.project.settings.bgp.holdTime + 10) * 1000;
    for (const ns of watchers)
      expect(await until(() => routesVia(ns, b).length === 0, bound), `${ns} still routes via node-b`).toBe(
        true,
      );
    process.stderr.write(
      `[failover] node-b's routes withdrawn everywhere ${Date.now() - t0} ms after the cut\n`,
    );

    // By BFD: the ToR's BGP session with node-b ended on its BFD session, and each surviving node's
    // agent logged its BFD Down towards node-b and took the BGP session down for it.
    const proto = birdc('show', 'protocols', 'all', 'node_b_v4');
    expect(proto).toMatch(/BFD session down/);
    for (const n of ['node-a', 'node-c']) {
      const log = readFileSync(join(config.stateDir, n, `${n}.log`), 'utf8');
      const downs = log.split('\n').filter((l) => l.includes('"event":"bfd-down"') && l.includes(b));
      expect(downs.length, `${n} logged a BFD Down for node-b`).toBeGreaterThan(0);
    }

    const results = await Promise.all(pings);
    results.forEach((r, i) => {
      expect(r.received, `client → ${rest[i]!.name}: ${r.received}/${r.sent}`).toBe(r.sent);
    });
  });
});
