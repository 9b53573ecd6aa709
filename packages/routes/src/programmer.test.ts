// The reconciler's shell logic against an in-memory kernel (the real kernel is in
// programmer.netns.test.ts): retries, event filtering, stop semantics, metrics.

import type { SysctlEntry } from '@podnet/rtnetlink';
import fc from 'fast-check';
import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import { computeDesired } from './desired.js';
import type { KernelEvent, OpResult, RouteKernel } from './kernel.js';
import type { DesiredRoute } from './model.js';
import { type KernelRoute, type LinkInfo, PODNET_PROTO, type RouteOp, RTPROT, slotKey } from './model.js';
import { RouteProgrammer } from './programmer.js';

class FakeKernel implements RouteKernel {
  routes = new Map<string, KernelRoute>();
  links: LinkInfo[] = [{ ifname: 'pna', ifindex: 10, up: true }];
  dumps = 0;
  batches: RouteOp[][] = [];
  failNext: string | undefined;
  emit: ((e: KernelEvent) => void) | undefined;
  closed = false;
  async listRoutes() {
    this.dumps++;
    return [...this.routes.values()];
  }
  async listLinks() {
    return this.links.map((l) => ({ ...l }));
  }
  async apply(ops: readonly RouteOp[]): Promise<OpResult[]> {
    this.batches.push([...ops]);
    return ops.map((op) => {
      if (this.failNext === op.route.dst) {
        this.failNext = undefined;
        return { ok: false, code: 'ENETUNREACH', message: 'Network is unreachable' };
      }
      if (op.type === 'delete') this.routes.delete(slotKey(op.route));
      else this.routes.set(slotKey(op.route), op.route);
      return { ok: true };
    });
  }
  watch(onEvent: (e: KernelEvent) => void) {
    this.emit = onEvent;
    return () => {
      this.emit = undefined;
    };
  }
  async close() {
    this.closed = true;
  }
}

const desired = computeDesired({
  localPods: [{ ifname: 'pna', ips: ['10.0.0.1'] }],
  remote: [{ prefix: '10.0.1.0/26', nextHops: ['172.20.0.2'] }],
}).routes;

function setup() {
  const kernel = new FakeKernel();
  const writes: SysctlEntry[][] = [];
  const registry = new Registry();
  const rp = new RouteProgrammer({
    kernel,
    registry,
    resyncIntervalMs: 0,
    eventDebounceMs: 1,
    retryMs: 20,
    sysctl: {
      async apply(e) {
        writes.push([...e]);
        return [];
      },
    },
  });
  return { kernel, rp, writes, registry };
}

const settle = (ms = 60) => new Promise((r) => setTimeout(r, ms));

