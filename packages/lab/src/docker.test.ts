import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCompose } from './compose.js';
import { birdRows, frrRows } from './peers.js';

const repoRoot = join(import.meta.dirname, '..', '..', '..');

describe('docker engine', () => {
  it("reads BIRD's show protocols into peer rows, BGP protocols only", () => {
    const text = [
      'BIRD 2.0.12 ready.',
      'Name       Proto      Table      State  Since         Info',
      'device1    Device     ---        up     13:57:44.082  ',
      'node_a_v4  BGP        ---        up     13:58:25.005  Established',
      'node_d_v4  BGP        ---        start  13:57:44.082  Connect       Socket: No route to host',
    ].join('\n');
    expect(birdRows('tor', text)).toEqual([
      { router: 'tor', peer: 'node_a_v4', state: 'up', since: '13:58:25.005', info: 'Established' },
      {
        router: 'tor',
        peer: 'node_d_v4',
        state: 'start',
        since: '13:57:44.082',
        info: 'Connect Socket: No route to host',
      },
    ]);
  });

  it("reads FRR's show bgp summary json into one row per peer and family", () => {
    const json = JSON.stringify({
      ipv4Unicast: { peers: { '10.88.0.11': { state: 'Established', peerUptime: '00:01:02', pfxRcd: 1 } } },
      ipv6Unicast: { peers: { 'fd00:88::11': { state: 'Active' } } },
    });
    expect(frrRows('tor-frr', json)).toEqual([
      {
        router: 'tor-frr',
        peer: '10.88.0.11 (ipv4Unicast)',
        state: 'Established',
        since: '00:01:02',
        info: '1 prefixes in',
      },
      {
        router: 'tor-frr',
        peer: 'fd00:88::11 (ipv6Unicast)',
        state: 'Active',
        since: '',
        info: '0 prefixes in',
      },
    ]);
  });

  it("leaves compose.yaml's lab-init service (role init) to Docker: the namespace runner bootstraps itself", () => {
    const project = parseCompose(readFileSync(join(repoRoot, 'compose.yaml'), 'utf8'));
    expect(project.services.map((s) => s.name)).not.toContain('lab-init');
    expect(project.services.map((s) => s.name)).toContain('node-a');
  });
});
