// Recursive next-hop resolution: the pure lookup, and the route programmer installing a block via
// the gateway of the route to its next hop (the real kernel is in nexthop.netns.test.ts).
import { describe, expect, it } from 'vitest';
import { computeDesired } from './desired.js';
import type { KernelEvent, OpResult, RouteKernel } from './kernel.js';
import { type KernelRoute, type LinkInfo, PODNET_PROTO, type RouteOp, RTPROT, slotKey } from './model.js';
import { NextHopResolver, resolveNextHop } from './nexthop.js';
import { RouteProgrammer } from './programmer.js';

const r = (dst: string, over: Partial<KernelRoute> = {}): KernelRoute => ({
  family: dst.includes(':') ? 6 : 4,
  table: 254,
  dst,
  metric: 0,
  protocol: RTPROT.kernel,
  kind: 'unicast',
  scope: 253,
  nexthops: [{ oif: 2 }],
  ...over,
});

const table: KernelRoute[] = [
  r('10.88.1.0/24'),
  r('0.0.0.0/0', { protocol: RTPROT.boot, scope: 0, nexthops: [{ gateway: '10.88.1.254', oif: 2 }] }),
  r('10.88.2.0/24', { protocol: RTPROT.static, scope: 0, nexthops: [{ gateway: '10.88.1.254', oif: 2 }] }),
  r('10.88.3.0/24', {
    protocol: RTPROT.static,
    scope: 0,
    nexthops: [
      { gateway: '10.88.1.253', oif: 2 },
      { gateway: '10.88.1.254', oif: 2 },
    ],
  }),
  r('10.88.9.0/24', { protocol: RTPROT.static, kind: 'unreachable', nexthops: [] }),
  // podnet's own route: never used to resolve a next hop.
  r('10.88.4.0/24', { protocol: PODNET_PROTO, scope: 0, nexthops: [{ gateway: '10.88.1.7' }] }),
  r('fd00:88:1::/64'),
];

describe('resolveNextHop', () => {
  it('keeps a next hop on a connected subnet as it is', () => {
    expect(resolveNextHop('10.88.1.12', table)).toEqual({ type: 'connected', route: '10.88.1.0/24' });
    expect(resolveNextHop('fd00:88:1::12', table)).toEqual({ type: 'connected', route: 'fd00:88:1::/64' });
  });

  it('resolves a next hop off the node subnets through the longest matching route, every ECMP gateway', () => {
    expect(resolveNextHop('10.88.2.12', table)).toEqual({
      type: 'recursive',
      route: '10.88.2.0/24',
      gateways: [{ gateway: '10.88.1.254', oif: 2 }],
    });
    expect(resolveNextHop('10.88.3.12', table)).toMatchObject({
      type: 'recursive',
      gateways: [{ gateway: '10.88.1.253' }, { gateway: '10.88.1.254' }],
    });
    // Only the default route covers it: resolved through the default gateway, as BIRD does.
    expect(resolveNextHop('10.77.0.1', table)).toMatchObject({ type: 'recursive', route: '0.0.0.0/0' });
    // podnet's own route is ignored; the default route resolves it.
    expect(resolveNextHop('10.88.4.1', table)).toMatchObject({ type: 'recursive', route: '0.0.0.0/0' });
  });

  it('calls a next hop unreachable when no route covers it or the route drops', () => {
    expect(resolveNextHop('10.88.9.1', table)).toEqual({
      type: 'unreachable',
      reason: 'the route to it is unreachable (10.88.9.0/24)',
    });
    expect(resolveNextHop('fd00:99::1', table)).toEqual({ type: 'unreachable', reason: 'no route to it' });
    expect(resolveNextHop('not-an-ip', table).type).toBe('unreachable');
  });
});

/** A kernel whose routing table the test edits, with events. */
class TableKernel implements RouteKernel {
  routes = new Map<string, KernelRoute>();
  links: LinkInfo[] = [{ ifname: 'eth0', ifindex: 2, up: true }];
  listeners = new Set<(e: KernelEvent) => void>();
  dumps = 0;
  async listRoutes() {
    this.dumps++;
    return [...this.routes.values()];
  }
  async listLinks() {
    return this.links;
  }
  async apply(ops: readonly RouteOp[]): Promise<OpResult[]> {
    return ops.map((op) => {
      if (op.type === 'delete') this.routes.delete(slotKey(op.route));
      else {
        // As the kernel: a gateway must be on a connected subnet.
        for (const h of op.route.nexthops)
          if (h.gateway && resolveNextHop(h.gateway, [...this.routes.values()]).type !== 'connected')
            return { ok: false, code: 'ENETUNREACH', message: 'Nexthop has invalid gateway' };
        this.routes.set(slotKey(op.route), op.route);
      }
      return { ok: true };
    });
  }
  watch(cb: (e: KernelEvent) => void) {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }
  async close() {}
  /** Adds or removes a route of another protocol, with its event. */
  set(route: KernelRoute | undefined, key?: string) {
    if (route) this.routes.set(slotKey(route), route);
    else if (key) this.routes.delete(key);
    const e: KernelEvent = route
      ? { type: 'route-added', dst: route.dst, table: 254, protocol: route.protocol }
      : { type: 'route-deleted', dst: key!.split('|')[1]!, table: 254, protocol: RTPROT.static };
    for (const l of this.listeners) l(e);
  }
}

