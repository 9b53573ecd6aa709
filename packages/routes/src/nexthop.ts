// Recursive next-hop resolution, as BIRD's `gateway recursive`: a BGP next hop that is not on a
// connected subnet (nodes in different racks, one subnet per rack) is looked up in the kernel's own
// routes, and the block is installed via the gateway of the route that covers it. The kernel
// refuses `via` an address it cannot reach directly, so without this the route never goes in.
//
// Pure part: resolveNextHop(addr, routes) over a routing table. Shell: NextHopResolver keeps the
// table of routes podnet does not own, follows kernel route and link events, and says when any
// resolution may have changed.
import type { Logger } from 'pino';
import { type Prefix, parseAddr, tryParsePrefix } from './ip.js';
import type { KernelEvent, RouteKernel } from './kernel.js';
import { type KernelNextHop, type KernelRoute, PODNET_PROTO, RT_TABLE_MAIN } from './model.js';
import { rtnetlinkKernel } from './rtnl-kernel.js';

export type NextHopResolution =
  /** On a connected subnet: install `via <next hop>` as it is. */
  | { type: 'connected'; route: string }
  /** Behind a router: install `via <gateway>` for each gateway of the covering route. */
  | { type: 'recursive'; route: string; gateways: KernelNextHop[] }
  /** No usable route: nothing can be installed through it (RFC 4271 §9.1.2.1: not a candidate). */
  | { type: 'unreachable'; reason: string };

interface TableEntry {
  prefix: Prefix;
  route: KernelRoute;
}

/**
 * Resolves `addr` by longest match (then lowest metric) over `routes`, leaving out the routes that
 * carry `protocol` (podnet's own: a next hop is never resolved through a route it would install).
 */
export function resolveNextHop(
  addr: string,
  routes: readonly KernelRoute[],
  protocol = PODNET_PROTO,
): NextHopResolution {
  return resolveIn(addr, tableOf(routes, protocol));
}

function tableOf(routes: readonly KernelRoute[], protocol: number): TableEntry[] {
  const out: TableEntry[] = [];
  for (const route of routes) {
    if (route.protocol === protocol) continue;
    const prefix = tryParsePrefix(route.dst);
    if (prefix) out.push({ prefix, route });
  }
  // Longest prefix first, then lowest metric: the first entry that contains an address wins.
  return out.sort((a, b) => b.prefix.len - a.prefix.len || a.route.metric - b.route.metric);
}

function resolveIn(addr: string, table: readonly TableEntry[]): NextHopResolution {
  const a = parseAddr(addr);
  if (!a) return { type: 'unreachable', reason: `${JSON.stringify(addr)} is not an IP address` };
  const width = a.family === 4 ? 32 : 128;
  for (const { prefix, route } of table) {
    if (prefix.family !== a.family) continue;
    const shift = BigInt(width - prefix.len);
    if (a.bits >> shift !== prefix.bits >> shift) continue;
    if (route.kind !== 'unicast')
      return { type: 'unreachable', reason: `the route to it is ${route.kind} (${route.dst})` };
    const gateways = route.nexthops.filter((h) => h.gateway !== undefined);
    if (gateways.length === 0 || gateways.length < route.nexthops.length)
      return { type: 'connected', route: route.dst };
    return {
      type: 'recursive',
      route: route.dst,
      gateways: gateways.map((h) => ({
        gateway: h.gateway!,
        ...(h.oif !== undefined ? { oif: h.oif } : {}),
      })),
    };
  }
  return { type: 'unreachable', reason: 'no route to it' };
}

export interface NextHopResolverOptions {
  /** The kernel to read; default rtnetlink in `netns` (or in the process's own namespace). */
  kernel?: RouteKernel;
  netns?: string;
  /** podnet's protocol number: its routes are never used to resolve (default PODNET_PROTO, 213). */
  protocol?: number;
  /** Tables to resolve in (default main). */
  tables?: number[];
  /** Wait this long after a kernel event before re-reading the routes (default 50 ms). */
  eventDebounceMs?: number;
  logger?: Logger;
}

/**
 * The kernel's routes (those podnet does not own), kept current from route and link events.
 *
 *   const nh = new NextHopResolver({ netns });
 *   await nh.start();                      // first dump; follows events from here on
 *   nh.resolve('10.88.1.12');              // connected / recursive via the ToR / unreachable
 *   nh.onChange(() => ...);                // the table changed: resolve again
 */
