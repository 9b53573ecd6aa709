import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allCrds } from './crd.js';
import { SchemaError } from './errors.js';
import { formatCidr, formatIp, parseCidr, parseIp } from './net.js';
import {
  BGPCONFIGURATION,
  BGPPEER,
  BLOCKAFFINITY,
  IPAMBLOCK,
  IPAMHANDLE,
  IPPOOL,
  validate,
} from './resources.js';
import { parseNodeAnnotations, parsePeerAddress } from './schemas.js';
import { matchesSelector, parseSelector } from './selector.js';

const meta = { name: 'x' };

function problemsOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SchemaError);
    return (err as SchemaError).message;
  }
  throw new Error('expected a SchemaError');
}

describe('IPPool', () => {
  it('applies the defaults: /26 blocks for IPv4, /122 for IPv6, all() nodes, NAT off', () => {
    const v4 = validate(IPPOOL, { metadata: meta, spec: { cidr: '10.244.0.0/16' } });
    expect(v4.spec).toEqual({
      cidr: '10.244.0.0/16',
      blockSize: 26,
      natOutgoing: false,
      isolated: false,
      disabled: false,
      nodeSelector: 'all()',
      disableBGPExport: false,
    });
    expect(v4.kind).toBe('IPPool');
    expect(v4.apiVersion).toBe('podnet.io/v1alpha1');
    const v6 = validate(IPPOOL, { metadata: meta, spec: { cidr: 'fd00:10:244::/48' } });
    expect(v6.spec.blockSize).toBe(122);
  });

  it.each([
    [{ cidr: '10.244.0.0/33' }, 'spec.cidr: "10.244.0.0/33" is not a valid network CIDR'],
    [{ cidr: '10.244.0.1/16' }, 'spec.cidr: "10.244.0.1/16" is not a valid network CIDR'],
    [{ cidr: 'banana' }, 'spec.cidr: "banana"'],
    [
      { cidr: '10.244.0.0/16', blockSize: 12 },
      'spec.blockSize: block size 12 must be between the pool prefix /16',
    ],
    [{ cidr: '10.244.0.0/16', blockSize: 33 }, 'spec.blockSize: block size 33 must be between'],
    [{ cidr: '10.244.0.0/16', nodeSelector: 'zone in (a' }, 'spec.nodeSelector: invalid selector'],
    [{ cidr: '10.244.0.0/16', natOutgoing: 'yes' }, 'spec.natOutgoing'],
    [{ cidr: '10.244.0.0/16', isolated: 'yes' }, 'spec.isolated'],
    [{}, 'spec.cidr'],
  ])('rejects %j with an error naming the field', (spec, message) => {
    expect(problemsOf(() => validate(IPPOOL, { metadata: meta, spec }))).toContain(message);
  });
});

describe('BGPConfiguration', () => {
  it('defaults to AS 64512, a full mesh, port 179 and graceful restart', () => {
    const c = validate(BGPCONFIGURATION, { metadata: { name: 'default' }, spec: {} });
    expect(c.spec).toMatchObject({
      asNumber: 64512,
      nodeToNodeMesh: true,
      listenPort: 179,
      keepaliveTime: 30,
      holdTime: 90,
      gracefulRestart: { enabled: true, restartTime: 120 },
      serviceClusterIPs: [],
      natOutgoingExclusions: [],
    });
    // Unset means "the agent's own configuration", not info (see the agent's log level).
    expect(c.spec.logSeverity).toBeUndefined();
    expect(
      validate(BGPCONFIGURATION, { metadata: meta, spec: { logSeverity: 'debug' } }).spec.logSeverity,
    ).toBe('debug');
  });

  it.each([
    [{ asNumber: 0 }, 'spec.asNumber'],
    [{ asNumber: 4294967296 }, 'spec.asNumber'],
    [{ holdTime: 2 }, 'spec.holdTime: hold time 2 must be 0 or at least 3'],
    [
      { holdTime: 9, keepaliveTime: 9 },
      'spec.keepaliveTime: keepalive time 9 must be less than the hold time 9',
    ],
    [
      { communities: [{ cidr: '10.0.0.0/8', values: ['65536:1'] }] },
      'spec.communities.0.values.0: "65536:1"',
    ],
    [{ serviceClusterIPs: [{ cidr: '10.96.0.0/40' }] }, 'spec.serviceClusterIPs.0.cidr: "10.96.0.0/40"'],
    [
      { natOutgoingExclusions: [{ cidr: '172.16.0.1/12' }] },
      'spec.natOutgoingExclusions.0.cidr: "172.16.0.1/12" is not a valid network CIDR',
    ],
    [{ logSeverity: 'loud' }, 'spec.logSeverity'],
  ])('rejects %j', (spec, message) => {
    expect(problemsOf(() => validate(BGPCONFIGURATION, { metadata: meta, spec }))).toContain(message);
  });

  it('accepts standard and large communities', () => {
    const c = validate(BGPCONFIGURATION, {
      metadata: meta,
      spec: { communities: [{ cidr: '10.0.0.0/8', values: ['65000:100', '4200000000:1:2'] }] },
    });
    expect(c.spec.communities[0]?.values).toHaveLength(2);
  });
});

