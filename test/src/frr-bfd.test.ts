// The lab's FRR profile runs BFD too: the FRR ToR (zebra, bfdd and bgpd, compose.yaml's tor-frr)
// has `neighbor X bfd` for every node, and the nodes run BFD towards it (the BGPConfiguration's
// mesh-wide default, which the ToR BGPPeers inherit). Each node's BGP session with the FRR ToR is
// Established with its BFD session Up, as FRR itself reports both.
import { join } from 'node:path';
import { exec } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupStaleScenarioLabs, Lab, scenarioConfig } from './harness.js';

const config = scenarioConfig('fb', { profiles: ['frr'] });
let lab: Lab;

beforeAll(async () => {
  await cleanupStaleScenarioLabs();
  lab = new Lab(config);
  await lab.up();
});

afterAll(async () => {
  await new Lab(config).down({ quiet: true });
});

const vtysh = async (cmd: string): Promise<unknown> => {
  const dir = join(config.stateDir, 'tor-frr', 'root', 'run', 'frr');
  const r = await exec('vtysh', ['--vty_socket', dir, '-c', cmd], { timeoutMs: 5000 });
  if (r.code !== 0) throw new Error(`vtysh ${cmd}: ${r.stderr || r.stdout}`);
  return JSON.parse(r.stdout);
};

/** Polls `done` every 200 ms, at most `bound` ms. */
async function until(done: () => Promise<boolean>, bound: number): Promise<boolean> {
  const t0 = Date.now();
  while (!(await done()) && Date.now() - t0 < bound) await new Promise((r) => setTimeout(r, 200));
  return done();
}

describe('lab FRR profile with BFD', () => {
  it('brings every node’s BGP session with the FRR ToR to Established with its BFD session Up at 300 ms x 3', async () => {
    expect(lab.project.settings.bgp.bfd.enabled).toBe(true);
    const nodes = lab.nodes.map((n) => lab.service(n.name).links[0]?.ipv4?.split('/')[0] ?? '');
    expect(nodes.length).toBe(3);
    type BfdPeer = { peer: string; status: string; 'detect-multiplier': number; 'receive-interval': number };
    const peers = async () => (await vtysh('show bfd peers json')) as BfdPeer[];
    const allUp = async () => {
      const ps = await peers();
      return nodes.every((ip) => ps.some((p) => p.peer === ip && p.status === 'up'));
    };
    expect(await until(allUp, 60_000), JSON.stringify(await peers())).toBe(true);
    for (const ip of nodes) {
      const p = (await peers()).find((x) => x.peer === ip)!;
      expect(p).toMatchObject({ 'detect-multiplier': 3, 'receive-interval': 300 });
      // bgpd's own view: Established, and its BFD for this neighbour Up.
      const n = ((await vtysh(`show bgp neighbors ${ip} json`)) as Record<string, Record<string, unknown>>)[
        ip
      ]!;
      expect(n.bgpState).toBe('Established');
      expect(n.peerBfdInfo).toMatchObject({ status: 'Up' });
    }
  });
});
