// RFC 8538 (the N bit) with FRR in network namespaces: both sides advertise Graceful Restart with
// the N bit, then our speaker stops answering (SIGSTOP) until FRR's hold timer expires. FRR sends
// Hold Timer Expired and, the N bit having been negotiated, keeps our routes stale instead of
// withdrawing them; when we answer again the session comes back and FRR takes them fresh.
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

const bgpdConf = `frr defaults traditional
hostname frr
log stdout informational
!
router bgp 65004
 bgp router-id 10.34.0.2
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp graceful-restart
 bgp graceful-restart notification
 neighbor 10.34.0.1 remote-as 65001
 neighbor 10.34.0.1 timers 1 3
 neighbor 10.34.0.1 timers connect 1
!
`;

const peer: PeerConfig = {
  address: '10.34.0.2',
  asn: 65004,
  holdTime: 3,
  connectRetry: 1,
  gracefulRestart: { restartTime: 120, notification: true },
};

interface FrrRoute {
  paths?: { valid?: boolean; stale?: boolean }[];
}

const frrRoute = (p: string) => frr.json<FrrRoute>(`show bgp ipv4 unicast ${p} json`);
const state = async () =>
  (await frr.json<{ ipv4Unicast?: { peers?: Record<string, { state: string }> } }>('show bgp summary json'))
    .ipv4Unicast?.peers?.['10.34.0.1']?.state;

beforeAll(async () => {
  ({ us, them: frrNs } = await lab.pair(
    { us: 'nbitus', them: 'nbitfrr', themIf: 'v-frr' },
    { us: ['10.34.0.1/24'], them: ['10.34.0.2/24'] },
  ));
  frr = await startFrr(frrNs, lab.procs, bgpdConf);
  speaker = new SpeakerProc(us, lab.procs, { asn: 65001, routerId: '10.34.0.1', listen: { port: 179 } });
  await speaker.addPeer(peer);
  await speaker.originate('10.244.9.0/26');
  await speaker.start();
}, 60_000);

afterAll(() => lab.stop([speaker], [frr?.dir]));

describe('RFC 8538 with FRR', { timeout: 90_000 }, () => {
  it('FRR keeps our routes stale when its hold timer expires, and takes them fresh when we are back', async () => {
    await wait('FRR neighbor Established', async () => (await state()) === 'Established', {
      timeoutMs: 30_000,
    });
    await wait('10.244.9.0/26 in FRR', async () => (await frrRoute('10.244.9.0/26')).paths?.[0]);
    const nbr = await frr.vtysh('show bgp neighbors 10.34.0.1');
    expect(nbr).toMatch(/Graceful Restart Capability: advertised and received/);
    expect(nbr).toMatch(/N bit: True/);

    speaker.child.kill('SIGSTOP');
    try {
      await wait('FRR leaves Established (hold timer)', async () => (await state()) !== 'Established', {
        timeoutMs: 30_000,
      });
      const last = await frr.vtysh('show bgp neighbors 10.34.0.1');
      expect(last).toMatch(/Hold Timer Expired/);
      const r = await wait('10.244.9.0/26 stale in FRR', async () => {
        const p = (await frrRoute('10.244.9.0/26')).paths?.[0];
        return p?.stale ? p : undefined;
      });
      expect(r.valid).toBe(true);
    } finally {
      speaker.child.kill('SIGCONT');
    }
    await wait('FRR neighbor Established again', async () => (await state()) === 'Established', {
      timeoutMs: 60_000,
    });
    await wait('10.244.9.0/26 fresh in FRR', async () => {
      const p = (await frrRoute('10.244.9.0/26')).paths?.[0];
      return p && !p.stale;
    });
  });
});
