// Block lifecycle, both families: when the last pod of a node goes, its IPv4 and IPv6 blocks stay
// affine for the grace period, then the IPAM garbage collector releases them and every router
// withdraws them; the node's next pod claims a block again. The node agents run
// their GC every 2 s with a 6 s grace here (PODNET_IPAM_GC_INTERVAL / PODNET_IPAM_GC_GRACE), and give
// back a node's last empty block (PODNET_IPAM_GC_KEEP_LAST_BLOCK=false; the default keeps it).
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupStaleScenarioLabs,
  composeVariant,
  Lab,
  podIp,
  routesVia,
  scenarioConfig,
  unreachable,
} from './harness.js';

const composeFile = composeVariant('b', (doc) => {
  for (const name of ['node-a', 'node-b', 'node-c']) {
    const svc = doc.services[name];
    if (!svc) throw new Error(`compose.yaml has no service ${name}`);
    Object.assign(svc.environment, {
      PODNET_IPAM_GC_INTERVAL: '2s',
      PODNET_IPAM_GC_GRACE: '6s',
      // The default keeps a node's last block of each family; this scenario wants it given back.
      PODNET_IPAM_GC_KEEP_LAST_BLOCK: 'false',
    });
  }
});
const config = scenarioConfig('b', { composeFile });
let lab: Lab;

beforeAll(async () => {
  await cleanupStaleScenarioLabs();
  lab = new Lab(config);
  await lab.up();
  expect(unreachable(await lab.waitForReachability(4))).toEqual([]);
});

afterAll(async () => {
  await new Lab(config).down({ quiet: true });
  rmSync(dirname(composeFile), { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('lab block lifecycle (IPv4 and IPv6)', () => {
  it('withdraws node-c’s blocks everywhere once its last pod is gone and the grace period passed', async () => {
    const c = lab.service('node-c').links[0];
    const via = { 4: c?.ipv4?.split('/')[0] ?? '', 6: c?.ipv6?.split('/')[0] ?? '' } as const;
    const watchers = ['node-a', 'node-b', 'tor'].map((n) => lab.service(n).ns);
    const blocks = {
      4: routesVia(lab.service('node-a').ns, via[4], 4).map((r) => r.dst),
      6: routesVia(lab.service('node-a').ns, via[6], 6).map((r) => r.dst),
    };
    expect(blocks[4].length, 'node-a routes node-c’s IPv4 block via node-c').toBeGreaterThan(0);
    expect(blocks[6].length, 'node-a routes node-c’s IPv6 block via node-c').toBeGreaterThan(0);
    for (const pod of lab.pods.filter((p) => p.node === 'node-c')) await lab.deletePod(pod.name);
    const t0 = Date.now();
    const bound = 60_000;
    const left = (ns: string, f: 4 | 6) => routesVia(ns, via[f], f).filter((r) => blocks[f].includes(r.dst));
    for (const f of [4, 6] as const) {
      for (const ns of watchers) {
        while (left(ns, f).length > 0 && Date.now() - t0 < bound) await sleep(250);
        expect(
          left(ns, f),
          `${ns} still routes node-c’s IPv${f} block after ${(Date.now() - t0) / 1000} s`,
        ).toEqual([]);
      }
    }
    process.stderr.write(
      `[blocks] node-c's empty blocks withdrawn everywhere ${Date.now() - t0} ms after its last pod\n`,
    );
    const mine = async () =>
      (await lab.kube.list('/apis/podnet.io/v1alpha1/blockaffinities'))
        .map((a) => a.spec as { node?: string; cidr?: string })
        .filter((a) => a.node === 'node-c');
    while ((await mine()).length > 0 && Date.now() - t0 < bound) await sleep(500);
    expect(await mine()).toEqual([]);
  });

  it('gives node-c a block again for its next pod, reachable from the other nodes and the client', async () => {
    const pod = await lab.addPod('node-c', 'pod-node-c-again');
    const ip = podIp(pod);
    for (const src of [
      ...lab.pods.filter((p) => p.node === 'node-a').map((p) => p.ns),
      lab.service('client').ns,
    ]) {
      let ok = false;
      for (let i = 0; i < 20 && !ok; i++) ok = await lab.ping(src, ip);
      expect(ok, `${src} → ${ip}`).toBe(true);
    }
  });
});
