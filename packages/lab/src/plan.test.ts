import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCompose } from './compose.js';
import { planLab, serviceAddress } from './plan.js';

const project = parseCompose(readFileSync(new URL('../../../compose.yaml', import.meta.url), 'utf8'));

describe('planLab', () => {
  it('gives every service a prefixed namespace and one veth per network, in compose order', () => {
    const plan = planLab(project, { prefix: 'pnl-' });
    expect(plan.bridgeNs).toBe('pnl-net');
    expect(plan.bridges).toEqual([
      { network: 'fabric', bridge: 'br-fabric' },
      { network: 'external', bridge: 'br-external' },
      { network: 'rack2', bridge: 'br-rack2' },
    ]);
    const tor = plan.services.find((s) => s.name === 'tor');
    expect(tor?.ns).toBe('pnl-tor');
    expect(tor?.links.map((l) => [l.ifname, l.bridge, l.ipv4, l.ipv6])).toEqual([
      ['eth0', 'br-fabric', '10.88.0.254/24', 'fd00:88::fe/64'],
      ['eth1', 'br-external', '10.89.0.254/24', 'fd00:89::fe/64'],
      ['eth2', 'br-rack2', '10.90.0.254/24', 'fd00:90::fe/64'],
    ]);
    expect(tor && serviceAddress(tor, 4, 'external')).toBe('10.89.0.254');
    // The second rack's nodes start only with their profile, routed by the ToR.
    expect(plan.services.some((s) => s.name === 'node-d')).toBe(false);
    const racks = planLab(project, { prefix: 'pnl-', profiles: ['racks'] });
    expect(racks.services.find((s) => s.name === 'node-d')?.routes).toEqual([
      ['route', 'replace', 'default', 'via', '10.90.0.254'],
      ['-6', 'route', 'replace', 'default', 'via', 'fd00:90::fe'],
    ]);
  });

  it('keeps every interface name within 15 bytes and unique on the bridges', () => {
    const plan = planLab(project, { prefix: 'pnl-', profiles: ['frr'] });
    const peers = plan.services.flatMap((s) => s.links.map((l) => l.peer));
    expect(new Set(peers).size).toBe(peers.length);
    for (const name of [...peers, ...plan.bridges.map((b) => b.bridge)])
      expect(name.length).toBeLessThanOrEqual(15);
  });

  it('routes nodes and the client by default via the ToR, and starts dependencies first', () => {
    const plan = planLab(project, { prefix: 'pnl-' });
    const names = plan.services.map((s) => s.name);
    expect(names.indexOf('apiserver')).toBeLessThan(names.indexOf('node-a'));
    expect(names.indexOf('tor')).toBeLessThan(names.indexOf('node-a'));
    expect(plan.services.find((s) => s.name === 'client')?.routes).toEqual([
      ['route', 'replace', 'default', 'via', '10.89.0.254'],
      ['-6', 'route', 'replace', 'default', 'via', 'fd00:89::fe'],
    ]);
    expect(plan.services.find((s) => s.name === 'node-c')?.sysctls).toMatchObject({
      'net.ipv4.ip_forward': '1',
    });
  });

  it('starts only the named services and what they depend on', () => {
    expect(planLab(project, { prefix: 'x-', only: ['node-a'] }).services.map((s) => s.name)).toEqual([
      'apiserver',
      'tor',
      'node-a',
    ]);
    expect(planLab(project, { prefix: 'x-', only: ['client'] }).services.map((s) => s.name)).toEqual([
      'client',
    ]);
  });

  it('adds the FRR ToR only with its profile, and says so when asked for it without', () => {
    expect(planLab(project, { prefix: 'x-' }).services.map((s) => s.name)).not.toContain('tor-frr');
    expect(planLab(project, { prefix: 'x-', profiles: ['frr'] }).services.map((s) => s.name)).toContain(
      'tor-frr',
    );
    expect(() => planLab(project, { prefix: 'x-', only: ['tor-frr'] })).toThrow(
      /tor-frr .* inactive profile/,
    );
    expect(() => planLab(project, { prefix: 'x-', only: ['nope'] })).toThrow(/no service named nope/);
  });

  it('refuses a prefix that could collide with other namespaces', () => {
    expect(() => planLab(project, { prefix: '' })).toThrow(/prefix ""/);
    expect(() => planLab(project, { prefix: 'a/b' })).toThrow(/prefix "a\/b"/);
  });
});
