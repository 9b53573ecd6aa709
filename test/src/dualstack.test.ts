// Dual stack: every pod also gets an IPv6 address from the fd00:244::/48 pool, and reaches every
// other pod over IPv6 across nodes, as the client does through the ToR.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  downScenarioLab,
  type Lab,
  routesVia,
  scenarioConfig,
  unreachable,
  upScenarioLab,
} from './harness.js';

const config = scenarioConfig('d');
let lab: Lab;

beforeAll(async () => {
  lab = await upScenarioLab(config);
});

afterAll(() => downScenarioLab(config));

describe('lab dual stack (IPv4 + IPv6 pools)', () => {
  it('reaches every pod over IPv6 too (dual stack)', async () => {
    const v6 = lab.pods.filter((p) => p.ipv6);
    expect(v6.length, 'pods have IPv6 addresses from the fd00:244::/48 pool').toBe(lab.pods.length);
    const probes = await lab.waitForReachability(6);
    expect(unreachable(probes)).toEqual([]);
  });

  it('runs the IPv6 ToR sessions from the node IPv6 address (no bind error on any session)', async () => {
    for (const node of lab.nodes) {
      const ip6 = node.links[0]?.ipv6?.split('/')[0] ?? '';
      const status = (await lab.agentStatus(node.name)) as
        | { peers: { address: string; state: string; lastError?: string }[] }
        | undefined;
      expect(status, `${node.name} answers /status`).toBeDefined();
      const v6 = status!.peers.filter((p) => p.address.includes(':'));
      expect(v6.length, `${node.name} has an IPv6 peer`).toBeGreaterThan(0);
      // lastError keeps the last failure of a session's life (a refused first connect is normal);
      // binding an IPv6 socket to the IPv4 node address failed with EINVAL on every attempt.
      for (const p of status!.peers) {
        const what = `${node.name} (${ip6}) session to ${p.address}: ${p.lastError ?? 'no error'}`;
        expect(p.state, what).toBe('Established');
        expect(p.lastError ?? '', what).not.toMatch(/bind|EINVAL|EADDRNOTAVAIL/);
      }
    }
  });

  it('routes each node to the other nodes’ IPv6 blocks via their IPv6 addresses', () => {
    for (const node of lab.nodes) {
      const ip6 = node.links[0]?.ipv6?.split('/')[0] ?? '';
      for (const other of lab.nodes.filter((n) => n !== node)) {
        expect(
          routesVia(other.ns, ip6, 6).length,
          `${other.name} has an IPv6 route via ${node.name}`,
        ).toBeGreaterThan(0);
      }
    }
  });
});
