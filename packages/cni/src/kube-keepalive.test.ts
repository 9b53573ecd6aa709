// MiniKube over a real HTTP server: a kept-alive connection the server drops before answering is
// not an unreachable API server; the request goes again on a fresh connection.
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CniErrorCode } from './errors.js';
import { MiniKube } from './kube.js';

let server: Server | undefined;
afterEach(async () => {
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

async function serve(handler: Parameters<typeof createServer>[1]): Promise<URL> {
  server = createServer(handler);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  return new URL(`http://127.0.0.1:${addr.port}`);
}

describe('MiniKube and kept-alive connections', () => {
  it('sends a request again on a fresh connection when the server reset the kept-alive one', async () => {
    const served = new Map<Socket, number>();
    const url = await serve((req, res) => {
      const n = (served.get(req.socket) ?? 0) + 1;
      served.set(req.socket, n);
      // The second request on a connection finds it gone, as after the server's keep-alive timeout.
      if (n === 2) {
        req.socket.resetAndDestroy();
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ n, path: req.url }));
    });
    const kube = new MiniKube({ server: url }, 5000);
    try {
      expect(await kube.request('GET', '/a')).toEqual({ n: 1, path: '/a' });
      expect(await kube.request('GET', '/b')).toEqual({ n: 1, path: '/b' });
      expect(served.size).toBe(2);
      expect(kube.stats.calls.some((c) => /GET \/b sent again \(ECONNRESET/.test(c))).toBe(true);
    } finally {
      kube.close();
    }
  });

  it('still fails with code 11 when a fresh connection is reset too', async () => {
    const url = await serve((req) => req.socket.resetAndDestroy());
    const kube = new MiniKube({ server: url }, 5000);
    try {
      await expect(kube.request('GET', '/a')).rejects.toMatchObject({ code: CniErrorCode.TryAgainLater });
    } finally {
      kube.close();
    }
  });
});
