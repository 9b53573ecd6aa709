// The BGP adapter's view of the Loc-RIB: the learned best paths kept from the speaker's best-path
// events (not the node's own), and the change callback called only for the prefixes it asks for.
// A real bgp-ts speaker over loopback TCP announces and withdraws the paths.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loopbackPeer, startAdapter, torPeer } from '../__fixtures__/loopback-peer.js';
import { BgpAdapter } from './bgp.js';

const until = async (what: string, f: () => boolean) => {
  for (let i = 0; i < 500 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!f()) throw new Error(`timed out waiting for ${what}`);
};
const tick = () => new Promise((r) => setImmediate(r));

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

describe('BgpAdapter rib and onRibChange', () => {
  it('keeps the learned best paths, and calls back only for relevant prefixes and session changes', async () => {
    const peer = await loopbackPeer({ '10.50.0.0/26': '10.77.0.5', '10.50.0.64/26': '10.77.0.5' });
    cleanup.push(() => peer.stop());
    const adapter = new BgpAdapter({ logger: pino({ level: 'silent' }), restarting: false });
    let calls = 0;
    let all = 0;
    adapter.onRibChange(
      () => calls++,
      (prefix) => prefix.startsWith('10.50.'),
    );
    adapter.onRibChange(() => all++);
    cleanup.push(() => adapter.stop({ graceful: false }));
    await startAdapter(adapter);
    // The node's own route is never in rib(), also where a peer sends the same prefix.
    await adapter.originate({
      prefix: '10.50.0.64/26',
      nextHop: '127.0.0.1',
      communities: [],
      largeCommunities: [],
      source: 'block',
    });
    await adapter.addPeer(torPeer(peer));
    await until('the learned path', () => adapter.rib().length === 1);
    expect(adapter.rib()).toEqual([{ prefix: '10.50.0.0/26', nextHops: ['10.77.0.5'], from: '127.0.0.1' }]);
    await tick();
    const [c0, a0] = [calls, all];
    expect(c0).toBeGreaterThan(0);

    // Another node's Service address: in rib(), but no call for the callback that does not want it.
    peer.originate('198.18.0.5/32', { nextHop: '10.77.0.6' });
    await until('the /32 learned', () => adapter.rib().some((e) => e.prefix === '198.18.0.5/32'));
    await tick();
    expect(calls).toBe(c0);
    expect(all).toBeGreaterThan(a0);
    // A path in the pools: a call.
    peer.originate('10.50.1.0/26', { nextHop: '10.77.0.5' });
    await until('the call', () => calls > c0);
    // Withdrawals leave rib(); the array is the same object until something changes.
    peer.withdraw('198.18.0.5/32');
    peer.withdraw('10.50.0.0/26');
    await until('withdrawn', () => adapter.rib().length === 1);
    expect(adapter.rib()).toEqual([{ prefix: '10.50.1.0/26', nextHops: ['10.77.0.5'], from: '127.0.0.1' }]);
    expect(adapter.rib()).toBe(adapter.rib());
    // A session change reaches every callback.
    await tick();
    const c1 = calls;
    await peer.stop();
    await until('the session change', () => calls > c1);
    await until('the peer routes gone', () => adapter.rib().length === 0);
  });
});
