import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { activeServices, inSubnet, ipToBigInt, parseCidr, parseCompose } from './compose.js';
import { LabError } from './errors.js';

const composeText = readFileSync(new URL('../../../compose.yaml', import.meta.url), 'utf8');

const minimal = (extra: string) => `
x-podnet:
  ipPools: [{name: p, cidr: 10.244.0.0/16}]
networks:
  fabric:
    ipam:
      config: [{subnet: 10.88.0.0/24}, {subnet: "fd00:88::/64"}]
services:
  apiserver:
    image: x
    command: [podnet-apiserver]
    networks: {fabric: {ipv4_address: 10.88.0.2}}
    x-podnet: {role: apiserver}
${extra}`;

describe('parseCompose', () => {
  it('reads the repository topology: roles, addresses, profiles and x-podnet settings', () => {
    const p = parseCompose(composeText);
    const byName = new Map(p.services.map((s) => [s.name, s]));
    expect([...byName.keys()]).toEqual([
      'apiserver',
      'tor',
      'tor-frr',
      'node-a',
      'node-b',
      'node-c',
      'node-d',
      'node-e',
      'client',
    ]);
    // The second rack (profile racks): its own subnet, default route via the ToR there.
    expect(byName.get('node-d')).toMatchObject({
      role: 'node',
      profiles: ['racks'],
      networks: [{ network: 'rack2', ipv4: '10.90.0.21', ipv6: 'fd00:90::21' }],
      gateway: { ipv4: '10.90.0.254', ipv6: 'fd00:90::fe' },
    });
    expect(byName.get('tor')).toMatchObject({ role: 'tor', daemon: 'bird', asNumber: 65000 });
    expect(byName.get('tor-frr')).toMatchObject({ role: 'tor', daemon: 'frr', profiles: ['frr'] });
    expect(byName.get('node-b')?.networks).toEqual([
      { network: 'fabric', ipv4: '10.88.0.12', ipv6: 'fd00:88::12' },
    ]);
    // merge keys: node-b inherits node-a's x-podnet gateway, volumes and sysctls
    expect(byName.get('node-b')?.gateway).toEqual({ ipv4: '10.88.0.254', ipv6: 'fd00:88::fe' });
    expect(byName.get('node-c')?.environment).toMatchObject({
      NODENAME: 'node-c',
      KUBECONFIG: '/etc/podnet/kubeconfig',
    });
    expect(byName.get('client')?.networks.map((a) => a.network)).toEqual(['external']);
    expect(p.settings.ipPools.map((x) => x.cidr)).toEqual(['10.244.0.0/16', 'fd00:244::/48']);
    expect(p.settings.bgp).toMatchObject({ nodeAsNumber: 64512, holdTime: 9 });
    expect(activeServices(p).map((s) => s.name)).not.toContain('tor-frr');
    expect(activeServices(p, ['frr']).map((s) => s.name)).toContain('tor-frr');
  });

  const invalid: [string, string, RegExp][] = [
    [
      'an address outside its network',
      '  c:\n    image: x\n    x-podnet: {role: node}\n    networks: {fabric: {ipv4_address: 10.99.0.5}}\n',
      /services\.c\.networks\.fabric\.ipv4_address = "10\.99\.0\.5": outside the network's subnet 10\.88\.0\.0\/24/,
    ],
    [
      'an undeclared network',
      '  c:\n    image: x\n    x-podnet: {role: node}\n    networks: {nowhere: {}}\n',
      /services\.c\.networks = "nowhere": no such network/,
    ],
    [
      'an address used twice',
      '  c:\n    image: x\n    x-podnet: {role: node}\n    networks: {fabric: {ipv4_address: 10.88.0.2}}\n',
      /"10\.88\.0\.2": address already used by apiserver/,
    ],
    [
      'an unknown role',
      '  s:\n    image: x\n    x-podnet: {role: router}\n',
      /services\.s\.x-podnet\.role = "router": expected one of apiserver, tor, node, client/,
    ],
    [
      'a ToR without an AS number',
      '  t:\n    image: x\n    x-podnet: {role: tor}\n',
      /services\.t\.x-podnet\.asNumber/,
    ],
    [
      'a depends_on on a missing service',
      '  c:\n    image: x\n    x-podnet: {role: node}\n    depends_on: [ghost]\n',
      /services\.c\.depends_on = "ghost": no such service/,
    ],
  ];
  it.each(invalid)('rejects %s with an error naming the field and value', (_what, extra, message) => {
    expect(() => parseCompose(minimal(extra))).toThrow(message);
  });

  it('rejects a file that is not Compose Specification, listing where', () => {
    let err: unknown;
    try {
      parseCompose('services:\n  a:\n    image: x\n    bogus: true\n');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LabError);
    expect((err as LabError).code).toBe('LAB_ERR_COMPOSE_SPEC');
    expect((err as LabError).message).toContain('/services/a');
  });

  it('rejects YAML that does not parse', () => {
    expect(() => parseCompose('services: [')).toThrow(/not valid YAML/);
  });
});

describe('addresses', () => {
  it('parses CIDRs and names a bad one', () => {
    expect(parseCidr('f', 'fd00:88::/64')).toEqual({ address: 'fd00:88::', prefixLength: 64, family: 6 });
    expect(() => parseCidr('networks.x.subnet', '10.0.0.0/33')).toThrow(
      /networks\.x\.subnet = "10\.0\.0\.0\/33"/,
    );
  });

  it('expands IPv6 shorthand', () => {
    expect(ipToBigInt('::1')).toBe(1n);
    expect(ipToBigInt('fd00:88::fe')).toBe(ipToBigInt('fd00:0088:0000:0000:0000:0000:0000:00fe'));
  });

  it('places every IPv4 address inside the subnets that contain it and outside a disjoint one', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), (ip, len) => {
        const n = ipToBigInt(ip);
        const base = len === 0 ? 0n : (n >> BigInt(32 - len)) << BigInt(32 - len);
        const dotted = [24n, 16n, 8n, 0n].map((s) => String((base >> s) & 255n)).join('.');
        expect(inSubnet(ip, { address: dotted, prefixLength: len, family: 4 })).toBe(true);
        if (len > 0) {
          const flipped = base ^ (1n << BigInt(32 - len));
          const other = [24n, 16n, 8n, 0n].map((s) => String((flipped >> s) & 255n)).join('.');
          expect(inSubnet(ip, { address: other, prefixLength: len, family: 4 })).toBe(false);
        }
      }),
    );
  });
});
