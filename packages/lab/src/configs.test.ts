import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCompose } from './compose.js';
import { apiServerUrl, birdConfig, frrConfig, kubeconfig, torPeers } from './configs.js';

const repo = new URL('../../../', import.meta.url);
const project = parseCompose(readFileSync(new URL('compose.yaml', repo), 'utf8'));
const tor = project.services.find((s) => s.name === 'tor')!;
const torFrr = project.services.find((s) => s.name === 'tor-frr')!;
const tmp = mkdtempSync(join(tmpdir(), 'podnet-lab-configs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('generated router configuration', () => {
  it('peers the ToR with every node over IPv4 and IPv6', () => {
    expect(torPeers(tor, project.services).map((p) => [p.name, p.ipv4, p.ipv6])).toEqual([
      ['node-a', '10.88.0.11', 'fd00:88::11'],
      ['node-b', '10.88.0.12', 'fd00:88::12'],
      ['node-c', '10.88.0.13', 'fd00:88::13'],
      // profile racks: the second rack's nodes, on the ToR's rack2 interface.
      ['node-d', '10.90.0.21', 'fd00:90::21'],
      ['node-e', '10.90.0.22', 'fd00:90::22'],
    ]);
    const conf = birdConfig(tor, project.services, project.settings.bgp);
    expect(conf).toContain('local as 65000;');
    expect(conf).toContain('neighbor 10.88.0.12 as 64512;');
    expect(conf).toContain('neighbor fd00:88::13 as 64512;');
    expect(conf).toContain('hold time 9;');
  });

  it('writes a BIRD configuration that BIRD 2 itself accepts', () => {
    const file = join(tmp, 'bird.conf');
    writeFileSync(file, birdConfig(tor, project.services, project.settings.bgp));
    expect(() => execFileSync('bird', ['-p', '-c', file], { stdio: 'pipe' })).not.toThrow();
  });

  it('writes an FRR configuration that bgpd accepts in a dry run', () => {
    const file = join(tmp, 'frr.conf');
    writeFileSync(file, frrConfig(torFrr, project.services, project.settings.bgp));
    const out = execFileSync('/usr/lib/frr/bgpd', ['-C', '-f', file, '-S', '-Z'], {
      stdio: 'pipe',
    }).toString();
    expect(out).not.toMatch(/error|unknown command/i);
  });

  it('keeps the Docker copies in deploy/docker in step with compose.yaml', () => {
    const read = (p: string) => readFileSync(new URL(p, repo), 'utf8');
    const hint = 'regenerate: see packages/lab/README.md (deploy/docker files)';
    expect(read('deploy/docker/lab-tor/bird.conf'), hint).toBe(
      birdConfig(tor, project.services, project.settings.bgp),
    );
    expect(read('deploy/docker/lab-tor/frr.conf'), hint).toBe(
      frrConfig(torFrr, project.services, project.settings.bgp),
    );
    // HTTPS without a CA (the nodes' file exists before the server makes its certificate).
    expect(read('deploy/docker/lab-config/kubeconfig'), hint).toBe(
      kubeconfig(apiServerUrl(project) ?? '', project.settings.apiServer.token),
    );
    expect(apiServerUrl(project)).toMatch(/^https:\/\//);
  });
});
