// One way to parse an address: every parser in podnet's packages gives @podnet/net's answer on the
// same text, valid or not (random addresses, leading zeros, zones, IPv4-mapped IPv6, upper-case
// hex, `::`, dotted IPv4 tails, out-of-range values, whitespace, host bits, ports). bgp-ts keeps
// its own parser (it stays standalone) and is held to the same answers. Pure: no lab, no kernel.
import { ip as agentIp, splitPeerIP } from '@podnet/agent';
import { encodeArpFrame } from '@podnet/arp';
import { wire } from '@podnet/bgp';
import * as k8s from '@podnet/k8s';
import * as lab from '@podnet/lab';
import * as net from '@podnet/net';
import * as routes from '@podnet/routes';
import * as rtnl from '@podnet/rtnetlink';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addressText, addrPortText, cidrText } from '../../packages/net/src/__fixtures__/inputs.ts';

const RUNS = 4000;
const text = (ip: net.IpAddr | undefined) => ip && net.formatIp(ip);
const cidrText_ = (c: net.Cidr | undefined) => c && net.formatCidr(c);
const attempt = <T>(f: () => T): T | undefined => {
  try {
    return f();
  } catch {
    return undefined;
  }
};
/** Holds `theirs(s)` to `ours(s)` on every generated input, naming the input on a mismatch. */
function agree<T>(arb: fc.Arbitrary<string>, theirs: (s: string) => T, ours: (s: string) => T) {
  fc.assert(
    fc.property(arb, (s) => {
      expect(theirs(s), JSON.stringify(s)).toEqual(ours(s));
    }),
    { numRuns: RUNS },
  );
}

const netIp = (s: string) => net.parseIp(s);
const netCidr = (s: string, hostBits: net.HostBits, bare = false) => net.parseCidr(s, { hostBits, bare });
const netPeer = (s: string) => net.parseAddrPort(s, { port: 'optional' });

describe('@podnet/k8s (schemas, ipam)', () => {
  it('parseIp', () =>
    agree(
      addressText,
      (s) => k8s.parseIp(s),
      (s) => {
        const ip = netIp(s);
        return ip && { family: ip.family, value: ip.value };
      },
    ));
  it('parseCidr, network and strict', () => {
    agree(
      cidrText,
      (s) => {
        const c = k8s.parseCidr(s);
        return c && k8s.formatCidr(c);
      },
      (s) => cidrText_(netCidr(s, 'clear')),
    );
    agree(
      cidrText,
      (s) => {
        const c = k8s.parseCidr(s, { strict: true });
        return c && k8s.formatCidr(c);
      },
      (s) => cidrText_(netCidr(s, 'reject')),
    );
  });
  it('formatIp', () =>
    agree(
      addressText,
      (s) => {
        const ip = k8s.parseIp(s);
        return ip && k8s.formatIp(ip.value, ip.family);
      },
      (s) => text(netIp(s)),
    ));
  it('parsePeerAddress (BGPPeer.peerIP)', () =>
    agree(
      addrPortText,
      (s) => {
        const p = k8s.parsePeerAddress(s);
        return p && { ip: text(netIp(p.ip)), port: p.port };
      },
      (s) => {
        const p = netPeer(s);
        return p && { ip: text(p.ip), port: p.port };
      },
    ));
});

describe('@podnet/routes', () => {
  it('parseAddr', () =>
    agree(
      addressText,
      (s) => routes.parseAddr(s)?.text,
      (s) => text(netIp(s)),
    ));
  it('tryParsePrefix and parsePrefix', () => {
    agree(
      cidrText,
      (s) => routes.tryParsePrefix(s)?.text,
      (s) => cidrText_(netCidr(s, 'clear', true)),
    );
    agree(
      cidrText,
      (s) => attempt(() => routes.parsePrefix(s).text),
      (s) => cidrText_(netCidr(s, 'clear', true)),
    );
  });
});

describe('@podnet/rtnetlink', () => {
  it('parsePrefix (interface addresses and route destinations)', () =>
    agree(
      cidrText,
      (s) =>
        attempt(() => {
          const p = rtnl.parsePrefix(s, 'dst');
          return `${text(netIp(p.addr)) ?? `unparsable ${p.addr}`}/${p.len}`;
        }),
      (s) => cidrText_(netCidr(s, 'keep', true)),
    ));
});