const until = async (what: string, cond: () => boolean) => {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
};

describe('RouteProgrammer with a NextHopResolver', () => {
  it('installs a block via the gateway towards its next hop, drops it while the next hop has no route, and follows route changes', async () => {
    const kernel = new TableKernel();
    kernel.routes.set('254|10.88.1.0/24|0', r('10.88.1.0/24'));
    const resolver = new NextHopResolver({ kernel, eventDebounceMs: 1 });
    await resolver.start();
    const rp = new RouteProgrammer({
      kernel,
      resolver,
      sysctl: false,
      resyncIntervalMs: 0,
      eventDebounceMs: 1,
      retryMs: 5,
    });
    let changes = 0;
    resolver.onChange(() => changes++);
    const set = computeDesired({
      remote: [
        { prefix: '10.244.1.0/26', nextHops: ['10.88.1.12'] },
        { prefix: '10.244.2.0/26', nextHops: ['10.88.2.12'] },
      ],
    });
    await rp.setDesired(set.routes);
    await rp.start();
    const via = (dst: string) => kernel.routes.get(`254|${dst}|0`)?.nexthops.map((h) => h.gateway);
    // Same subnet: as learned. Other rack, no route yet: not installed, reported, not retried.
    expect(via('10.244.1.0/26')).toEqual(['10.88.1.12']);
    expect(via('10.244.2.0/26')).toBeUndefined();
    expect(rp.status().failed).toEqual([]);
    expect(rp.status().unresolved).toEqual([
      { dst: '10.244.2.0/26', nextHops: [{ gateway: '10.88.2.12', reason: 'no route to it' }] },
    ]);
    const dumps = kernel.dumps;
    // The ToR's route to the other rack appears: the block goes in via the ToR.
    kernel.set(
      r('10.88.2.0/24', {
        protocol: RTPROT.static,
        scope: 0,
        nexthops: [{ gateway: '10.88.1.254', oif: 2 }],
      }),
    );
    await until('the block via the ToR', () => via('10.244.2.0/26')?.[0] === '10.88.1.254');
    expect(changes).toBe(1);
    expect(rp.status().unresolved).toEqual([]);
    // The route moves to another gateway: the block follows.
    kernel.set(
      r('10.88.2.0/24', {
        protocol: RTPROT.static,
        scope: 0,
        nexthops: [{ gateway: '10.88.1.253', oif: 2 }],
      }),
    );
    await until('the block via the new gateway', () => via('10.244.2.0/26')?.[0] === '10.88.1.253');
    // The route goes: so does the block, and it is reported again.
    kernel.set(undefined, '254|10.88.2.0/24|0');
    await until('the block removed', () => via('10.244.2.0/26') === undefined);
    expect(rp.status().unresolved.map((u) => u.dst)).toEqual(['10.244.2.0/26']);
    // Resolution changes come from the resolver's table: the programmer did not dump again.
    expect(kernel.dumps - dumps).toBe(3);
    await rp.stop();
    await resolver.stop();
  });

  it('ignores podnet route additions and removals, which never change a resolution', async () => {
    const kernel = new TableKernel();
    const resolver = new NextHopResolver({ kernel, eventDebounceMs: 1 });
    await resolver.start();
    let changes = 0;
    resolver.onChange(() => changes++);
    expect(resolver.reachable('10.88.7.1')).toBe(false);
    const dumps = kernel.dumps;
    for (const l of kernel.listeners)
      l({ type: 'route-added', dst: '10.244.0.0/26', table: 254, protocol: PODNET_PROTO });
    kernel.set(r('10.88.7.0/24', { protocol: RTPROT.static }));
    await until('one reload', () => changes === 1);
    expect(kernel.dumps).toBe(dumps + 1);
    expect(resolver.reachable('10.88.7.1')).toBe(true);
    expect(resolver.reachable('10.88.8.1')).toBe(false);
    await resolver.stop();
  });

  it('tells its listeners only when an address they asked about resolves differently', async () => {
    const kernel = new TableKernel();
    kernel.routes.set('254|10.88.1.0/24|0', r('10.88.1.0/24'));
    const resolver = new NextHopResolver({ kernel, eventDebounceMs: 1 });
    await resolver.start();
    let changes = 0;
    resolver.onChange(() => changes++);
    expect(resolver.resolve('10.88.1.12')).toMatchObject({ type: 'connected' });
    // A pod's host route (what every pod start adds): read, and nobody is told.
    const dumps = kernel.dumps;
    kernel.set(r('10.244.0.5/32', { protocol: RTPROT.boot }));
    await until('the reload', () => kernel.dumps === dumps + 1);
    await new Promise((x) => setTimeout(x, 20));
    expect(changes).toBe(0);
    expect(resolver.reachable('10.244.0.5')).toBe(true);
    // The route to the next hop goes: told.
    kernel.set(undefined, '254|10.88.1.0/24|0');
    await until('told', () => changes === 1);
    expect(resolver.reachable('10.88.1.12')).toBe(false);
    await resolver.stop();
  });
});
