import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupStale, NetnsSet, vethPair, waitFor } from './index.js';

const set = new NetnsSet();
beforeAll(() => cleanupStale());
afterAll(() => set.destroy());

describe('testkit namespaces', () => {
  it('creates two namespaces joined by a veth pair that can ping each other', async () => {
    const a = await set.create('tka');
    const b = await set.create('tkb');
    await vethPair(a, 'va', b, 'vb');
    await a.ip('addr', 'add', '10.99.0.1/30', 'dev', 'va');
    await b.ip('addr', 'add', '10.99.0.2/30', 'dev', 'vb');
    const r = await waitFor(
      'ping from a to b',
      async () => (await a.exec('ping', ['-c1', '-W1', '10.99.0.2'])).code === 0,
    );
    expect(r).toBe(true);
    const links = await b.ipJson<{ ifname: string }[]>('link', 'show', 'vb');
    expect(links[0]?.ifname).toBe('vb');
  });

  it('deletes what it created on destroy', async () => {
    const extra = new NetnsSet();
    const ns = await extra.create('tkdel');
    await extra.destroy();
    const r = await ns.exec('true', []);
    expect(r.code).not.toBe(0);
  });
});
