import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupStale, NetnsSet } from './index.js';
import { tunnelIntoNetns } from './tunnel.js';

const set = new NetnsSet();
beforeAll(() => cleanupStale());
afterAll(() => set.destroy());

describe('tunnelIntoNetns', () => {
  it('lets a process inside a namespace reach a server of the caller through 127.0.0.1', async () => {
    const server = createServer((_req, res) => res.end('hello from the root namespace'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const ns = await set.create('tunnel');
    const t = await tunnelIntoNetns(ns, 7443, { host: '127.0.0.1', port });
    try {
      const out = await ns.run(process.execPath, [
        '-e',
        "fetch('http://127.0.0.1:7443/').then((r) => r.text()).then((t) => process.stdout.write(t))",
      ]);
      expect(out).toBe('hello from the root namespace');
    } finally {
      await t.close();
      server.close();
    }
  });
});
