// podnetctl ipam show / check / release against the embedded API server (or KUBECONFIG's cluster).
import { Ipam } from '@podnet/ipam';
import { IPPOOL, installCrds, KubeClient } from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCtl } from './cli-main.js';

let cluster: TestCluster;
let client: KubeClient;
let leaked = '';
let kept = '';

async function ctl(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCtl([...argv, '--kubeconfig', cluster.kubeconfigPath], {
    env: {},
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
  });
  return { code, stdout, stderr };
}

beforeAll(async () => {
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  await installCrds(client);
  await client.core.createNamespace({ body: { metadata: { name: 'ctl' } } }).catch(() => undefined);
  await client
    .resource(IPPOOL)
    .create({ metadata: { name: 'ctl-pool' }, spec: { cidr: '10.250.0.0/24', blockSize: 28 } });
  for (const n of ['ctl-node-a', 'ctl-node-b'])
    await client.core.createNode({ body: { metadata: { name: n } } }).catch(() => undefined);
  await client.core.createNamespacedPod({
    namespace: 'ctl',
    body: {
      metadata: { name: 'alive' },
      spec: { nodeName: 'ctl-node-a', containers: [{ name: 'c', image: 'pause' }] },
    },
  });
  const ipam = new Ipam({ client });
  const a = await ipam.allocate({
    handle: 'podnet.alive',
    node: 'ctl-node-a',
    attrs: { namespace: 'ctl', pod: 'alive' },
  });
  const b = await ipam.allocate({
    handle: 'podnet.gone',
    node: 'ctl-node-b',
    attrs: { namespace: 'ctl', pod: 'gone' },
  });
  kept = a.ipv4!.address;
  leaked = b.ipv4!.address;
}, 60_000);

afterAll(() => cluster?.close());

describe('podnetctl ipam', () => {
  it('show lists pools, blocks per node and utilisation', async () => {
    const r = await ctl('ipam', 'show');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^POOL\s+CIDR\s+BLOCK\s+BLOCKS\s+USED\s+CAPACITY\s+UTIL\s+STATE$/m);
    expect(r.stdout).toMatch(/^ctl-pool\s+10\.250\.0\.0\/24\s+\/28\s+2\s+2\s+256\s+0\.8%\s+enabled$/m);
    expect(r.stdout).toMatch(/^ctl-node-a\s+10\.250\.0\.\d+\/28\s+1\/16\s+6\.3%$/m);
    expect(r.stdout).toMatch(/^ctl-node-b\s+10\.250\.0\.\d+\/28\s+1\/16\s+6\.3%$/m);
  });

  it('check reports the address whose pod is gone and exits 1', async () => {
    const r = await ctl('ipam', 'check');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${leaked} in block`);
    expect(r.stdout).toContain('ctl/gone, which no longer exists');
    expect(r.stdout).not.toContain(`${kept} in block`);
    const j = await ctl('ipam', 'check', '-o', 'json');
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: false, problems: [{ type: 'address-leaked' }] });
  });

  it('release --ip frees the leaked address, after which check is clean', async () => {
    const r = await ctl('ipam', 'release', '--ip', leaked);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        `^Released ${leaked.replace(/\./g, '\\.')} from block 10\\.250\\.0\\.\\d+/28 \\(handle podnet\\.gone\\)\\.$`,
        'm',
      ),
    );
    const again = await ctl('ipam', 'release', '--ip', leaked);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/is not allocated \(nothing to release\)/);
    const c = await ctl('ipam', 'check');
    expect(c.stdout).toContain('IPAM is consistent');
    expect(c.code).toBe(0);
  });

  it('rejects an address that is not one', async () => {
    const r = await ctl('ipam', 'release', '--ip', 'ten.0.0.1');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--ip "ten\.0\.0\.1"/);
  });
});
