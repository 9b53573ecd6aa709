// What the node agents do: bgp-ts speakers in a full iBGP mesh over real TCP, every one both
// listening and connecting (so connections collide), each announcing its own pod block.
import { cleanupStale, type Netns, NetnsSet, ProcessGroup, vethPair } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wait } from './__fixtures__/daemons.js';
import { SpeakerProc } from './__fixtures__/proc.js';

const lab = new NetnsSet();
const procs = new ProcessGroup();
const nodes: { ns: Netns; addr: string; block: string; sp: SpeakerProc }[] = [];

beforeAll(async () => {
  await cleanupStale();
  const br = await lab.create('meshbr');
  await br.ip('link', 'add', 'br0', 'type', 'bridge');
  await br.ip('link', 'set', 'br0', 'up');
  for (let i = 1; i <= 3; i++) {
    const ns = await lab.create(`mesh${i}`);
    await vethPair(ns, 'eth0', br, `p${i}`);
    await br.ip('link', 'set', `p${i}`, 'master', 'br0');
    const addr = `10.42.0.${i}`;
    await ns.ip('addr', 'add', `${addr}/24`, 'dev', 'eth0');
    const sp = new SpeakerProc(ns, procs, { asn: 64512, routerId: addr, listen: { port: 179 } });
    nodes.push({ ns, addr, block: `10.244.${i}.0/26`, sp });
  }
  for (const n of nodes) {
    for (const m of nodes)
      if (m !== n) await n.sp.addPeer({ address: m.addr, asn: 64512, holdTime: 3, connectRetry: 1 });
    await n.sp.originate(n.block, { nextHop: n.addr });
  }
  await Promise.all(nodes.map((n) => n.sp.start()));
}, 60_000);

afterAll(async () => {
  for (const n of nodes) await n.sp.close(procs).catch(() => {});
  await procs.stopAll();
  await lab.destroy();
});

describe('bgp-ts full iBGP mesh over real TCP', { timeout: 90_000 }, () => {
  it('establishes every session and learns every other node block with that node as next hop', async () => {
    for (const n of nodes) {
      for (const m of nodes) {
        if (m === n) continue;
        const r = await wait(`${m.block} at ${n.addr}`, () => n.sp.lookup(m.block), { timeoutMs: 20_000 });
        expect(r.nextHops).toEqual([m.addr]);
        expect(r.attrs.localPref).toBe(100);
      }
    }
  });

  it('keeps the sessions up (no flapping after collisions)', async () => {
    const before = await Promise.all(nodes.map((n) => n.sp.peers()));
    await new Promise((r) => setTimeout(r, 4000));
    const after = await Promise.all(nodes.map((n) => n.sp.peers()));
    for (const [i, peers] of after.entries()) {
      for (const p of peers) {
        expect(p.state).toBe('established');
        expect(p.since).toBe(before[i]!.find((q) => q.address === p.address)!.since);
      }
    }
  });

  it('withdraws a block from every node when its owner withdraws it', async () => {
    const [a, b, c] = nodes;
    await a!.sp.withdraw(a!.block);
    for (const n of [b!, c!])
      await wait(`${a!.block} gone at ${n.addr}`, async () => (await n.sp.lookup(a!.block)) === null);
  });
});
