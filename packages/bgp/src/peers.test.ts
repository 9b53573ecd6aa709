// Peers keyed by address and port, against real sockets in network namespaces: two BIRDs on one
// address at ports 179 and 1790.
import type { Netns } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bird, birdEstablished, startBird, wait } from './__fixtures__/daemons.js';
import { SpeakerLab } from './__fixtures__/pair.js';
import { SpeakerProc } from './__fixtures__/proc.js';

const lab = new SpeakerLab();
let us: Netns;
let them: Netns;
let speaker: SpeakerProc;
const birds: Bird[] = [];

const birdConf = (port: number, route: string) => `
router id 10.33.0.2;
protocol device { }
protocol static s4 { ipv4; route ${route} blackhole; }
protocol bgp speaker {
  local 10.33.0.2 port ${port} as 65002; neighbor 10.33.0.1 as 65001; passive on;
  hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;
  ipv4 { import all; export where source = RTS_STATIC; };
}
`;

beforeAll(async () => {
  ({ us, them } = await lab.pair(
    { us: 'peerus', them: 'peerthem', themIf: 'v-them' },
    { us: ['10.33.0.1/24'], them: ['10.33.0.2/24'] },
  ));
  birds.push(await startBird(them, lab.procs, birdConf(179, '192.0.2.0/24')));
  birds.push(await startBird(them, lab.procs, birdConf(1790, '198.51.100.0/24')));
  speaker = new SpeakerProc(us, lab.procs, { asn: 65001, routerId: '10.33.0.1', listen: { port: 179 } });
  const peer = { address: '10.33.0.2', asn: 65002, holdTime: 3, connectRetry: 1 };
  await speaker.addPeer({ ...peer, port: 179 });
  await speaker.addPeer({ ...peer, port: 1790 });
  await speaker.start();
}, 60_000);

afterAll(() => lab.stop([speaker]));

describe('peers keyed by address and port', { timeout: 60_000 }, () => {
  it('runs two sessions with two daemons on one address at different ports', async () => {
    await wait('both sessions', async () => {
      const ps = await speaker.peers();
      return ps.length === 2 && ps.every((p) => p.state === 'established');
    });
    expect((await speaker.peers()).map((p) => p.key).sort()).toEqual(['10.33.0.2:179', '10.33.0.2:1790']);
    await wait(
      'both routes',
      async () => !!(await speaker.lookup('192.0.2.0/24')) && !!(await speaker.lookup('198.51.100.0/24')),
    );
    expect(await birdEstablished(birds[0]!, 'speaker')).toBe(true);
    expect(await birdEstablished(birds[1]!, 'speaker')).toBe(true);
  });

  it('removes one of them by its port and leaves the other alone', async () => {
    await expect(speaker.call('removePeer', '10.33.0.2')).rejects.toThrow(/port/);
    await speaker.call('removePeer', '10.33.0.2', 1790);
    await wait('route of the removed peer gone', async () => !(await speaker.lookup('198.51.100.0/24')));
    const ps = await speaker.peers();
    expect(ps.map((p) => [p.key, p.state])).toEqual([['10.33.0.2:179', 'established']]);
    expect(await speaker.lookup('192.0.2.0/24')).not.toBeNull();
  });
});
