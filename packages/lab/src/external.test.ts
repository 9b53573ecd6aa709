// KUBECONFIG mode against an API server outside the lab: here the embedded server started in this
// process over HTTPS on 127.0.0.1 (standing in for a real kube-apiserver, which this machine does
// not have). The lab bridges it onto 10.88.0.2:6443 inside its fabric, its nodes and the CNI plugin
// reach it there with TLS verified against the server's CA, and `down` deletes what the lab put there.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type ApiServer, startApiServer } from '@podnet/apiserver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readKubeconfig, serverNameFor } from './external.js';
import { Kube } from './kube.js';
import { cleanupStaleLabs, Lab, type LabConfig } from './runner.js';

const repoRoot = resolve(import.meta.dirname, '..', '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'podnet-lab-external-'));
let server: ApiServer;
let config: LabConfig;
let lab: Lab;

beforeAll(async () => {
  await cleanupStaleLabs(/^pnt-l(\d+)[a-z]*-/);
  server = await startApiServer({
    port: 0,
    host: '127.0.0.1',
    tls: true,
    advertise: ['127.0.0.1', 'kubernetes'],
    kubeconfigPath: join(dir, 'kubeconfig'),
  });
  config = {
    repoRoot,
    composeFile: join(repoRoot, 'compose.yaml'),
    stateDir: join(dir, 'state'),
    prefix: `pnt-l${process.pid}x-`,
    only: ['apiserver', 'node-a'],
    agents: false,
    podsPerNode: 1,
    kubeconfig: join(dir, 'kubeconfig'),
  };
  lab = new Lab(config);
  await lab.up();
}, 120_000);

afterAll(async () => {
  await new Lab(config).down({ quiet: true });
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('lab against an outside API server (KUBECONFIG)', () => {
  it('reads the kubeconfig: https server, CA, token, and the name to check from inside the lab', () => {
    const api = readKubeconfig(join(dir, 'kubeconfig'));
    expect(api.server.protocol).toBe('https:');
    expect(api.caPem).toContain('BEGIN CERTIFICATE');
    expect(api.token).toBe(server.token);
    expect(serverNameFor(api)).toBe('kubernetes');
    expect(lab.labApiUrl).toBe('https://kubernetes:6443');
  });

  it('creates its objects on the outside server, and the CNI plugin there reaches it through the bridge', async () => {
    const outside = new Kube({ url: server.url, token: server.token, insecure: true });
    expect(await outside.get('/api/v1/nodes/node-a')).toBeDefined();
    expect(await outside.get('/apis/podnet.io/v1alpha1/ippools/lab-v4')).toBeDefined();
    const pod = lab.pods[0];
    expect(pod?.ipv4).toMatch(/^10\.244\./);
    const blocks = await outside.list('/apis/podnet.io/v1alpha1/ipamblocks');
    expect(blocks.length).toBeGreaterThan(0);
  });

  it('deletes the lab’s objects from the outside server on down', async () => {
    await new Lab(config).down({ quiet: true });
    const outside = new Kube({ url: server.url, token: server.token, insecure: true });
    expect(await outside.get('/api/v1/nodes/node-a')).toBeUndefined();
    expect(await outside.get('/api/v1/namespaces/default/pods/pod-node-a-0')).toBeUndefined();
    expect(await outside.get('/apis/podnet.io/v1alpha1/ippools/lab-v4')).toBeUndefined();
    expect(await outside.list('/apis/podnet.io/v1alpha1/ipamblocks')).toEqual([]);
  }, 60_000);
});
