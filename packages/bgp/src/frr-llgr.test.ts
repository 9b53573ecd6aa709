// Long-lived graceful restart (RFC 9494) with FRR in network namespaces, both ways: each side
// dies without a word (SIGKILL), and the other keeps its routes past the restart time as
// LLGR_STALE, drops those marked NO_LLGR, and (FRR) takes them back fresh after our End-of-RIB.
import type { Netns } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Frr, startFrr, wait } from './__fixtures__/daemons.js';
import { SpeakerLab } from './__fixtures__/pair.js';
import { SpeakerProc } from './__fixtures__/proc.js';
import type { PeerConfig } from './speaker.js';

const lab = new SpeakerLab();
let us: Netns;
let frrNs: Netns;
let frr: Frr;
let speaker: SpeakerProc;
const speakers: SpeakerProc[] = [];

// FRR: graceful restart with a 1 s restart time, then a long-lived stale time of an hour. One
// network carries NO_LLGR (65535:7).
const bgpdConf = `frr defaults traditional
hostname frr
log stdout informational
!
route-map NOLLGR permit 10
 set community 65535:7
!
router bgp 65004
 bgp router-id 10.33.0.2
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp graceful-restart
 bgp graceful-restart restart-time 1
 bgp long-lived-graceful-restart stale-time 3600
 neighbor 10.33.0.1 remote-as 65001
 neighbor 10.33.0.1 timers 1 3
 neighbor 10.33.0.1 timers connect 1
 !
 address-family ipv4 unicast
  network 198.51.100.0/24
  network 203.0.113.0/24 route-map NOLLGR
  neighbor 10.33.0.1 send-community
 exit-address-family
!
`;

const peer: PeerConfig = {
  address: '10.33.0.2',
  asn: 65004,
  holdTime: 3,
  connectRetry: 1,
  gracefulRestart: { restartTime: 1 },
  longLivedGracefulRestart: { staleTime: 3600 },
};

interface FrrRoute {
  paths?: { valid?: boolean; stale?: boolean; community?: { string: string } }[];
}

async function startSpeaker(restarting: boolean): Promise<SpeakerProc> {
  const s = new SpeakerProc(us, lab.procs, {
    asn: 65001,
    routerId: '10.33.0.1',
    listen: { port: 179 },
    restarting,
  });
  speakers.push(s);
  await s.addPeer(peer);
  await s.originate('10.244.7.0/26');
  await s.originate('10.244.8.0/26', { communities: ['65535:7'] });
  await s.start();
  return s;
}

const frrRoute = (p: string) => frr.json<FrrRoute>(`show bgp ipv4 unicast ${p} json`);
const established = async () =>
  (await frr.json<{ ipv4Unicast?: { peers?: Record<string, { state: string }> } }>('show bgp summary json'))
    .ipv4Unicast?.peers?.['10.33.0.1']?.state === 'Established';

beforeAll(async () => {
  ({ us, them: frrNs } = await lab.pair(
    { us: 'llgrus', them: 'llgrfrr', themIf: 'v-frr' },
    { us: ['10.33.0.1/24'], them: ['10.33.0.2/24'] },
  ));
  frr = await startFrr(frrNs, lab.procs, bgpdConf);
  speaker = await startSpeaker(false);
}, 60_000);

afterAll(() => lab.stop(speakers, [frr?.dir]));

describe('long-lived graceful restart with FRR', { timeout: 90_000 }, () => {
  it('negotiates the capability both ways', async () => {
    await wait('FRR neighbor Established', established, { timeoutMs: 30_000 });
    const out = await frr.vtysh('show bgp neighbors 10.33.0.1');
    expect(out).toMatch(/Long-lived Graceful Restart: advertised and received/);
    await wait('10.244.7.0/26 in FRR', async () => (await frrRoute('10.244.7.0/26')).paths?.[0]);
    await wait('198.51.100.0/24 and 203.0.113.0/24 with us', async () => {
      const [a, b] = [await speaker.lookup('198.51.100.0/24'), await speaker.lookup('203.0.113.0/24')];
      return a && b;
    });
  });

  it('FRR keeps our routes as LLGR_STALE past our restart time when we die, and drops NO_LLGR ones', async () => {
    await wait('10.244.8.0/26 in FRR', async () => (await frrRoute('10.244.8.0/26')).paths?.[0]);
    speaker.child.kill('SIGKILL');
    const p = await wait('FRR marks 10.244.7.0/26 llgr-stale', async () => {
      const r = (await frrRoute('10.244.7.0/26')).paths?.[0];
      return r?.community?.string.includes('llgr-stale') ? r : undefined;
    });
    expect(p.valid).toBe(true);
    await wait(
      '10.244.8.0/26 (NO_LLGR) gone from FRR',
      async () => !(await frrRoute('10.244.8.0/26')).paths?.length,
    );
    expect((await frrRoute('10.244.7.0/26')).paths?.length).toBe(1);
  });

  it('FRR takes our routes back fresh after we return and send End-of-RIB', async () => {
    speaker = await startSpeaker(true);
    await wait('FRR neighbor Established again', established, { timeoutMs: 30_000 });
    await wait('10.244.7.0/26 in FRR without llgr-stale', async () => {
      const r = (await frrRoute('10.244.7.0/26')).paths?.[0];
      return r && !r.community?.string.includes('llgr-stale') && !r.stale;
    });
    await wait('10.244.8.0/26 back in FRR', async () => (await frrRoute('10.244.8.0/26')).paths?.[0]);
  });

  it('we keep FRR routes as LLGR_STALE past its restart time when its bgpd dies, and drop NO_LLGR ones', async () => {
    await wait('198.51.100.0/24 and 203.0.113.0/24 with us', async () => {
      const [a, b] = [await speaker.lookup('198.51.100.0/24'), await speaker.lookup('203.0.113.0/24')];
      return a && b;
    });
    process.kill(frr.pid, 'SIGKILL');
    const r = await wait('198.51.100.0/24 LLGR_STALE with us', async () => {
      const e = await speaker.lookup('198.51.100.0/24');
      return e?.attrs.communities?.includes('65535:6') ? e : undefined;
    });
    expect(r.stale).toBe(true);
    expect(r.nextHops).toEqual(['10.33.0.2']);
    expect(await speaker.lookup('203.0.113.0/24')).toBeNull();
    const [st] = await speaker.peers();
    expect(st?.state).not.toBe('established');
    expect(st?.staleRoutes).toBe(1);
  });
});
