// Interop with BIRD 2 in network namespaces: sessions both ways, IPv4 + IPv6 routes both ways,
// withdrawals, hold-timer expiry and graceful restart of our side.
import type { Netns } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bird, birdEstablished, startBird, wait } from './__fixtures__/daemons.js';
import { SpeakerLab } from './__fixtures__/pair.js';
import { SpeakerProc } from './__fixtures__/proc.js';

const lab = new SpeakerLab();
let us: Netns;
let birdNs: Netns;
let bird: Bird;
let speaker: SpeakerProc;

const birdConf = `
router id 10.31.0.2;
protocol device { }
protocol static s4 { ipv4; route 192.0.2.0/24 blackhole; }
protocol static s6 { ipv6; route 2001:db8:ff::/48 blackhole; }
template bgp T {
  hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;
  graceful restart on; graceful restart time 60;
  ipv4 { import all; export where source = RTS_STATIC; };
  ipv6 { import all; export where source = RTS_STATIC; next hop address fd31::2; };
}
# We connect to BIRD (BIRD only listens).
protocol bgp a from T { local 10.31.0.2 as 65002; neighbor 10.31.0.1 as 65001; passive on; }
# BIRD connects to us (we only listen).
protocol bgp b from T { local 10.31.0.12 as 65002; neighbor 10.31.0.11 as 65001; }
# TCP MD5: we connect to c, d connects to us; both sign with the password.
template bgp M {
  hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;
  password "s3cret-key";
  ipv4 { import all; export none; };
}
protocol bgp c from M { local 10.31.0.22 as 65002; neighbor 10.31.0.21 as 65001; passive on; }
protocol bgp d from M { local 10.31.0.32 as 65002; neighbor 10.31.0.31 as 65001; }
# A session over IPv6 transport (we connect).
protocol bgp e {
  local fd31::2 as 65002; neighbor fd31::1 as 65001; passive on;
  hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;
  ipv4 { import all; export none; };
  ipv6 { import all; export none; };
}
`;

const peerA = {
  address: '10.31.0.2',
  asn: 65002,
  sourceAddress: '10.31.0.1',
  holdTime: 3,
  connectRetry: 1,
  nextHopIpv6: 'fd31::1',
  gracefulRestart: { restartTime: 60 },
};
const peerB = { address: '10.31.0.12', asn: 65002, passive: true, holdTime: 3, nextHopIpv6: 'fd31::11' };

function startSpeaker(restarting = false): SpeakerProc {
  return new SpeakerProc(us, lab.procs, {
    asn: 65001,
    routerId: '10.31.0.1',
    listen: { port: 179 },
    restarting,
  });
}

beforeAll(async () => {
  ({ us, them: birdNs } = await lab.pair(
    { us: 'bgpus', them: 'bgpbird', themIf: 'v-bird' },
    {
      us: ['10.31.0.1/24', '10.31.0.11/24', '10.31.0.21/24', '10.31.0.31/24', 'fd31::1/64', 'fd31::11/64'],
      them: ['10.31.0.2/24', '10.31.0.12/24', '10.31.0.22/24', '10.31.0.32/24', 'fd31::2/64'],
    },
  ));
  bird = await startBird(birdNs, lab.procs, birdConf);
  speaker = startSpeaker();
  await speaker.addPeer(peerA);
  await speaker.addPeer(peerB);
  await speaker.originate('10.244.1.0/26');
  await speaker.originate('2001:db8:1::/64');
  await speaker.start();
}, 60_000);

afterAll(() => lab.stop([speaker], [bird?.dir]));