describe('BGPPeer', () => {
  it('accepts a ToR peer with a port, filters and an MD5 secret, and fills the defaults', () => {
    const p = validate(BGPPEER, {
      metadata: { name: 'tor' },
      spec: {
        peerIP: '10.0.0.1:1179',
        asNumber: 65000,
        nodeSelector: 'rack == r1',
        password: { secretKeyRef: { name: 'bgp', key: 'tor' } },
        importFilters: [{ cidr: '0.0.0.0/0', le: 0, action: 'Accept' }],
        exportFilters: [{ cidr: '10.244.0.0/16', ge: 26, le: 32, action: 'Accept' }],
        maxPrefixes: 1000,
      },
    });
    expect(p.spec.sourceAddress).toBe('UseNodeIP');
    expect(p.spec.routeReflectorClient).toBe(false);
    expect(p.spec.longLivedGracefulRestart).toBeUndefined();
    expect(p.spec.gracefulRestartNotification).toBeUndefined();
    expect(parsePeerAddress(p.spec.peerIP!)).toEqual({ ip: '10.0.0.1', port: 1179 });
  });

  it.each([
    [{ asNumber: 65000 }, 'spec.peerIP: peerIP is required unless peerSelector is set'],
    [{ peerIP: '10.0.0.1' }, 'spec.asNumber: asNumber is required'],
    [{ peerIP: '10.0.0.300', asNumber: 1 }, 'spec.peerIP: "10.0.0.300" is not an IP address or ip:port'],
    [{ peerIP: '10.0.0.1:70000', asNumber: 1 }, 'spec.peerIP: "10.0.0.1:70000"'],
    [
      { peerIP: '10.0.0.1', asNumber: 1, node: 'a', nodeSelector: 'x' },
      'spec.nodeSelector: node and nodeSelector',
    ],
    [
      { peerSelector: 'rr', peerIP: '10.0.0.1' },
      'spec.peerIP: peerIP and peerSelector are mutually exclusive',
    ],
    [
      {
        peerIP: '10.0.0.1',
        asNumber: 1,
        exportFilters: [{ cidr: '10.0.0.0/8', ge: 24, le: 20, action: 'Accept' }],
      },
      'spec.exportFilters.0.le: le 20 must not be less than ge 24',
    ],
    [
      { peerIP: '10.0.0.1', asNumber: 1, importFilters: [{ cidr: '10.0.0.0/8', ge: 4, action: 'Reject' }] },
      'spec.importFilters.0.ge: ge 4 must be between /8 and /32',
    ],
    [
      { peerIP: '10.0.0.1', asNumber: 1, importFilters: [{ cidr: '10.0.0.0/8', action: 'Maybe' }] },
      'spec.importFilters.0.action',
    ],
    [{ peerIP: '10.0.0.1', asNumber: 1, sourceAddress: 'eth0' }, 'spec.sourceAddress: "eth0"'],
    [
      { peerIP: '10.0.0.1', asNumber: 1, longLivedGracefulRestart: { staleTime: 0 } },
      'spec.longLivedGracefulRestart.staleTime',
    ],
    [
      { peerIP: '10.0.0.1', asNumber: 1, longLivedGracefulRestart: { staleTime: 16777216 } },
      'spec.longLivedGracefulRestart.staleTime',
    ],
    [
      { peerIP: '10.0.0.1', asNumber: 1, longLivedGracefulRestart: {} },
      'spec.longLivedGracefulRestart.staleTime',
    ],
    [
      { peerIP: '10.0.0.1', asNumber: 1, gracefulRestartNotification: 'yes' },
      'spec.gracefulRestartNotification',
    ],
  ])('rejects %j', (spec, message) => {
    expect(problemsOf(() => validate(BGPPEER, { metadata: meta, spec }))).toContain(message);
  });

  it.each([
    ['10.0.0.1', { ip: '10.0.0.1' }],
    ['10.0.0.1:179', { ip: '10.0.0.1', port: 179 }],
    ['fd00::1', { ip: 'fd00::1' }],
    ['[fd00::1]:1179', { ip: 'fd00::1', port: 1179 }],
    ['[FD00:0::1]:1179', { ip: 'fd00::1', port: 1179 }],
  ])('parses peer address %s', (s, want) => {
    expect(parsePeerAddress(s)).toEqual(want);
  });

  it.each(['[10.0.0.1]:179', '10.0.0.1:0179', '010.0.0.1', '[fd00::1]', 'fe80::1%eth0', '10.0.0.1:'])(
    'refuses peer address %s',
    (s) => {
      expect(parsePeerAddress(s)).toBeUndefined();
    },
  );
});

