// Static bearer tokens (kube-apiserver's --token-auth-file) and the per-user request counts the
// scale-sim bench reads from GET /debug/podnet/requests, over real HTTP.
import { describe, expect, it } from 'vitest';
import { parseTokenAuthFile, startApiServer } from './index.js';

const get = (url: string, token: string) => fetch(url, { headers: { authorization: `Bearer ${token}` } });

describe('static tokens and request counts', () => {
  it('parses the token file and names a malformed line', () => {
    expect(parseTokenAuthFile('# nodes\nt1,node-1,u1\n\nt2,node-2,,"g1,g2"\n')).toEqual([
      { token: 't1', username: 'node-1', uid: 'u1' },
      { token: 't2', username: 'node-2', groups: ['g1', 'g2'] },
    ]);
    expect(() => parseTokenAuthFile('t1,node-1,u1\nonly-a-token\n')).toThrow(/line 2.*only-a-token/);
  });

  it('authenticates static tokens and counts requests and watches per user', async () => {
    const server = await startApiServer({
      tls: false,
      staticTokens: [
        { token: 'tok-a', username: 'node-a' },
        { token: 'tok-b', username: 'node-b' },
      ],
    });
    try {
      expect((await get(`${server.url}/api/v1/nodes`, 'tok-a')).status).toBe(200);
      expect((await get(`${server.url}/api/v1/pods`, 'tok-a')).status).toBe(200);
      expect((await get(`${server.url}/api/v1/nodes`, 'tok-b')).status).toBe(200);
      expect((await get(`${server.url}/api/v1/nodes`, 'wrong')).status).toBe(401);
      const w = new AbortController();
      const watch = await fetch(`${server.url}/api/v1/nodes?watch=true`, {
        headers: { authorization: 'Bearer tok-b' },
        signal: w.signal,
      });
      expect(watch.status).toBe(200);
      w.abort();
      const r = await get(`${server.url}/debug/podnet/requests`, server.token);
      expect(r.status).toBe(200);
      const body = (await r.json()) as { users: Record<string, { requests: number; watches: number }> };
      expect(body.users['node-a']).toEqual({ requests: 2, watches: 0 });
      expect(body.users['node-b']).toEqual({ requests: 2, watches: 1 });
      // The read of the counts is not itself counted, and unauthenticated requests count for no one.
      expect(body.users['podnet-admin']).toBeUndefined();
      expect((await get(`${server.url}/debug/podnet/requests`, 'wrong')).status).toBe(401);
    } finally {
      await server.close();
    }
  });
});
