// Connections from an address with no peer, against real sockets in network namespaces: a client
// connects 1,000 times; the speaker must close every one (fd count) and still stop cleanly.
import type { Netns } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wait } from './__fixtures__/daemons.js';
import { SpeakerLab } from './__fixtures__/pair.js';
import { SpeakerProc } from './__fixtures__/proc.js';

const lab = new SpeakerLab();
let them: Netns;
let speaker: SpeakerProc;

beforeAll(async () => {
  const pair = await lab.pair(
    { us: 'refus', them: 'refthem', themIf: 'v-them' },
    { us: ['10.34.0.1/24'], them: ['10.34.0.3/24'] },
  );
  them = pair.them;
  speaker = new SpeakerProc(pair.us, lab.procs, { asn: 65001, routerId: '10.34.0.1', listen: { port: 179 } });
  await speaker.addPeer({ address: '10.34.0.2', asn: 65002, passive: true });
  await speaker.start();
}, 60_000);

afterAll(() => lab.stop([speaker]));

// 1,000 connections from 10.34.0.3 (no peer there), 20 at a time; each sends an OPEN-sized blob
// and waits for the speaker to close. Prints how many closed.
const churn = `
const net = require('node:net');
let done = 0, next = 0;
function one() {
  if (next >= 1000) return Promise.resolve();
  next++;
  return new Promise((res) => {
    const s = net.connect({ host: '10.34.0.1', port: 179, localAddress: '10.34.0.3' });
    s.on('connect', () => s.write(Buffer.alloc(29, 0xff)));
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => { done++; res(); });
    s.setTimeout(10000, () => s.destroy());
  }).then(one);
}
Promise.all(Array.from({ length: 20 }, one)).then(() => { console.log(done); process.exit(0); });
`;

describe('connections from an address with no peer', { timeout: 60_000 }, () => {
  it('closes 1,000 refused connections: the fd count comes back, and stop() leaves no handle open', async () => {
    const before = await speaker.call<number>('fds');
    const client = lab.procs.add(them.spawn(process.execPath, ['-e', churn]));
    let out = '';
    client.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await new Promise<void>((r) => client.once('exit', () => r()));
    expect(out.trim()).toBe('1000');
    await wait('fd count back to where it was', async () => (await speaker.call<number>('fds')) <= before);
    await speaker.stop();
    const sockets = (rs: string[]) => rs.filter((r) => r.startsWith('TCP'));
    await wait('no socket left', async () => sockets(await speaker.call<string[]>('resources')).length === 0);
  });
});
