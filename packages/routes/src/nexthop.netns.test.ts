// Recursive next hops against the real kernel: a node namespace on one subnet (10.88.1.0/24) learns
// blocks whose next hops are nodes in another rack (10.88.2.0/24). The kernel refuses `via` such
// an address; the programmer installs the block via the gateway of the kernel's route to it, and
// follows that route as it appears, moves and goes (netlink route events, no polling).
import { type Netns, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, fileNamespaces, nodeWithUplink } from './__fixtures__/netns.js';
import { computeDesired } from './desired.js';
import { PODNET_PROTO } from './model.js';
import { NextHopResolver } from './nexthop.js';
import { RouteProgrammer } from './programmer.js';

interface IpRoute {
  dst: string;
  gateway?: string;
  nexthops?: { gateway: string }[];
}

const lab = fileNamespaces();

describe.each(backends)('next hops in another subnet, on %s', (_name, makeKernel) => {
  let node: Netns;
  let resolver: NextHopResolver;
  let rp: RouteProgrammer;
  const gateways = async (dst: string) => {
    const r = (await node.ipJson<IpRoute[]>('route', 'show', 'proto', String(PODNET_PROTO))).find(
      (x) => x.dst === dst,
    );
    if (!r) return undefined;
    return r.nexthops ? r.nexthops.map((h) => h.gateway).sort() : [r.gateway];
  };

  beforeAll(async () => {
    node = await nodeWithUplink(lab, 'nhnode', { dev: 'eth0', peer: 'eth1', address: '10.88.1.11/24' });
    resolver = new NextHopResolver({ kernel: makeKernel(node.path), eventDebounceMs: 10 });
    await resolver.start();
    rp = new RouteProgrammer({
      kernel: makeKernel(node.path),
      resolver,
      sysctl: false,
      resyncIntervalMs: 0,
      retryMs: 200,
    });
    await rp.setDesired(
      computeDesired({
        remote: [
          { prefix: '10.244.1.0/26', nextHops: ['10.88.1.12'] },
          { prefix: '10.244.2.0/26', nextHops: ['10.88.2.21'] },
          { prefix: '10.244.3.0/26', nextHops: ['10.88.1.12', '10.88.2.21'] },
        ],
      }).routes,
    );
    await rp.start();
  });

  afterAll(async () => {
    await rp?.stop({ keepRoutes: false });
    await resolver?.stop();
  });

  it('reports a next hop with no route instead of retrying, and installs what it can', async () => {
    expect(await gateways('10.244.1.0/26')).toEqual(['10.88.1.12']);
    expect(await gateways('10.244.2.0/26')).toBeUndefined();
    // ECMP over one reachable and one unreachable next hop: the reachable one alone.
    expect(await gateways('10.244.3.0/26')).toEqual(['10.88.1.12']);
    const s = rp.status();
    expect(s.failed).toEqual([]);
    expect(s.unresolved).toEqual([
      { dst: '10.244.2.0/26', nextHops: [{ gateway: '10.88.2.21', reason: 'no route to it' }] },
    ]);
  });

  it('installs the block via the gateway of the route to the other rack once the kernel has one', async () => {
    await node.ip('route', 'add', '10.88.2.0/24', 'via', '10.88.1.254', 'proto', 'static');
    await waitFor(
      '10.244.2.0/26 via the rack router',
      async () => (await gateways('10.244.2.0/26'))?.[0] === '10.88.1.254',
    );
    expect(await gateways('10.244.3.0/26')).toEqual(['10.88.1.12', '10.88.1.254']);
    expect(rp.status().unresolved).toEqual([]);
  });

  it('follows the route to the next hop when it changes, and withdraws the block when it goes', async () => {
    await node.ip('route', 'replace', '10.88.2.0/24', 'via', '10.88.1.253', 'proto', 'static');
    await waitFor(
      '10.244.2.0/26 via the new gateway',
      async () => (await gateways('10.244.2.0/26'))?.[0] === '10.88.1.253',
    );
    await node.ip('route', 'del', '10.88.2.0/24');
    await waitFor('10.244.2.0/26 removed', async () => (await gateways('10.244.2.0/26')) === undefined);
    expect(await gateways('10.244.3.0/26')).toEqual(['10.88.1.12']);
    expect(rp.status().unresolved.map((u) => u.dst)).toEqual(['10.244.2.0/26']);
    // A default route (as a node in a rack has) resolves it again.
    await node.ip('route', 'add', 'default', 'via', '10.88.1.254');
    await waitFor(
      '10.244.2.0/26 via the default gateway',
      async () => (await gateways('10.244.2.0/26'))?.[0] === '10.88.1.254',
    );
  });
});