describe('RouteProgrammer with an in-memory kernel', () => {
  it('applies the desired routes on start, and later changes without a new dump', async () => {
    const { kernel, rp, registry } = setup();
    await rp.setDesired(desired);
    await rp.start();
    expect(kernel.routes.size).toBe(2);
    expect(kernel.dumps).toBe(1);
    await rp.setDesired(desired.slice(0, 1));
    expect(kernel.routes.size).toBe(1);
    expect(kernel.dumps).toBe(1);
    expect(rp.status()).toMatchObject({ inSync: true, installed: 1, ops: { add: 2, replace: 0, delete: 1 } });
    expect(await registry.metrics()).toContain('podnet_route_ops_total{op="add"} 2');
    await rp.stop();
  });

  it('retries a refused route with a resync, and reports it meanwhile', async () => {
    const { kernel, rp } = setup();
    kernel.failNext = '10.0.1.0/26';
    await rp.setDesired(desired);
    await rp.start();
    expect(rp.status().failed).toEqual([
      expect.objectContaining({ code: 'ENETUNREACH', route: expect.stringContaining('10.0.1.0/26') }),
    ]);
    expect(rp.status().inSync).toBe(false);
    await settle(100);
    expect(kernel.routes.has(`254|10.0.1.0/26|0`)).toBe(true);
    expect(rp.status()).toMatchObject({ failed: [], inSync: true });
    await rp.stop();
  });

  it('resyncs when a podnet route it wants is deleted, and not for foreign or unwanted ones', async () => {
    const { kernel, rp } = setup();
    await rp.setDesired(desired);
    await rp.start();
    const dumps = kernel.dumps;
    kernel.emit!({ type: 'route-deleted', dst: '10.9.0.0/26', table: 254, protocol: PODNET_PROTO });
    kernel.emit!({ type: 'route-deleted', dst: '10.0.1.0/26', table: 254, protocol: RTPROT.static });
    await settle();
    expect(kernel.dumps).toBe(dumps);
    kernel.routes.delete('254|10.0.1.0/26|0');
    kernel.emit!({ type: 'route-deleted', dst: '10.0.1.0/26', table: 254, protocol: PODNET_PROTO });
    await settle();
    expect(kernel.dumps).toBe(dumps + 1);
    expect(kernel.routes.has('254|10.0.1.0/26|0')).toBe(true);
    await rp.stop();
  });

  it('writes global and per-interface sysctls once per interface, only for the families in use', async () => {
    const { rp, writes } = setup();
    await rp.setDesired(desired);
    await rp.start();
    // An IPv4-only set never touches IPv6 forwarding (it would make the node ignore RAs).
    expect(writes.map((w) => w.map((e) => e.key))).toEqual([
      ['net/ipv4/ip_forward', 'net/ipv4/conf/pna/forwarding'],
    ]);
    // A resync reads the global switch again (drift repair), not the per-interface one.
    await rp.resync();
    expect(writes.map((w) => w.map((e) => e.key))[1]).toEqual(['net/ipv4/ip_forward']);
    // An IPv6 pool appears: its sysctls are added, the IPv4 ones are not written again.
    await rp.setFamilies([4, 6]);
    expect(writes).toHaveLength(3);
    expect(writes[2]!.map((e) => e.key)).toEqual([
      'net/ipv6/conf/all/forwarding',
      'net/ipv6/conf/pna/forwarding',
      'net/ipv6/conf/pna/accept_ra',
    ]);
    expect(rp.status().families).toEqual([4, 6]);
    await rp.stop();
  });

  it('reports a sysctl a read-only /proc/sys refuses once, without a retry loop, and clears it when the value is set', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    try {
      const kernel = new FakeKernel();
      const registry = new Registry();
      const warnings: string[] = [];
      const logger = pino({ level: 'info' }, { write: (l: string) => warnings.push(l) });
      let readOnly = true;
      const tried: string[][] = [];
      const rp = new RouteProgrammer({
        kernel,
        registry,
        logger,
        resyncIntervalMs: 30_000,
        eventDebounceMs: 1,
        retryMs: 1000,
        // No verification dump after the first apply: the dumps counted below are retries only.
        verifyDelayMs: 0,
        families: [4],
        sysctl: {
          // As procSysctl on a read-only /proc/sys: ip_forward reads 0 and its write fails EROFS;
          // the per-interface knob is already 1 (inherited), so nothing is written for it.
          async apply(entries) {
            tried.push(entries.map((e) => e.key));
            for (const e of entries)
              if (e.key === 'net/ipv4/ip_forward' && readOnly)
                throw Object.assign(
                  new Error("EROFS: read-only file system, open '/proc/sys/net/ipv4/ip_forward'"),
                  {
                    code: 'EROFS',
                  },
                );
            return [];
          },
        },
      });
      await rp.setDesired(desired);
      await rp.start();
      const s = rp.status();
      expect(s.unwritableSysctls).toMatchObject([
        { sysctl: 'net.ipv4.ip_forward', value: '1', code: 'EROFS', blocksForwarding: true },
      ]);
      // The routes themselves are applied: nothing failed there.
      expect(s.failed).toEqual([]);
      expect(await registry.getSingleMetricAsString('podnet_sysctl_unwritable')).toContain(
        'podnet_sysctl_unwritable{sysctl="net.ipv4.ip_forward"} 1',
      );
      const dumps = kernel.dumps;
      const attempts = tried.length;
      // Ten retry intervals pass: no dump, no write (before the fix: a full dump every second).
      await vi.advanceTimersByTimeAsync(10_000);
      expect(kernel.dumps).toBe(dumps);
      expect(tried.length).toBe(attempts);
      expect(warnings.filter((l) => l.includes('cannot be set'))).toHaveLength(1);
      // The resync timer checks again; it is still refused: still one warning.
      await vi.advanceTimersByTimeAsync(20_000);
      expect(kernel.dumps).toBe(dumps + 1);
      expect(rp.status().unwritableSysctls).toHaveLength(1);
      expect(warnings.filter((l) => l.includes('cannot be set'))).toHaveLength(1);
      // Someone sets it (an init container): the next resync sees it and the condition clears.
      readOnly = false;
      await vi.advanceTimersByTimeAsync(30_000);
      expect(rp.status().unwritableSysctls).toEqual([]);
      expect(await registry.getSingleMetricAsString('podnet_sysctl_unwritable')).not.toContain('ip_forward');
      await rp.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('tells a refused sysctl that stops forwarding from one that does not', async () => {
    const kernel = new FakeKernel();
    const rp = new RouteProgrammer({
      kernel,
      resyncIntervalMs: 0,
      families: [4, 6],
      sysctl: {
        // IPv6 on a read-only /proc/sys whose global switches an init container already set: only
        // the per-interface knobs that differ (accept_ra) are written, and refused.
        async apply(entries) {
          for (const e of entries)
            if (e.key.endsWith('/accept_ra'))
              throw new Error(`sh: 1: cannot create /proc/sys/${e.key}: Read-only file system`);
          return [];
        },
      },
    });
    await rp.setDesired(desired);
    await rp.start();
    expect(rp.status().unwritableSysctls).toMatchObject([
      { sysctl: 'net.ipv6.conf.pna.accept_ra', value: '0', code: 'EROFS', blocksForwarding: false },
    ]);
    await rp.stop();
  });

  it('removes only its own routes on stop without keepRoutes', async () => {
    const { kernel, rp } = setup();
    const foreign: KernelRoute = {
      family: 4,
      table: 254,
      dst: '192.168.0.0/16',
      metric: 0,
      protocol: RTPROT.static,
      kind: 'unicast',
      scope: 0,
      nexthops: [{ gateway: '172.20.0.1' }],
    };
    kernel.routes.set(slotKey(foreign), foreign);
    await rp.setDesired(desired);
    await rp.start();
    await rp.stop({ keepRoutes: false });
    expect([...kernel.routes.values()]).toEqual([foreign]);
    expect(kernel.closed).toBe(true);
  });

  it('refuses to start again once stopped', async () => {
    const { rp } = setup();
    await rp.start();
    await rp.stop();
    await expect(rp.start()).rejects.toMatchObject({ code: 'ROUTES_ERR_STOPPED' });
  });

  it('coalesces a burst of link removals into one resync', async () => {
    const { kernel, rp } = setup();
    await rp.start();
    const dumps = kernel.dumps;
    for (let i = 0; i < 50; i++) kernel.emit!({ type: 'link-removed', ifname: `pn${i}`, ifindex: 100 + i });
    await settle();
    expect(kernel.dumps).toBe(dumps + 1);
    await rp.stop();
  });

  it('writes the routes that wait for a new interface without dumping the tables', async () => {
    const { kernel, rp } = setup();
    await rp.start();
    const pods = computeDesired({
      localPods: [
        { ifname: 'pna', ips: ['10.0.0.1'] },
        { ifname: 'pnb', ips: ['10.0.0.2'] },
      ],
    }).routes;
    await rp.setDesired(pods);
    // pnb does not exist yet: its route waits.
    expect([...kernel.routes.values()].map((r) => r.dst)).toEqual(['10.0.0.1/32']);
    const dumps = kernel.dumps;
    kernel.links.push({ ifname: 'pnb', ifindex: 11, up: true });
    for (let i = 0; i < 20; i++)
      kernel.emit!({ type: 'link', ifname: `pnx${i}`, ifindex: 200 + i, up: false });
    kernel.emit!({ type: 'link', ifname: 'pnb', ifindex: 11, up: true });
    await settle();
    expect([...kernel.routes.values()].map((r) => r.dst).sort()).toEqual(['10.0.0.1/32', '10.0.0.2/32']);
    expect(kernel.dumps).toBe(dumps);
    // A link that comes while a dump runs (the dump began before it) is not lost.
    kernel.emit!({ type: 'link-removed', ifname: 'pnx0', ifindex: 200 });
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const listLinks = kernel.listLinks.bind(kernel);
    kernel.listLinks = async () => {
      const before = await listLinks();
      await gate;
      return before;
    };
    await settle(10);
    kernel.links.push({ ifname: 'pnc', ifindex: 12, up: true });
    kernel.emit!({ type: 'link', ifname: 'pnc', ifindex: 12, up: true });
    const writing = rp.setDesired([
      ...pods,
      ...computeDesired({ localPods: [{ ifname: 'pnc', ips: ['10.0.0.3'] }] }).routes,
    ]);
    open();
    await writing;
    await settle();
    kernel.listLinks = listLinks;
    expect([...kernel.routes.values()].map((r) => r.dst).sort()).toEqual([
      '10.0.0.1/32',
      '10.0.0.2/32',
      '10.0.0.3/32',
    ]);
    // A link going down may take routes with it: that needs the tables again.
    const dumps2 = kernel.dumps;
    kernel.emit!({ type: 'link', ifname: 'pnb', ifindex: 11, up: false });
    await settle();
    expect(kernel.dumps).toBe(dumps2 + 1);
    await rp.stop();
  });

  it('rejects a bad option naming it', () => {
    expect(() => new RouteProgrammer({ kernel: new FakeKernel(), resyncIntervalMs: -1 })).toThrow(
      'resyncIntervalMs: -1',
    );
  });
});

describe('setDesired with the whole set', () => {
  const PREFIXES = ['10.1.0.0/26', '10.1.0.64/26', '10.1.0.128/26', '10.1.0.192/26', '10.2.0.0/26'];
  const GATEWAYS = ['172.20.0.2', '172.20.0.3', '172.20.0.4'];
  const via = (p: number, g: number): DesiredRoute =>
    computeDesired({ remote: [{ prefix: PREFIXES[p]!, nextHops: [GATEWAYS[g]!] }] }).routes[0]!;
  const kernelView = (k: FakeKernel) =>
    Object.fromEntries(
      [...k.routes.values()].map((r) => [r.dst, r.nexthops.map((h) => h.gateway).join(',')]),
    );
  const expectedView = (m: Map<string, DesiredRoute>) =>
    Object.fromEntries(
      [...m.values()].map((r) => [r.dst, r.type === 'via' ? r.nexthops.map((h) => h.gateway).join(',') : '']),
    );

  it('applies one changed, added or removed destination in an otherwise identical list (fresh objects) as one operation', async () => {
    const { kernel, rp } = setup();
    const list = (changed: number) => PREFIXES.map((_, p) => via(p, p === changed ? 1 : 0));
    await rp.setDesired(list(-1));
    await rp.start();
    kernel.batches = [];
    await rp.setDesired(list(2));
    expect(kernel.batches.flat().map((op) => `${op.type} ${op.route.dst}`)).toEqual([
      'replace 10.1.0.128/26',
    ]);
    expect(kernelView(kernel)['10.1.0.128/26']).toBe('172.20.0.3');
    await rp.setDesired(list(2)); // nothing changed: nothing sent
    expect(kernel.batches.flat()).toHaveLength(1);
    // One destination more in the middle, then one fewer: one add, one delete.
    kernel.batches = [];
    const extra = computeDesired({ remote: [{ prefix: '10.3.0.0/26', nextHops: [GATEWAYS[2]!] }] })
      .routes[0]!;
    const longer = [...list(2).slice(0, 3), extra, ...list(2).slice(3)];
    await rp.setDesired(longer);
    await rp.setDesired(longer.filter((r) => r.dst !== '10.1.0.64/26'));
    expect(kernel.batches.flat().map((op) => `${op.type} ${op.route.dst}`)).toEqual([
      'add 10.3.0.0/26',
      'delete 10.1.0.64/26',
    ]);
    expect(Object.keys(kernelView(kernel)).sort()).toEqual([
      '10.1.0.0/26',
      '10.1.0.128/26',
      '10.1.0.192/26',
      '10.2.0.0/26',
      '10.3.0.0/26',
    ]);
    await rp.stop();
  });

  type Step =
    | { type: 'set'; list: [number, number][] }
    | { type: 'mutate'; index: number; gw: number }
    | { type: 'insert'; index: number; p: number; gw: number }
    | { type: 'remove'; index: number }
    | { type: 'patch'; p: number; gw: number };
  const pair = fc.tuple(fc.nat(PREFIXES.length - 1), fc.nat(GATEWAYS.length - 1));
  const step: fc.Arbitrary<Step> = fc.oneof(
    fc.record({ type: fc.constant('set' as const), list: fc.array(pair, { maxLength: 7 }) }),
    fc.record({
      type: fc.constant('set' as const),
      list: fc.uniqueArray(pair, { maxLength: PREFIXES.length, selector: (x) => x[0] }),
    }),
    fc.record({
      type: fc.constant('insert' as const),
      index: fc.nat(7),
      p: fc.nat(PREFIXES.length - 1),
      gw: fc.nat(2),
    }),
    fc.record({ type: fc.constant('remove' as const), index: fc.nat(7) }),
    fc.record({ type: fc.constant('mutate' as const), index: fc.nat(6), gw: fc.nat(GATEWAYS.length - 1) }),
    fc.record({ type: fc.constant('patch' as const), p: fc.nat(PREFIXES.length - 1), gw: fc.nat(2) }),
  );

  it('leaves the kernel exactly as the last list says, whatever the order, duplicates and patches in between', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 10 }), async (steps) => {
        const { kernel, rp } = setup();
        await rp.start();
        let list: [number, number][] = [];
        const model = new Map<string, DesiredRoute>();
        for (const st of steps) {
          if (st.type === 'patch') {
            const r = via(st.p, st.gw);
            model.set(slotKey(r), r);
            await rp.patchDesired({ set: [r] });
            continue;
          }
          if (st.type === 'set') list = st.list;
          else if (st.type === 'insert') {
            const at = st.index % (list.length + 1);
            list = [...list.slice(0, at), [st.p, st.gw], ...list.slice(at)];
          } else if (st.type === 'remove') list = list.filter((_, i) => i !== st.index % (list.length || 1));
          else if (list.length) {
            list = list.map((e, i): [number, number] => (i === st.index % list.length ? [e[0], st.gw] : e));
          }
          model.clear();
          const routes = list.map(([p, g]) => via(p, g));
          for (const r of routes) model.set(slotKey(r), r);
          await rp.setDesired(routes);
          expect(kernelView(kernel)).toEqual(expectedView(model));
        }
        expect(kernelView(kernel)).toEqual(expectedView(model));
        await rp.stop();
      }),
      { numRuns: 300 },
    );
  });
});
