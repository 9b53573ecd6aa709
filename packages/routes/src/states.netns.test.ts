// Per-route states against the real kernel: a route is `installed` only once the kernel has
// acknowledged it and a later dump holds it; a route deleted by hand is `missing` until repaired.
import { type Netns, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, fileNamespaces, nodeWithUplink } from './__fixtures__/netns.js';
import { computeDesired } from './desired.js';
import { PODNET_PROTO } from './model.js';
import { RouteProgrammer, type RouteState } from './programmer.js';

const lab = fileNamespaces();

const POD = 'pn0000000000a';
const ABSENT = 'pn0000000000b';
const desired = computeDesired({
  localPods: [
    { ifname: POD, ips: ['10.66.0.1'] },
    { ifname: ABSENT, ips: ['10.66.0.2'] },
  ],
  ownedBlocks: ['10.66.0.0/26'],
  remote: [{ prefix: '10.66.1.0/26', nextHops: ['172.21.0.2'] }],
}).routes;

describe.each(backends)('route states from the kernel, on %s', (name, makeKernel) => {
  let node: Netns;
  const programmers: RouteProgrammer[] = [];
  const kernelDsts = async () =>
    (await node.ipJson<{ dst: string }[]>('route', 'show', 'proto', String(PODNET_PROTO))).map((r) => r.dst);
  const states = (rp: RouteProgrammer) =>
    Object.fromEntries(rp.routeStates().map((s) => [s.dst, s.state])) as Record<string, RouteState>;

  beforeAll(async () => {
    node = await nodeWithUplink(lab, `rtst${name.slice(0, 3)}`, {
      dev: 'up0',
      peer: 'up1',
      address: '172.21.0.1/24',
    });
    // The pod's interface: a veth whose other end stays in the node (no pod traffic here).
    await node.ip('link', 'add', POD, 'type', 'veth', 'peer', 'name', 'podend');
    await node.ip('link', 'set', 'podend', 'up');
    await node.ip('link', 'set', POD, 'up');
  });

  afterAll(async () => {
    for (const rp of programmers) await rp.stop({ keepRoutes: false });
  });

  it('says applied after the ACK, installed only after a dump, and missing for a route deleted by hand until repaired', async () => {
    // No verification dump and no event-driven repair: each step below happens only when asked.
    const rp = new RouteProgrammer({
      kernel: makeKernel(node.path),
      sysctl: false,
      resyncIntervalMs: 0,
      verifyDelayMs: 0,
      eventDebounceMs: 600_000,
    });
    programmers.push(rp);
    await rp.setDesired(desired);
    expect(states(rp)['10.66.0.1/32']).toBe('pending'); // not started: nothing applied yet
    await rp.start();
    expect((await kernelDsts()).sort()).toEqual(['10.66.0.0/26', '10.66.0.1', '10.66.1.0/26']);
    // The kernel acknowledged the three; no dump since.
    expect(states(rp)).toEqual({
      '10.66.0.1/32': 'applied',
      '10.66.0.2/32': 'pending',
      '10.66.0.0/26': 'applied',
      '10.66.1.0/26': 'applied',
    });
    expect(rp.routeStates().find((s) => s.dst === '10.66.0.2/32')?.detail).toBe('interface-missing');

    await rp.resync(); // a dump that holds them
    expect(states(rp)).toEqual({
      '10.66.0.1/32': 'installed',
      '10.66.0.2/32': 'pending',
      '10.66.0.0/26': 'installed',
      '10.66.1.0/26': 'installed',
    });

    await node.ip('route', 'del', '10.66.1.0/26', 'proto', String(PODNET_PROTO));
    // The kernel's deletion notice marks it; the repair waits for the (long) event debounce.
    await waitFor('the deleted route to show as missing', () => states(rp)['10.66.1.0/26'] === 'missing');
    expect(await kernelDsts()).not.toContain('10.66.1.0/26');
    expect(states(rp)['10.66.0.1/32']).toBe('installed');

    await rp.resync(); // dump (lacks it), re-add (acknowledged)
    expect(await kernelDsts()).toContain('10.66.1.0/26');
    expect(states(rp)['10.66.1.0/26']).toBe('applied');
    await rp.resync();
    expect(states(rp)['10.66.1.0/26']).toBe('installed');
  });

  it('confirms acknowledged routes with a dump of its own shortly after applying', async () => {
    const rp = new RouteProgrammer({
      kernel: makeKernel(node.path),
      sysctl: false,
      resyncIntervalMs: 0,
      verifyDelayMs: 20,
    });
    programmers.push(rp);
    await rp.setDesired([...desired, ...computeDesired({ ownedBlocks: ['10.66.2.0/26'] }).routes]);
    await rp.start();
    expect(states(rp)['10.66.2.0/26']).toBe('applied');
    await waitFor('the verification dump', () => states(rp)['10.66.2.0/26'] === 'installed');
    expect(rp.routeStates().filter((s) => s.state !== 'installed')).toEqual([
      { dst: '10.66.0.2/32', table: 254, metric: 0, state: 'pending', detail: 'interface-missing' },
    ]);
  });
});
