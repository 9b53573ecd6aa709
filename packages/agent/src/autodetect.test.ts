import { describe, expect, it } from 'vitest';
import { detectNodeAddress, type NodeInterface, parseAutodetectionMethod } from './autodetect.js';

const ifaces: NodeInterface[] = [
  { name: 'lo', up: true, addresses: [{ cidr: '127.0.0.1/8', family: 4, scope: 'host' }] },
  { name: 'pn0123456789a', up: true, addresses: [{ cidr: '169.254.1.1/32', family: 4 }] },
  { name: 'docker0', up: true, addresses: [{ cidr: '172.17.0.1/16', family: 4, scope: 'global' }] },
  { name: 'eth0', up: false, addresses: [{ cidr: '192.168.9.9/24', family: 4, scope: 'global' }] },
  {
    name: 'eth1',
    up: true,
    addresses: [
      { cidr: 'fd00::11/64', family: 6, scope: 'global' },
      { cidr: '10.0.0.11/24', family: 4, scope: 'global' },
    ],
  },
  { name: 'ens5', up: true, addresses: [{ cidr: '172.30.0.11/16', family: 4, scope: 'global' }] },
];

const reach = async (dst: string) => (dst === '172.30.0.1' ? '172.30.0.11' : undefined);

describe('detectNodeAddress', () => {
  it.each([
    ['first-found', '10.0.0.11/24'],
    ['interface=ens.*', '172.30.0.11/16'],
    ['interface=eth0|eth1', '10.0.0.11/24'],
    ['skip-interface=eth.*', '172.30.0.11/16'],
    ['cidr=172.30.0.0/16', '172.30.0.11/16'],
    ['cidr=192.0.2.0/24,10.0.0.0/8', '10.0.0.11/24'],
    ['can-reach=172.30.0.1', '172.30.0.11/16'],
  ])('%s picks %s', async (method, want) => {
    expect(await detectNodeAddress(parseAutodetectionMethod(method), ifaces, reach)).toBe(want);
  });

  it.each([
    ['interface=wlan.*', /no matching up interface.*interfaces seen: lo/],
    ['cidr=192.0.2.0/24', /no address inside/],
    ['can-reach=203.0.113.1', /no route to the destination/],
  ])('%s fails with an explanation', async (method, msg) => {
    await expect(detectNodeAddress(parseAutodetectionMethod(method), ifaces, reach)).rejects.toThrow(msg);
  });
});

describe('parseAutodetectionMethod', () => {
  it.each([
    ['bogus', /unknown IP autodetection method "bogus"/],
    ['can-reach=host', /expected an IPv4 address/],
    ['cidr=10.0.0.0', /not a CIDR/],
    ['interface=(', /not a valid regular expression/],
    ['interface=', /needs a regular expression/],
  ])('rejects %s', (text, msg) => {
    expect(() => parseAutodetectionMethod(text)).toThrow(msg);
  });
});
