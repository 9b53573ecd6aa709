// The runner's small REST client against the embedded API server over HTTPS: a watch delivers
// each change as it happens, and a watch the server refuses rejects with its status.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ApiServer, startApiServer } from '@podnet/apiserver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kube } from './kube.js';

const dir = mkdtempSync(join(tmpdir(), 'podnet-lab-kube-'));
let server: ApiServer;
let kube: Kube;
const SERVICES = '/api/v1/namespaces/default/services';

beforeAll(async () => {
  server = await startApiServer({
    port: 0,
    host: '127.0.0.1',
    tls: true,
    advertise: ['127.0.0.1'],
    kubeconfigPath: join(dir, 'kubeconfig'),
  });
  kube = new Kube({ url: server.url, token: server.token, insecure: true });
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Kube.watch', () => {
  it('delivers ADDED and MODIFIED events for changes after the resourceVersion, until stopped', async () => {
    const list = await kube.request('GET', SERVICES);
    const rv = (list.body.metadata as { resourceVersion: string }).resourceVersion;
    const seen: string[] = [];
    const w = kube.watch(`${SERVICES}?watch=1&resourceVersion=${rv}`, (ev) => {
      const m = ev.object.metadata as { name: string };
      seen.push(`${ev.type} ${m.name}`);
    });
    await w.opened;
    const svc = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'watched' },
      spec: { ports: [{ port: 80 }] },
    };
    expect((await kube.request('POST', SERVICES, svc)).status).toBe(201);
    const patched = await kube.request(
      'PATCH',
      `${SERVICES}/watched`,
      { metadata: { labels: { a: 'b' } } },
      'application/merge-patch+json',
    );
    expect(patched.status).toBe(200);
    for (let i = 0; i < 200 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual(['ADDED watched', 'MODIFIED watched']);
    w.stop();
    await w.ended;
  });

  it('rejects `opened` with the status of a watch the server refuses', async () => {
    const w = kube.watch('/api/v1/namespaces/default/nosuchkind?watch=1', () => {});
    await expect(w.opened).rejects.toThrow(/answered 404/);
    await w.ended;
  });
});
