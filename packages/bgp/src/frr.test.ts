// Interop with FRR (zebra + bgpd) in network namespaces: both sides connect at once (collision
// resolution), IPv4 + IPv6 routes both ways with next hops, withdrawals, and Cease on removal.
import type { Netns } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Frr, startFrr, wait } from './__fixtures__/daemons.js';
import { SpeakerLab } from './__fixtures__/pair.js';
import { SpeakerProc } from './__fixtures__/proc.js';

const lab = new SpeakerLab();
let us: Netns;
let frrNs: Netns;
let frr: Frr;
let speaker: SpeakerProc;

const bgpdConf = `frr defaults traditional
hostname frr
log stdout informational
!
router bgp 65003
 bgp router-id 10.32.0.2
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp graceful-restart
 neighbor 10.32.0.1 remote-as 65001
 neighbor 10.32.0.1 timers 1 3
 neighbor 10.32.0.1 timers connect 1
 !
 address-family ipv4 unicast
  network 198.51.100.0/24
 exit-address-family
 !
 address-family ipv6 unicast
  neighbor 10.32.0.1 activate
  network 2001:db8:fe::/48
 exit-address-family
!
`;

interface FrrRoute {
  paths?: { valid?: boolean; nexthops?: { ip: string; scope?: string }[]; aspath?: { string: string } }[];
}

beforeAll(async () => {
  ({ us, them: frrNs } = await lab.pair(
    { us: 'bgpus', them: 'bgpfrr', themIf: 'v-frr' },
    { us: ['10.32.0.1/24', 'fd32::1/64'], them: ['10.32.0.2/24', 'fd32::2/64'] },
  ));
  frr = await startFrr(frrNs, lab.procs, bgpdConf);
  speaker = new SpeakerProc(us, lab.procs, { asn: 65001, routerId: '10.32.0.1', listen: { port: 179 } });
  await speaker.addPeer({
    address: '10.32.0.2',
    asn: 65003,
    holdTime: 3,
    connectRetry: 1,
    nextHopIpv6: 'fd32::1',
    gracefulRestart: { restartTime: 60 },
  });
  await speaker.originate('10.244.7.0/26');
  await speaker.originate('2001:db8:7::/64');
  await speaker.start();
}, 60_000);

afterAll(() => lab.stop([speaker], [frr?.dir]));

describe('bgp-ts with FRR', { timeout: 90_000 }, () => {
  it('establishes a session while both sides try to connect (collision resolution)', async () => {
    await wait(
      'FRR neighbor Established',
      async () => {
        const s = await frr.json<{ ipv4Unicast?: { peers?: Record<string, { state: string }> } }>(
          'show bgp summary json',
        );
        return s.ipv4Unicast?.peers?.['10.32.0.1']?.state === 'Established';
      },
      { timeoutMs: 30_000 },
    );
    const [p] = await speaker.peers();
    expect(p).toMatchObject({ state: 'established', type: 'ebgp', routerId: '10.32.0.2', holdTime: 3 });
  });

  it('puts our IPv4 and IPv6 prefixes in FRR with our next hop', async () => {
    const v4 = await wait('10.244.7.0/26 in FRR', async () => {
      const r = await frr.json<FrrRoute>('show bgp ipv4 unicast 10.244.7.0/26 json');
      return r.paths?.[0];
    });
    expect(v4.nexthops?.[0]?.ip).toBe('10.32.0.1');
    expect(v4.aspath?.string).toBe('65001');
    const v6 = await wait('2001:db8:7::/64 in FRR', async () => {
      const r = await frr.json<FrrRoute>('show bgp ipv6 unicast 2001:db8:7::/64 json');
      return r.paths?.[0];
    });
    expect(v6.nexthops?.map((n) => n.ip)).toContain('fd32::1');
  });

  it('learns FRR prefixes into the Loc-RIB', async () => {
    const v4 = await wait('198.51.100.0/24 in our Loc-RIB', () => speaker.lookup('198.51.100.0/24'));
    expect(v4.nextHops).toEqual(['10.32.0.2']);
    expect(v4.attrs.asPath).toEqual([{ type: 'sequence', asns: [65003] }]);
    const v6 = await wait('2001:db8:fe::/48 in our Loc-RIB', () => speaker.lookup('2001:db8:fe::/48'));
    expect(v6.nextHops[0]).toBe('fd32::2');
  });

  it('propagates withdrawals both ways', async () => {
    await speaker.withdraw('2001:db8:7::/64');
    await wait('2001:db8:7::/64 gone from FRR', async () => {
      const r = await frr.json<FrrRoute>('show bgp ipv6 unicast 2001:db8:7::/64 json');
      return !r.paths?.length;
    });
    await frr.vtysh(
      'configure terminal\nrouter bgp 65003\naddress-family ipv4 unicast\nno network 198.51.100.0/24',
    );
    await wait(
      '198.51.100.0/24 gone from our Loc-RIB',
      async () => (await speaker.lookup('198.51.100.0/24')) === null,
    );
  });

  it('sends Cease/Peer De-configured when the peer is removed', async () => {
    await speaker.call('removePeer', '10.32.0.2');
    const n = await wait('FRR to record our NOTIFICATION', async () => {
      const out = await frr.vtysh('show bgp neighbors 10.32.0.1');
      return /Peer De-configured/i.test(out) ? out : undefined;
    });
    expect(n).toMatch(/Cease/);
  });

  it('closes with Cease/Maximum Number of Prefixes Reached when FRR sends more than maxPrefixes', async () => {
    await frr.vtysh(
      'configure terminal\nrouter bgp 65003\naddress-family ipv4 unicast\nnetwork 198.51.100.0/24',
    );
    await speaker.addPeer({ address: '10.32.0.2', asn: 65003, holdTime: 3, connectRetry: 1, maxPrefixes: 1 });
    const n = await wait(
      'FRR to record the max-prefix NOTIFICATION',
      async () => {
        const out = await frr.vtysh('show bgp neighbors 10.32.0.1');
        return /Maximum Number of Prefixes Reached/i.test(out) ? out : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(n).toMatch(/Cease/i);
    const [p] = await speaker.peers();
    expect(p?.lastError).toBe('sent CEASE/MAX_PREFIXES');
  });
});