describe('@podnet/arp', () => {
  const frame = (spa: string) =>
    encodeArpFrame({
      ethDst: 'ff:ff:ff:ff:ff:ff',
      ethSrc: 'ee:ee:ee:ee:ee:ee',
      op: 1,
      sha: 'ee:ee:ee:ee:ee:ee',
      spa,
      tha: '00:00:00:00:00:00',
      tpa: '169.254.1.1',
    });
  it('IPv4 addresses of ARP frames', () =>
    agree(
      addressText,
      (s) => attempt(() => [...frame(s).subarray(28, 32)].join('.')),
      (s) => {
        const ip = netIp(s);
        return ip?.family === 4 ? net.formatIp(ip) : undefined;
      },
    ));
});

describe('@podnet/agent', () => {
  it('isIPv4, isIPv6, ipValue', () => {
    agree(addressText, agentIp.isIPv4, (s) => netIp(s)?.family === 4);
    agree(addressText, agentIp.isIPv6, (s) => netIp(s)?.family === 6);
    agree(addressText, agentIp.ipValue, (s) => {
      const ip = netIp(s);
      return ip && { family: ip.family, value: ip.value };
    });
  });
  it('parseCidr', () =>
    agree(
      cidrText,
      (s) => agentIp.parseCidr(s)?.text,
      (s) => cidrText_(netCidr(s, 'clear', true)),
    ));
  it('splitPeerIP (BGPPeer.peerIP)', () =>
    agree(
      addrPortText,
      (s) => {
        const p = splitPeerIP(s);
        return p && { ip: text(netIp(p.address)), port: p.port };
      },
      (s) => {
        const p = netPeer(s);
        return p && { ip: text(p.ip), port: p.port };
      },
    ));
});

describe('@podnet/lab (compose.yaml)', () => {
  it('parseCidr, ipToBigInt', () => {
    agree(
      cidrText,
      (s) =>
        attempt(() => {
          const c = lab.parseCidr('networks.fabric.subnet', s);
          return `${c.address}/${c.prefixLength}`;
        }),
      (s) => cidrText_(netCidr(s, 'keep')),
    );
    agree(
      addressText,
      (s) => attempt(() => lab.ipToBigInt(s)),
      (s) => netIp(s)?.value,
    );
  });
});

describe('bgp-ts (its own parser, held to the same answers)', () => {
  const bytes = (ip: net.IpAddr | undefined) => ip && [...net.ipToBytes(ip)];
  it('parseIpv4, parseIpv6, addressFamily', () => {
    agree(
      addressText,
      (s) => wire.parseIpv4(s),
      (s) => {
        const ip = netIp(s);
        return ip?.family === 4 ? Number(ip.value) : undefined;
      },
    );
    agree(
      addressText,
      (s) => {
        const b = wire.parseIpv6(s);
        return b && [...b];
      },
      (s) => {
        const ip = netIp(s);
        return ip?.family === 6 ? bytes(ip) : undefined;
      },
    );
    agree(
      addressText,
      (s) => wire.addressFamily(s),
      (s) => {
        const ip = netIp(s);
        return ip ? (ip.family === 4 ? 1 : 2) : undefined;
      },
    );
  });
  it('formatIpv6', () =>
    agree(
      addressText,
      (s) => {
        const b = wire.parseIpv6(s);
        return b && wire.formatIpv6(b);
      },
      (s) => {
        const ip = netIp(s);
        return ip?.family === 6 ? net.formatIp(ip) : undefined;
      },
    ));
  it('parsePrefix and canonicalPrefix (host bits refused)', () => {
    agree(
      cidrText,
      (s) => attempt(() => wire.canonicalPrefix(s)),
      (s) => cidrText_(netCidr(s, 'reject')),
    );
    agree(
      cidrText,
      (s) =>
        attempt(() => {
          const p = wire.parsePrefix(s);
          return { bytes: [...p.bytes], len: p.len };
        }),
      (s) => {
        const c = netCidr(s, 'reject');
        return c && { bytes: bytes({ family: c.family, value: c.addr }), len: c.len };
      },
    );
  });
});
