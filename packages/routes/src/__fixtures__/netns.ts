// What the route programmer's namespace tests share: the file's namespaces (stale ones cleared
// before, all removed after), both kernel backends, and a node namespace with an addressed uplink.
import { cleanupStale, type Netns, NetnsSet } from '@podnet/testkit';
import { afterAll, beforeAll } from 'vitest';
import { ipRouteKernel } from '../ip-kernel.js';
import type { RouteKernel } from '../kernel.js';
import { rtnetlinkKernel } from '../rtnl-kernel.js';

/** The kernels the programmer runs on, by name: netlink sockets and the `ip` command. */
export const backends: [string, (netns: string) => RouteKernel][] = [
  ['rtnetlink', (netns) => rtnetlinkKernel({ netns })],
  ['iproute2', (netns) => ipRouteKernel({ netns })],
];

/** The test file's namespaces: stale ones from dead runs cleared in beforeAll, these removed in afterAll. */
export function fileNamespaces(): NetnsSet {
  const lab = new NetnsSet();
  beforeAll(async () => {
    await cleanupStale();
  });
  afterAll(async () => {
    await lab.destroy();
  });
  return lab;
}

/** A namespace `name` whose veth `dev` (peer `peer`, both up) carries `address` (IPv6: no DAD). */
export async function nodeWithUplink(
  lab: NetnsSet,
  name: string,
  uplink: { dev: string; peer: string; address: string },
): Promise<Netns> {
  const node = await lab.create(name);
  await node.ip('link', 'add', uplink.dev, 'type', 'veth', 'peer', 'name', uplink.peer);
  await node.ip('link', 'set', uplink.dev, 'up');
  await node.ip('link', 'set', uplink.peer, 'up');
  await node.ip(
    'addr',
    'add',
    uplink.address,
    'dev',
    uplink.dev,
    ...(uplink.address.includes(':') ? ['nodad'] : []),
  );
  return node;
}