describe('IPAM objects', () => {
  const block = {
    cidr: '10.244.0.0/30',
    affinity: 'host:n1',
    allocations: [0, null, null, null],
    unallocated: [1, 2, 3],
    attributes: [{ handleID: 'podnet.abc', secondary: { pod: 'p' } }],
  };

  it('accepts a consistent block and defaults strictAffinity and deleted', () => {
    const b = validate(IPAMBLOCK, { metadata: meta, spec: block });
    expect(b.spec.strictAffinity).toBe(false);
    expect(b.spec.deleted).toBe(false);
  });

  it.each([
    [{ ...block, allocations: [0, null] }, 'spec.allocations: has 2 entries, block 10.244.0.0/30 has 4'],
    [
      { ...block, allocations: [3, null, null, null] },
      'spec.allocations.0: attribute index 3 is out of range',
    ],
    [{ ...block, unallocated: [7] }, 'spec.unallocated.0: ordinal 7 is outside block'],
    [{ ...block, affinity: 'n1' }, 'spec.affinity: "n1" must look like host:<node>'],
    [{ ...block, cidr: '10.0.0.0/8' }, 'spec.cidr: "10.0.0.0/8" is too large for a block'],
  ])('rejects an inconsistent block %#', (spec, message) => {
    expect(problemsOf(() => validate(IPAMBLOCK, { metadata: meta, spec }))).toContain(message);
  });

  it('defaults a block affinity to pending and rejects unknown states', () => {
    const a = validate(BLOCKAFFINITY, { metadata: meta, spec: { node: 'n1', cidr: '10.244.0.0/26' } });
    expect(a.spec.state).toBe('pending');
    expect(
      problemsOf(() =>
        validate(BLOCKAFFINITY, {
          metadata: meta,
          spec: { node: 'n1', cidr: '10.244.0.0/26', state: 'gone' },
        }),
      ),
    ).toContain('spec.state');
  });

  it('requires a handle ID and block CIDRs as keys', () => {
    expect(validate(IPAMHANDLE, { metadata: meta, spec: { handleID: 'podnet.c1' } }).spec.block).toEqual({});
    expect(problemsOf(() => validate(IPAMHANDLE, { metadata: meta, spec: { handleID: '' } }))).toContain(
      'spec.handleID',
    );
    expect(
      problemsOf(() => validate(IPAMHANDLE, { metadata: meta, spec: { handleID: 'h', block: { nope: 1 } } })),
    ).toContain('spec.block.nope: "nope"');
  });
});

describe('Node annotations', () => {
  it('reads the node address, AS number and route reflector cluster ID', () => {
    expect(
      parseNodeAnnotations({
        'podnet.io/ipv4-address': '192.168.1.11/24',
        'podnet.io/ipv6-address': 'fd00::11/64',
        'podnet.io/as-number': '65001',
        'podnet.io/route-reflector-cluster-id': '224.0.0.1',
        'other.io/x': 'kept',
      }),
    ).toEqual({
      ipv4: { address: '192.168.1.11', prefixLength: 24 },
      ipv6: { address: 'fd00::11', prefixLength: 64 },
      asNumber: 65001,
      routeReflectorClusterID: '224.0.0.1',
    });
    expect(parseNodeAnnotations(undefined)).toEqual({});
  });

  it.each([
    [{ 'podnet.io/ipv4-address': '192.168.1.11' }, 'not an IPv4 address with a prefix length'],
    [{ 'podnet.io/ipv4-address': 'fd00::1/64' }, 'not an IPv4 address'],
    [{ 'podnet.io/as-number': '70000000000' }, 'not an AS number'],
    [{ 'podnet.io/route-reflector-cluster-id': 'rr1' }, 'not a cluster ID'],
  ])('rejects %j', (annotations, message) => {
    expect(() => parseNodeAnnotations(annotations)).toThrow(message);
  });
});

