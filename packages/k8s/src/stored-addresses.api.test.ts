// Objects stored before the address parser became strict (@podnet/net): an IPPool cidr with a
// leading zero in its prefix length, a BGPPeer peerIP with brackets around IPv4 or a port with a
// leading zero. The API server stores them (the CRD schema says "string"); podnet's readers refuse
// them by name, skip them, keep the last valid version, and never stop. Against the embedded API
// server, or the cluster in KUBECONFIG.
import type { TestCluster } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiWithCrds, logCapture, testRun, waitFor } from './__fixtures__/api.js';
import type { KubeClient } from './client.js';
import { Informer, resourceSource } from './informer.js';
import { BGPPEER, IPPOOL } from './resources.js';

const { run: RUN, labels, selector: labelSelector } = testRun('sa');
const G = { group: 'podnet.io', version: 'v1alpha1' };

let cluster: TestCluster;
let client: KubeClient;
const created: { plural: string; name: string }[] = [];

/** Stores an object as given, past podnet's own validation (as an older podnet or kubectl would). */
async function storeRaw(plural: 'ippools' | 'bgppeers', name: string, spec: Record<string, unknown>) {
  created.push({ plural, name });
  const kind = plural === 'ippools' ? 'IPPool' : 'BGPPeer';
  await client.custom.createClusterCustomObject({
    ...G,
    plural,
    body: { apiVersion: 'podnet.io/v1alpha1', kind, metadata: { name, labels }, spec },
  });
}

/** Replaces an object's spec as given (kubectl edit). */
async function editRaw(plural: 'ippools' | 'bgppeers', name: string, spec: Record<string, unknown>) {
  const cur = (await client.custom.getClusterCustomObject({ ...G, plural, name })) as Record<string, unknown>;
  await client.custom.replaceClusterCustomObject({ ...G, plural, name, body: { ...cur, spec } });
}

beforeAll(async () => {
  ({ cluster, client } = await apiWithCrds({ historySize: 30 }));
});

afterAll(async () => {
  for (const { plural, name } of created)
    await client?.custom.deleteClusterCustomObject({ ...G, plural, name }).catch(() => {});
  await cluster?.close();
});

describe('stored objects with addresses the strict parser refuses', () => {
  it('an IPPool cidr is refused by name and value, skipped, and the last valid version is kept', async () => {
    await storeRaw('ippools', `${RUN}-ok`, { cidr: '100.72.0.0/20' });
    await storeRaw('ippools', `${RUN}-len0`, { cidr: '100.73.0.0/020' });
    await storeRaw('ippools', `${RUN}-oct0`, { cidr: '100.074.0.0/16' });

    const listed = await client.resource(IPPOOL).list({ labelSelector });
    expect(listed.items.map((p) => p.metadata.name)).toEqual([`${RUN}-ok`]);
    expect(listed.invalid.map((i) => i.name).sort()).toEqual([`${RUN}-len0`, `${RUN}-oct0`]);

    const { logger, lines } = logCapture();
    const inf = new Informer(client, resourceSource(client, IPPOOL), { labelSelector, logger });
    inf.start();
    try {
      await inf.synced;
      expect(inf.list().map((p) => p.metadata.name)).toEqual([`${RUN}-ok`]);
      expect(inf.counts.invalid).toBe(2);
      const warned = lines.filter((l) => l.msg === 'skipping invalid object').map((l) => JSON.stringify(l));
      expect(warned.find((w) => w.includes(`${RUN}-len0`))).toContain('spec.cidr: \\"100.73.0.0/020\\"');
      expect(warned.find((w) => w.includes(`${RUN}-oct0`))).toContain('spec.cidr: \\"100.074.0.0/16\\"');
      expect(warned.find((w) => w.includes(`${RUN}-len0`))).toContain('leading zero in the prefix length');
      expect(warned.find((w) => w.includes(`${RUN}-oct0`))).toContain('leading zero in an IPv4 octet');

      // Edited into a refused value: the informer keeps the last valid version and says why.
      await editRaw('ippools', `${RUN}-ok`, { cidr: '100.72.0.0/020' });
      await waitFor('the refused edit', () => inf.counts.invalid === 3);
      expect(inf.get(`${RUN}-ok`)?.spec.cidr).toBe('100.72.0.0/20');

      // Fixed by hand: it comes back.
      await editRaw('ippools', `${RUN}-len0`, { cidr: '100.73.0.0/20' });
      await waitFor('the fixed pool', () => inf.get(`${RUN}-len0`) !== undefined);
      expect(inf.get(`${RUN}-len0`)?.spec.cidr).toBe('100.73.0.0/20');
    } finally {
      await inf.stop();
    }
  });

  it('a BGPPeer peerIP with brackets around IPv4 or a zero-padded port is refused and skipped', async () => {
    await storeRaw('bgppeers', `${RUN}-tor`, { peerIP: '[fd00::1]:1179', asNumber: 65000 });
    await storeRaw('bgppeers', `${RUN}-br4`, { peerIP: '[10.0.0.1]:179', asNumber: 65000 });
    await storeRaw('bgppeers', `${RUN}-port0`, { peerIP: '10.0.0.1:0179', asNumber: 65000 });
    const { logger, lines } = logCapture();
    const inf = new Informer(client, resourceSource(client, BGPPEER), { labelSelector, logger });
    inf.start();
    try {
      await inf.synced;
      expect(inf.list().map((p) => p.metadata.name)).toEqual([`${RUN}-tor`]);
      const warned = lines.filter((l) => l.msg === 'skipping invalid object').map((l) => JSON.stringify(l));
      expect(warned.find((w) => w.includes(`${RUN}-br4`))).toContain('spec.peerIP: \\"[10.0.0.1]:179\\"');
      expect(warned.find((w) => w.includes(`${RUN}-port0`))).toContain('spec.peerIP: \\"10.0.0.1:0179\\"');
    } finally {
      await inf.stop();
    }
  });
});