export class NextHopResolver {
  private readonly kernel: RouteKernel;
  private readonly protocol: number;
  private readonly tables: number[];
  private readonly debounceMs: number;
  private readonly log: Logger | undefined;
  private table: TableEntry[] = [];
  private signature = '';
  private readonly cache = new Map<string, NextHopResolution>();
  /** The cache was cleared for its size since the last load: it no longer lists every address asked. */
  private evicted = false;
  private readonly listeners = new Set<() => void>();
  private unwatch: (() => void) | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private loading: Promise<void> | undefined;
  private again = false;
  private running = false;
  private started = false;

  constructor(options: NextHopResolverOptions = {}) {
    this.kernel = options.kernel ?? rtnetlinkKernel(options.netns ? { netns: options.netns } : {});
    this.protocol = options.protocol ?? PODNET_PROTO;
    this.tables = options.tables ?? [RT_TABLE_MAIN];
    this.debounceMs = options.eventDebounceMs ?? 50;
    this.log = options.logger?.child({ component: 'nexthops' });
  }

  /** Reads the kernel's routes and follows their changes. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.running = true;
    this.unwatch = this.kernel.watch((e) => this.onEvent(e));
    await this.reload();
  }

  /** True once the first dump is in. */
  get ready(): boolean {
    return this.signature !== '';
  }

  resolve(addr: string): NextHopResolution {
    let r = this.cache.get(addr);
    if (!r) {
      r = resolveIn(addr, this.table);
      if (this.cache.size >= 4096) {
        // Many distinct next hops: keep it bounded (and notify on the next change whatever it is).
        this.cache.clear();
        this.evicted = true;
      }
      this.cache.set(addr, r);
    }
    return r;
  }

  reachable(addr: string): boolean {
    return this.resolve(addr).type !== 'unreachable';
  }

  /** Calls `cb` after the routes changed (resolutions may differ). Returns the unsubscribe. */
  onChange(cb: () => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** Re-reads the routes now (and notifies when they changed). */
  async reload(): Promise<void> {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = (async () => {
      try {
        do {
          this.again = false;
          await this.loadOnce();
        } while (this.again && this.running);
      } finally {
        this.loading = undefined;
      }
    })();
    return this.loading;
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.debounce);
    this.unwatch?.();
    this.unwatch = undefined;
    await this.loading?.catch(() => undefined);
    await this.kernel.close();
  }

  private async loadOnce(): Promise<void> {
    let routes: KernelRoute[];
    try {
      routes = await this.kernel.listRoutes(this.tables);
    } catch (err) {
      // The table stays as it was; the next event or reload reads again.
      this.log?.warn(
        { err: (err as Error).message },
        'cannot read the kernel routes for next-hop resolution',
      );
      return;
    }
    const table = tableOf(
      routes.filter((r) => this.tables.includes(r.table)),
      this.protocol,
    );
    const sig = `v|${table.map((t) => routeSig(t.route)).join('\n')}`;
    if (sig === this.signature) return;
    const first = this.signature === '';
    this.signature = sig;
    this.table = table;
    // Listeners are told only when an address they asked about resolves differently now: a pod's
    // host route (every pod start adds one) changes the table, not the way to another node.
    const asked = [...this.cache];
    const evicted = this.evicted;
    this.cache.clear();
    this.evicted = false;
    if (first) return;
    const moved = asked.filter(([addr, was]) => {
      const now = resolveIn(addr, table);
      this.cache.set(addr, now);
      return JSON.stringify(now) !== JSON.stringify(was);
    });
    if (moved.length === 0 && !evicted) return;
    this.log?.debug(
      { routes: table.length, changed: moved.map(([addr]) => addr) },
      'kernel routes changed; resolving next hops again',
    );
    for (const cb of this.listeners) {
      try {
        cb();
      } catch (err) {
        this.log?.error({ err }, 'next-hop change listener failed');
      }
    }
  }

  private onEvent(e: KernelEvent): void {
    if (!this.running) return;
    // podnet's own route changes never change a resolution (its routes are left out).
    if ((e.type === 'route-deleted' || e.type === 'route-added') && e.protocol === this.protocol) return;
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.reload();
    }, this.debounceMs);
    this.debounce.unref?.();
  }
}

function routeSig(r: KernelRoute): string {
  const hops = r.nexthops.map((h) => `${h.gateway ?? ''}@${h.oif ?? ''}`).join(',');
  return `${r.table}|${r.dst}|${r.metric}|${r.kind}|${hops}`;
}