describe('net', () => {
  it.each([
    ['10.0.0.1', 4],
    ['255.255.255.255', 4],
    ['fd00::1', 6],
    ['::', 6],
    ['::ffff:10.0.0.1', 6],
    ['2001:db8:0:0:0:0:0:1', 6],
  ])('parses %s', (s, family) => {
    expect(parseIp(s)?.family).toBe(family);
  });

  it.each(['10.0.0', '10.0.0.256', '01.0.0.1', 'fd00:::1', '1:2:3:4:5:6:7:8:9', 'g::1', '', 'fe80::1%eth0'])(
    'rejects %s',
    (s) => {
      expect(parseIp(s)).toBeUndefined();
    },
  );

  it('formats IPv6 in RFC 5952 canonical form', () => {
    expect(formatIp(parseIp('2001:db8:0:0:0:0:0:1')!.value, 6)).toBe('2001:db8::1');
    expect(formatIp(parseIp('2001:0:0:1:0:0:0:1')!.value, 6)).toBe('2001:0:0:1::1');
    expect(formatIp(parseIp('1:0:2:3:4:5:6:7')!.value, 6)).toBe('1:0:2:3:4:5:6:7');
  });

  it('round-trips any address through format and parse', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }),
        fc.bigInt({ min: 0n, max: 0xffffffffn }),
        (v6, v4) => {
          expect(parseIp(formatIp(v6, 6))).toEqual({ family: 6, value: v6 });
          expect(parseIp(formatIp(v4, 4))).toEqual({ family: 4, value: v4 });
        },
      ),
    );
  });

  it('keeps the network of a CIDR and rejects host bits in strict mode', () => {
    expect(formatCidr(parseCidr('10.1.2.3/16')!)).toBe('10.1.0.0/16');
    expect(parseCidr('10.1.2.3/16', { strict: true })).toBeUndefined();
  });

  it.each(['10.0.0.0/08', '010.0.0.0/8', '10.0.0.0/ 8', 'fe80::%eth0/64', ' 10.0.0.0/8'])(
    'refuses the CIDR %j',
    (s) => {
      expect(parseCidr(s)).toBeUndefined();
    },
  );
});

describe('label selectors', () => {
  const labels = { zone: 'a', rack: 'r1', 'node-role.kubernetes.io/edge': '' };
  it.each([
    ['all()', true],
    ['', true],
    ['zone=a', true],
    ['zone==b', false],
    ['zone!=b,rack=r1', true],
    ['zone in (a, b)', true],
    ['zone notin (a)', false],
    ['node-role.kubernetes.io/edge', true],
    ['!draining', true],
    ['!zone', false],
  ])('%s matches %s', (sel, want) => {
    expect(matchesSelector(parseSelector(sel), labels)).toBe(want);
  });

  it.each(['zone in (a', 'zone=a b', '=a', 'zone=a,,rack=b'])('rejects %s', (sel) => {
    expect(() => parseSelector(sel)).toThrow(/invalid selector/);
  });
});

describe('fields removed or marked', () => {
  it('reads a stored BlockAffinity or IPAMHandle that still has spec.deleted (older podnet) and drops the field', () => {
    for (const deleted of [false, true, 'true']) {
      const a = validate(BLOCKAFFINITY, {
        metadata: { name: 'n1-10-0-0-0-26' },
        spec: { node: 'n1', cidr: '10.0.0.0/26', state: 'confirmed', deleted },
      });
      expect(a.spec).toEqual({ node: 'n1', cidr: '10.0.0.0/26', state: 'confirmed' });
      const h = validate(IPAMHANDLE, {
        metadata: { name: 'h' },
        spec: { handleID: 'podnet.c1', block: { '10.0.0.0/26': 1 }, deleted },
      });
      expect(h.spec).toEqual({ handleID: 'podnet.c1', block: { '10.0.0.0/26': 1 } });
    }
  });

  it('describes natOutgoing and isolated in the IPPool CRD, and exclusions in BGPConfiguration', () => {
    const crd = (name: string) =>
      JSON.stringify(allCrds().find((c) => (c.metadata as { name: string }).name === name));
    const pools = crd('ippools.podnet.io');
    expect(pools).not.toContain('NOT YET ACTED ON');
    expect(pools).toMatch(/"isolated":{[^}]*"type":"boolean"/);
    expect(pools).toContain('Masquerade this pool');
    expect(crd('bgpconfigurations.podnet.io')).toContain('"natOutgoingExclusions"');
  });
});