describe('bgp-ts with BIRD 2', { timeout: 90_000 }, () => {
  it('establishes a session that we open and one that BIRD opens', async () => {
    await wait('BIRD protocol a (we connect) Established', () => birdEstablished(bird, 'a'), {
      timeoutMs: 20_000,
    });
    await wait('BIRD protocol b (BIRD connects) Established', () => birdEstablished(bird, 'b'), {
      timeoutMs: 20_000,
    });
    const peers = await speaker.peers();
    expect(peers.map((p) => [p.address, p.state])).toEqual([
      ['10.31.0.2', 'established'],
      ['10.31.0.12', 'established'],
    ]);
  });

  it('signs sessions with TCP MD5, outgoing and on the listener, for peers added at runtime', async () => {
    const md5 = { asn: 65002, holdTime: 3, connectRetry: 1, md5Password: 's3cret-key' };
    await speaker.addPeer({ ...md5, address: '10.31.0.22', sourceAddress: '10.31.0.21' });
    await speaker.addPeer({ ...md5, address: '10.31.0.32', passive: true });
    await wait('BIRD protocol c (MD5, we connect) Established', () => birdEstablished(bird, 'c'), {
      timeoutMs: 20_000,
    });
    await wait('BIRD protocol d (MD5, BIRD connects) Established', () => birdEstablished(bird, 'd'), {
      timeoutMs: 20_000,
    });
    await wait('10.244.1.0/26 from the MD5 session in BIRD', async () =>
      (await bird.route('10.244.1.0/26')).includes('[c '),
    );
    await speaker.call('removePeer', '10.31.0.22');
    await speaker.call('removePeer', '10.31.0.32');
    await wait(
      'MD5 sessions down',
      async () => !(await birdEstablished(bird, 'c')) && !(await birdEstablished(bird, 'd')),
    );
  });

  it('runs a session over IPv6 transport with the session address as IPv6 next hop', async () => {
    await speaker.addPeer({
      address: 'fd31::2',
      asn: 65002,
      holdTime: 3,
      connectRetry: 1,
      sourceAddress: 'fd31::1',
    });
    await wait('BIRD protocol e (IPv6 transport) Established', () => birdEstablished(bird, 'e'), {
      timeoutMs: 20_000,
    });
    await wait('2001:db8:1::/64 from the IPv6 session in BIRD', async () => {
      const out = await bird.cmd('show', 'route', '2001:db8:1::/64', 'protocol', 'e', 'all');
      return out.includes('via fd31::1 ');
    });
    const status = (await speaker.peers()).find((p) => p.address === 'fd31::2');
    expect(status).toMatchObject({ state: 'established', prefixesAdvertised: 2 });
    await speaker.call('removePeer', 'fd31::2');
  });

  it('puts our IPv4 and IPv6 prefixes in BIRD with our next hop', async () => {
    const v4 = await wait('10.244.1.0/26 in BIRD', async () => {
      const out = await bird.route('10.244.1.0/26');
      return out.includes('via 10.31.0.1 ') ? out : undefined;
    });
    expect(v4).toMatch(/BGP\.as_path: 65001/);
    const v6 = await wait('2001:db8:1::/64 in BIRD', async () => {
      const out = await bird.route('2001:db8:1::/64');
      return out.includes('via fd31::1 ') ? out : undefined;
    });
    expect(v6).toMatch(/BGP\.next_hop: fd31::1/);
  });

  it('learns BIRD prefixes into the Loc-RIB with BIRD as next hop', async () => {
    const v4 = await wait('192.0.2.0/24 in our Loc-RIB', () => speaker.lookup('192.0.2.0/24'));
    expect(v4.nextHops.sort()).toEqual(['10.31.0.12', '10.31.0.2']);
    expect(v4.attrs.asPath).toEqual([{ type: 'sequence', asns: [65002] }]);
    const v6 = await wait('2001:db8:ff::/48 in our Loc-RIB', () => speaker.lookup('2001:db8:ff::/48'));
    expect(v6.nextHops).toContain('fd31::2');
  });

  it('propagates withdrawals both ways', async () => {
    await speaker.withdraw('10.244.1.0/26');
    await wait(
      '10.244.1.0/26 gone from BIRD',
      async () => !(await bird.route('10.244.1.0/26')).includes('10.244.1.0/26'),
    );
    await bird.cmd('disable', 's4');
    await wait(
      '192.0.2.0/24 gone from our Loc-RIB',
      async () => (await speaker.lookup('192.0.2.0/24')) === null,
    );
    await bird.cmd('enable', 's4');
    await speaker.originate('10.244.1.0/26');
    await wait('10.244.1.0/26 back in BIRD', async () =>
      (await bird.route('10.244.1.0/26')).includes('via 10.31.0.1 '),
    );
  });

  it('keeps our routes at BIRD across a graceful restart of our side, then drops what we no longer send', async () => {
    await speaker.originate('10.244.2.0/26');
    await wait('10.244.2.0/26 in BIRD', async () =>
      (await bird.route('10.244.2.0/26')).includes('via 10.31.0.1 '),
    );
    await speaker.stop({ graceful: true });
    await speaker.close(lab.procs);
    await wait('BIRD to notice we left', async () => !(await birdEstablished(bird, 'a')));
    // Longer than the 3 s hold time: without graceful restart BIRD would have dropped them by now.
    await new Promise((r) => setTimeout(r, 4000));
    expect(await bird.route('10.244.1.0/26')).toContain('via 10.31.0.1 ');
    expect(await bird.route('10.244.2.0/26')).toContain('via 10.31.0.1 ');
    speaker = startSpeaker(true);
    await speaker.addPeer(peerA);
    await speaker.addPeer(peerB);
    await speaker.originate('10.244.1.0/26');
    await speaker.originate('2001:db8:1::/64');
    await speaker.start();
    await wait('session back', () => birdEstablished(bird, 'a'), { timeoutMs: 20_000 });
    await wait(
      '10.244.2.0/26 flushed after our End-of-RIB',
      async () => !(await bird.route('10.244.2.0/26')).includes('10.244.2.0/26'),
    );
    expect(await bird.route('10.244.1.0/26')).toContain('via 10.31.0.1 ');
  });

  it('tears the session down when the hold timer expires', async () => {
    await wait('session a established', async () => (await speaker.peers())[0]?.state === 'established', {
      timeoutMs: 20_000,
    });
    process.kill(bird.pid, 'SIGSTOP');
    try {
      const p = await wait(
        'our side to expire the hold timer',
        async () => {
          const s = (await speaker.peers())[0];
          return s && s.state !== 'established' && s.lastError?.includes('HOLD_TIMER_EXPIRED')
            ? s
            : undefined;
        },
        { timeoutMs: 10_000 },
      );
      expect(p.lastError).toBe('sent HOLD_TIMER_EXPIRED/UNSPECIFIC');
    } finally {
      process.kill(bird.pid, 'SIGCONT');
    }
    expect(await speaker.lookup('192.0.2.0/24').then((r) => r?.nextHops.includes('10.31.0.2') ?? false)).toBe(
      false,
    );
  });
});
