// podnet's route protocol number against what else marks routes on a node: the numbers iproute2
// and FRR register, and Calico felix's 80 (its VXLAN, IPIP-blackhole and no-encap routes; felix
// treats every proto-80 route as its own). A node migrating from Calico can hold felix's routes
// while podnet runs: podnet must neither claim nor remove them, and its own number is configurable.
import { readdirSync, readFileSync } from 'node:fs';
import type { Netns } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, fileNamespaces, nodeWithUplink } from './__fixtures__/netns.js';
import { computeDesired } from './desired.js';
import { PODNET_PROTO } from './model.js';
import { RouteProgrammer } from './programmer.js';

/** Calico felix's route protocol (felix dataplane: defaultVXLANProto / VXLANDefaultProto). */
const FELIX_PROTO = 80;

/** The numbers named in iproute2's rt_protos and every rt_protos.d/*.conf (FRR ships one). */
function registeredProtocols(): Map<number, string> {
  const files = ['/etc/iproute2/rt_protos'];
  try {
    for (const f of readdirSync('/etc/iproute2/rt_protos.d'))
      if (f.endsWith('.conf')) files.push(`/etc/iproute2/rt_protos.d/${f}`);
  } catch {}
  const out = new Map<number, string>();
  for (const f of files)
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      const m = /^\s*(\d+)\s+(\S+)/.exec(line);
      if (m) out.set(Number(m[1]), m[2]!);
    }
  return out;
}

interface IpRoute {
  dst: string;
  gateway?: string;
  protocol?: string;
  type?: string;
}

describe('podnet route protocol', () => {
  it("is none of the numbers iproute2 and FRR register, nor Calico felix's 80", () => {
    const known = registeredProtocols();
    expect(known.get(12)).toBe('bird'); // the files were read
    expect(known.has(PODNET_PROTO), `${PODNET_PROTO} is ${known.get(PODNET_PROTO)}`).toBe(false);
    expect(PODNET_PROTO).not.toBe(FELIX_PROTO);
  });
});

const lab = fileNamespaces();

describe.each(backends)("next to felix's routes, on %s", (_name, makeKernel) => {
  let node: Netns;
  const rps: RouteProgrammer[] = [];
  // `ip route show proto N` leaves the protocol out of its JSON: read all, filter here.
  const routes = async (_proto: 'proto', n: string) =>
    (await node.ipJson<IpRoute[]>('-N', 'route', 'show'))
      .filter((r) => r.protocol === n)
      .map((r) => ({ dst: r.dst, protocol: r.protocol, ...(r.gateway ? { gateway: r.gateway } : {}) }));
  const felixRoutes = [
    { dst: '10.66.8.0/26', protocol: '80' },
    { dst: '10.66.9.0/26', protocol: '80', gateway: '172.21.0.9' },
  ];

  beforeAll(async () => {
    node = await nodeWithUplink(lab, `proto${_name.slice(0, 4)}`, {
      dev: 'up0',
      peer: 'up1',
      address: '172.21.0.1/24',
    });
    // What felix leaves on a node it ran on: a remote block via another node and its own blackhole.
    await node.ip('route', 'add', '10.66.9.0/26', 'via', '172.21.0.9', 'proto', '80');
    await node.ip('route', 'add', 'blackhole', '10.66.8.0/26', 'proto', '80');
  });

  afterAll(async () => {
    for (const rp of rps) await rp.stop();
  });

  const programmer = (protocol?: number) => {
    const rp = new RouteProgrammer({
      kernel: makeKernel(node.path),
      netns: node.path,
      resyncIntervalMs: 60_000,
      families: [4],
      ...(protocol !== undefined ? { protocol } : {}),
    });
    rps.push(rp);
    return rp;
  };
  const desired = computeDesired({
    localPods: [],
    ownedBlocks: ['10.66.0.0/26'],
    remote: [{ prefix: '10.66.1.0/26', nextHops: ['172.21.0.2'] }],
  }).routes;

  it('installs its routes with its own number and leaves the proto-80 routes alone', async () => {
    const rp = programmer();
    await rp.setDesired(desired);
    await rp.start();
    await rp.resync();
    expect(await routes('proto', String(PODNET_PROTO))).toEqual([
      { dst: '10.66.0.0/26', protocol: String(PODNET_PROTO) },
      { dst: '10.66.1.0/26', protocol: String(PODNET_PROTO), gateway: '172.21.0.2' },
    ]);
    expect(await routes('proto', '80')).toEqual(felixRoutes);
    // Nothing desired any more: podnet's routes go, felix's stay.
    await rp.setDesired([]);
    expect(await routes('proto', String(PODNET_PROTO))).toEqual([]);
    expect(await routes('proto', '80')).toEqual(felixRoutes);
    await rp.stop();
  });

  it('takes another number when configured, and owns only routes carrying it', async () => {
    const rp = programmer(150);
    await rp.setDesired(desired);
    await rp.start();
    expect((await routes('proto', '150')).map((r) => r.dst)).toEqual(['10.66.0.0/26', '10.66.1.0/26']);
    expect(await routes('proto', String(PODNET_PROTO))).toEqual([]);
    expect(await routes('proto', '80')).toEqual(felixRoutes);
    await rp.setDesired([]);
    expect(await routes('proto', '150')).toEqual([]);
    expect(await routes('proto', '80')).toEqual(felixRoutes);
  });
});
