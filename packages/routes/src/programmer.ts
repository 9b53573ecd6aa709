// The route programmer: holds desired and actual, applies the diff in batches with replace
// semantics, and resyncs from a kernel dump on start, on netlink events and on a timer.

import { netnsSysctl, procSysctl, type SysctlEntry, type SysctlWriter } from '@podnet/rtnetlink';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type DiffOptions, diffRoutes } from './diff.js';
import { RoutesError } from './errors.js';
import type { Family } from './ip.js';
import type { KernelEvent, RouteKernel } from './kernel.js';
import {
  type DesiredNextHop,
  type DesiredRoute,
  formatKernelRoute,
  type KernelRoute,
  type LinkInfo,
  type PendingRoute,
  PODNET_PROTO,
  type RouteConflict,
  type RouteOp,
  RT_TABLE_MAIN,
  slotKey,
} from './model.js';
import { type DesiredNeighbour, diffNeighbours, type KernelNeighbour, neighKey } from './neigh.js';
import type { NextHopResolver } from './nexthop.js';
import { rtnetlinkKernel } from './rtnl-kernel.js';
import {
  applyEach,
  forwardingGate,
  globalSysctls,
  podInterfaceSysctls,
  sysctlName,
  UNWRITABLE_CODES,
} from './sysctl.js';

export interface RouteProgrammerOptions {
  /** The kernel to program; default: rtnetlink in `netns` (or in the process's own namespace). */
  kernel?: RouteKernel;
  /** Namespace path for the default kernel and sysctl writer. */
  netns?: string;
  logger?: Logger;
  /** Metrics are registered here when given (podnet_route_*). */
  registry?: Registry;
  /** Full resync from a kernel dump this often (default 30 s; 0 disables the timer). */
  resyncIntervalMs?: number;
  /** Wait this long after a kernel event before resyncing, to coalesce bursts (default 50 ms). */
  eventDebounceMs?: number;
  /** After a failed apply, resync after this long (default 1 s). */
  retryMs?: number;
  /** podnet's protocol number (default PODNET_PROTO, 213). */
  protocol?: number;
  /** Tables podnet programs (default: the tables of the desired routes, and main). */
  tables?: number[];
  podIfacePrefix?: string;
  removeForeignOnPodIfaces?: boolean;
  adoptOnPodIfaces?: boolean;
  /** Sysctl writer; default /proc/sys, or `nsenter` into `netns`. `false` disables sysctls. */
  sysctl?: SysctlWriter | false;
  /**
   * Address families whose forwarding sysctls are written (the agent derives them from the
   * IPPools; setFamilies changes them). Default: the families of the desired routes. An IPv4-only
   * node never gets `net.ipv6.conf.all.forwarding` written.
   */
  families?: Family[];
  /**
   * Resolves `via` next hops through the kernel's own routes (BIRD's `gateway recursive`): a next
   * hop off the node's subnets is installed via the gateway of the route to it, and a next hop
   * with no route is reported (status().unresolved) instead of being retried.
   */
  resolver?: NextHopResolver;
  /**
   * After an apply that the kernel acknowledged, dump again after this long (coalesced) so that
   * routeStates() can say `installed` (default 1000 ms; 0: only the timer resync confirms).
   */
  verifyDelayMs?: number;
}

/**
 * Where one desired route stands, from what the kernel said:
 * - `installed`: the last dump holds it as wanted (after the kernel acknowledged any change);
 * - `applied`: the kernel acknowledged the change; no dump has confirmed it yet;
 * - `missing`: not in the kernel (a dump lacks it, or the kernel reported it deleted), not yet repaired;
 * - `pending`: waiting for its interface (absent or down), or not applied yet;
 * - `conflict`: a route podnet does not own holds the destination;
 * - `failed`: the kernel refused the operation (retried on the next resync);
 * - `unresolved`: none of its next hops has a route in the kernel.
 */
export type RouteState =
  | 'installed'
  | 'applied'
  | 'missing'
  | 'pending'
  | 'conflict'
  | 'failed'
  | 'unresolved';

export interface RouteStateView {
  dst: string;
  table: number;
  metric: number;
  state: RouteState;
  /** Why, for the states other than installed (the kernel's error, the pending reason, …). */
  detail?: string;
}

/** A sysctl the programmer needs but may not write (read-only /proc/sys). */
export interface SysctlProblem {
  /** Dotted name, e.g. `net.ipv4.ip_forward`. */
  sysctl: string;
  /** The value it needs. */
  value: string;
  /** Packets are not forwarded while it is wrong (forwardingGate): the node is not ready. */
  blocksForwarding: boolean;
  code: string;
  message: string;
  since: Date;
}

/** A desired route none of whose next hops has a route in the kernel: not installed. */
export interface UnresolvedRoute {
  dst: string;
  nextHops: { gateway: string; reason: string }[];
}

export interface RouteProgrammerStatus {
  running: boolean;
  protocol: number;
  desired: number;
  /** Routes with podnet's protocol in the kernel (as of the last dump plus applied changes). */
  installed: number;
  pending: PendingRoute[];
  conflicts: RouteConflict[];
  /** Operations that failed in the last apply (retried on the next resync). */
  failed: { route: string; code: string; message: string }[];
  lastResync?: Date;
  lastApply?: Date;
  /** True when the kernel matched desired after the last apply (no failures, nothing pending). */
  inSync: boolean;
  ops: { add: number; replace: number; delete: number };
  /** Permanent neighbour entries for local pods (when the kernel backend supports them). */
  neighbours: { desired: number; installed: number; pending: number };
  /** Routes whose next hops have no route in the kernel (with a resolver). */
  unresolved: UnresolvedRoute[];
  /** Families whose forwarding sysctls are kept. */
  families: Family[];
  /** Sysctls that could not be written because /proc/sys refuses writes; rechecked on each resync. */
  unwritableSysctls: SysctlProblem[];
}

type Trigger = 'start' | 'timer' | 'event' | 'retry' | 'desired' | 'manual' | 'verify';

/**
 * Makes the kernel's routes match `setDesired(...)`.
 *
 *   const rp = new RouteProgrammer({ netns, logger, registry, resyncIntervalMs: 30_000 });
 *   await rp.start();                         // dump, diff, apply; watch link/route events
 *   await rp.setDesired(computeDesired(inputs).routes);   // resolves once applied
 *   rp.status();                              // pending, conflicts, failures, counters
 *   await rp.stop({ keepRoutes: true });      // graceful restart keeps the kernel routes
 */
export class RouteProgrammer {
  private readonly kernel: RouteKernel;
  private readonly log: Logger | undefined;
  private readonly opts: Required<
    Pick<
      RouteProgrammerOptions,
      'resyncIntervalMs' | 'eventDebounceMs' | 'retryMs' | 'protocol' | 'verifyDelayMs'
    >
  >;
  private readonly diffOpts: DiffOptions;
  private readonly sysctl: SysctlWriter | undefined;
  private desired = new Map<string, DesiredRoute>();
  private actual = new Map<string, KernelRoute>();
  private links: LinkInfo[] = [];
  private desiredNeigh: DesiredNeighbour[] = [];
  private actualNeigh = new Map<string, KernelNeighbour>();
  /**
   * Entries this process installed. It removes these and the entries carrying its protocol (from
   * an earlier run), and with removeForeignOnPodIfaces any permanent entry on a pod interface.
   */
  private readonly ownedNeigh = new Set<string>();
  /** Neighbours are managed only once setDesiredNeighbours has said what is wanted. */
  private neighboursSet = false;
  private pendingNeigh = 0;
  private needDump = true;
  private dirty = false;
  private loop: Promise<void> | undefined;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  /** An event waiting for the debounced pass needs the kernel's tables dumped. */
  private eventDump = false;
  private stopped = false;
  /** `table|dst` of every desired route, for filtering route events; rebuilt on demand. */
  private desiredDsts: Set<string> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  /** Sysctl entries written (`key`, or `key#ifindex` for an interface's). */
  private readonly sysctlDone = new Set<string>();
  /** Entries /proc/sys refused (EROFS, EACCES, EPERM), by mark; tried again only on a resync. */
  private readonly sysctlUnwritable = new Map<string, SysctlProblem>();
  private families: Family[] | undefined;
  /** The families changed: the next sysctl pass covers every pod interface. */
  private sysctlFullPass = false;
  private readonly reportedConflicts = new Set<string>();
  private readonly resolver: NextHopResolver | undefined;
  private unresubscribe: (() => void) | undefined;
  private unresolvedBySlot = new Map<string, UnresolvedRoute>();
  /** Next hops reported as unreachable (logged once each, until they resolve again). */
  private readonly reportedUnreachable = new Set<string>();
  /**
   * The last list given to setDesired (a copy) with each entry's slot key, while `desired` still
   * holds exactly it and every slot appears once: lets an unchanged-shape setDesired skip the map.
   */
  private lastSet: { routes: DesiredRoute[]; keys: string[] } | undefined;
  /** Slots whose desired route changed since the last apply, or 'all' for a full diff. */
  private dirtySlots: Set<string> | 'all' = 'all';
  private pendingBySlot = new Map<string, PendingRoute>();
  private conflictBySlot = new Map<string, RouteConflict>();
  private failedBySlot = new Map<string, RouteProgrammerStatus['failed'][number]>();
  private lastResync: Date | undefined;
  private lastApply: Date | undefined;
  /** Slots the kernel acknowledged (add/replace) since the last dump: `applied`, not yet `installed`. */
  private readonly ackedSinceDump = new Set<string>();
  /** `table|dst` the kernel reported deleted (podnet's protocol) since the last dump: `missing`. */
  private readonly goneSinceDump = new Set<string>();
  /** Links added or brought up (events) since the last dump began: a dump that began before them misses them. */
  private readonly linksSinceDump = new Map<number, LinkInfo>();
  private verify: NodeJS.Timeout | undefined;
  private readonly counts = { add: 0, replace: 0, delete: 0 };
  private readonly metrics:
    | {
        reconcile: Histogram<'trigger'>;
        ops: Counter<'op'>;
        errors: Counter;
        conflicts: Gauge;
        pending: Gauge;
        desired: Gauge;
        unwritable: Gauge<'sysctl'>;
        unreachable: Gauge;
      }
    | undefined;

  constructor(private readonly options: RouteProgrammerOptions = {}) {
    this.kernel = options.kernel ?? rtnetlinkKernel(options.netns ? { netns: options.netns } : {});
    this.log = options.logger?.child({ component: 'routes' });
    this.opts = {
      resyncIntervalMs: options.resyncIntervalMs ?? 30_000,
      eventDebounceMs: options.eventDebounceMs ?? 50,
      retryMs: options.retryMs ?? 1000,
      protocol: options.protocol ?? PODNET_PROTO,
      verifyDelayMs: options.verifyDelayMs ?? 1000,
    };
    if (options.families) this.families = checkFamilies(options.families);
    this.resolver = options.resolver;
    for (const [field, v] of Object.entries(this.opts)) {
      if (typeof v === 'number' && (!Number.isInteger(v) || v < 0)) {
        throw new RoutesError(
          'ROUTES_ERR_INVALID',
          `${field}: ${JSON.stringify(v)} is not a non-negative integer`,
        );
      }
    }
    this.diffOpts = {
      protocol: this.opts.protocol,
      ...(options.podIfacePrefix !== undefined ? { podIfacePrefix: options.podIfacePrefix } : {}),
      ...(options.removeForeignOnPodIfaces !== undefined
        ? { removeForeignOnPodIfaces: options.removeForeignOnPodIfaces }
        : {}),
      ...(options.adoptOnPodIfaces !== undefined ? { adoptOnPodIfaces: options.adoptOnPodIfaces } : {}),
    };
    this.sysctl =
      options.sysctl === false
        ? undefined
        : (options.sysctl ?? (options.netns ? netnsSysctl(options.netns) : procSysctl()));
    if (options.registry) {
      const registers = [options.registry];
      this.metrics = {
        reconcile: new Histogram({
          name: 'podnet_route_reconcile_seconds',
          help: 'Time to reconcile kernel routes with desired routes, by trigger',
          labelNames: ['trigger'],
          buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
          registers,
        }),
        ops: new Counter({
          name: 'podnet_route_ops_total',
          help: 'Route operations applied, by op',
          labelNames: ['op'],
          registers,
        }),
        errors: new Counter({
          name: 'podnet_route_errors_total',
          help: 'Route operations the kernel refused',
          registers,
        }),
        conflicts: new Gauge({
          name: 'podnet_route_conflicts',
          help: 'Desired routes blocked by a route podnet does not own',
          registers,
        }),
        pending: new Gauge({
          name: 'podnet_route_pending',
          help: 'Desired routes waiting for their interface',
          registers,
        }),
        desired: new Gauge({
          name: 'podnet_routes_desired',
          help: 'Routes podnet wants in the kernel',
          registers,
        }),
        unwritable: new Gauge({
          name: 'podnet_sysctl_unwritable',
          help: 'Sysctls podnet needs that /proc/sys refuses to write (1 while refused), by sysctl',
          labelNames: ['sysctl'],
          registers,
        }),
        unreachable: new Gauge({
          name: 'podnet_route_nexthops_unreachable',
          help: 'Next hops of desired routes with no route in the kernel (their routes are not installed)',
          registers,
        }),
      };
    }
  }

  /** Dumps the kernel, applies the current desired set, and starts watching and the resync timer. */
  async start(): Promise<void> {
    if (this.running) return;
    if (this.stopped)
      throw new RoutesError('ROUTES_ERR_STOPPED', 'start: this route programmer was stopped; make a new one');
    this.running = true;
    this.unwatch = this.kernel.watch((e) => this.onEvent(e));
    this.unresubscribe = this.resolver?.onChange(() => {
      // Every `via` route may resolve differently now; no dump needed, the resolver read the kernel.
      this.dirtySlots = 'all';
      void this.kick('event', false);
    });
    if (this.opts.resyncIntervalMs > 0) {
      this.timer = setInterval(() => this.kick('timer', true), this.opts.resyncIntervalMs);
      this.timer.unref();
    }
    await this.kick('start', true);
  }

  /**
   * Replaces the desired set; resolves once the kernel has been updated (failures are retried).
   * Only the destinations whose desired route changed are diffed and applied.
   */
  async setDesired(routes: readonly DesiredRoute[]): Promise<void> {
    if (!this.setDesiredInPlace(routes)) {
      const next = new Map<string, DesiredRoute>();
      const keys: string[] = new Array(routes.length);
      for (let i = 0; i < routes.length; i++) {
        const r = routes[i]!;
        const k = slotKey(r);
        keys[i] = k;
        next.set(k, r);
      }
      const dirty = this.dirtySlots;
      if (dirty !== 'all') {
        for (const [k, r] of next) {
          const o = this.desired.get(k);
          if (!o || !sameDesired(o, r)) dirty.add(k);
        }
        for (const k of this.desired.keys()) if (!next.has(k)) dirty.add(k);
      }
      this.desired = next;
      this.desiredDsts = undefined;
      // Remembered for the in-place path when every slot appears once.
      this.lastSet = next.size === routes.length ? { routes: [...routes], keys } : undefined;
    }
    this.metrics?.desired.set(this.desired.size);
    if (this.running) await this.kick('desired', false);
  }

  /**
   * setDesired's cheap path, against the list given last time (what computeDesired gives when a
   * pod, a block or a next hop changes): the common prefix and suffix are compared position by
   * position without building keys, and only the part in between (the inserted, removed or moved
   * entries) is keyed. Touches only what changed. Returns false, having changed nothing, when the
   * general path must run (no previous list, or a destination listed twice).
   */
  private setDesiredInPlace(routes: readonly DesiredRoute[]): boolean {
    const last = this.lastSet;
    if (!last) return false;
    const prev = last.routes;
    const keys = last.keys;
    const n = routes.length;
    const m = prev.length;
    // Entries at the same slot whose route changed: [index in routes, index in prev].
    const changed: number[] = [];
    let i = 0;
    for (; i < n && i < m; i++) {
      const r = routes[i]!;
      const o = prev[i]!;
      if (r === o) continue;
      if (r.dst !== o.dst || r.table !== o.table || r.metric !== o.metric) break; // another slot
      if (!sameDesired(o, r)) changed.push(i, i);
    }
    let j = 0;
    for (; j < n - i && j < m - i; j++) {
      const r = routes[n - 1 - j]!;
      const o = prev[m - 1 - j]!;
      if (r === o) continue;
      if (r.dst !== o.dst || r.table !== o.table || r.metric !== o.metric) break;
      if (!sameDesired(o, r)) changed.push(n - 1 - j, m - 1 - j);
    }
    // The middle: routes[i, n - j) replaces prev[i, m - j).
    const oldMid = new Map<string, number>();
    for (let k = i; k < m - j; k++) oldMid.set(keys[k]!, k);
    const newMid = new Map<string, DesiredRoute>();
    const newKeys: string[] = [];
    for (let k = i; k < n - j; k++) {
      const r = routes[k]!;
      const key = slotKey(r);
      // Listed twice (in the middle, or also in the unchanged prefix/suffix): the general path.
      if (newMid.has(key) || (!oldMid.has(key) && this.desired.has(key))) return false;
      newMid.set(key, r);
      newKeys.push(key);
    }
    const dirty = this.dirtySlots;
    const mark = (key: string) => {
      if (dirty !== 'all') dirty.add(key);
    };
    for (let c = 0; c < changed.length; c += 2) {
      const key = keys[changed[c + 1]!]!;
      this.desired.set(key, routes[changed[c]!]!);
      mark(key);
    }
    let slotsChanged = false;
    for (const key of oldMid.keys()) {
      if (newMid.has(key)) continue;
      this.desired.delete(key);
      mark(key);
      slotsChanged = true;
    }
    for (const [key, r] of newMid) {
      const o = this.desired.get(key);
      if (o && sameDesired(o, r)) continue;
      if (!o) slotsChanged = true;
      this.desired.set(key, r);
      mark(key);
    }
    if (n === m) {
      for (let c = 0; c < changed.length; c += 2) prev[changed[c + 1]!] = routes[changed[c]!]!;
      for (let k = i; k < n - j; k++) {
        prev[k] = routes[k]!;
        keys[k] = newKeys[k - i]!;
      }
    } else {
      this.lastSet = { routes: [...routes], keys: [...keys.slice(0, i), ...newKeys, ...keys.slice(m - j)] };
    }
    if (slotsChanged) this.desiredDsts = undefined;
    return true;
  }

  /** Adds or changes (`set`) and removes (`remove`) desired routes, without restating the rest. */
  async patchDesired(patch: {
    set?: readonly DesiredRoute[];
    remove?: readonly DesiredRoute[];
  }): Promise<void> {
    this.lastSet = undefined; // the desired set no longer follows the last setDesired list
    const dirty = this.dirtySlots;
    for (const r of patch.remove ?? []) {
      const k = slotKey(r);
      if (this.desired.delete(k) && dirty !== 'all') dirty.add(k);
    }
    for (const r of patch.set ?? []) {
      const k = slotKey(r);
      const o = this.desired.get(k);
      if (o && sameDesired(o, r)) continue;
      this.desired.set(k, r);
      if (dirty !== 'all') dirty.add(k);
    }
    this.desiredDsts = undefined;
    this.metrics?.desired.set(this.desired.size);
    if (this.running) await this.kick('desired', false);
  }

  /**
   * Sets the permanent neighbour entries for local pods (computeDesired(...).neighbours); they
   * are kept on the next reconcile, and restored by resyncs.
   */
  async setDesiredNeighbours(neighbours: readonly DesiredNeighbour[]): Promise<void> {
    this.desiredNeigh = [...neighbours];
    this.neighboursSet = true;
    if (this.running) await this.kick('desired', false);
  }

  /**
   * Sets the address families whose forwarding sysctls are kept (from the IPPools). A family
   * added later gets its sysctls on the next reconcile; one removed is left as the kernel has it.
   */
  async setFamilies(families: readonly Family[]): Promise<void> {
    const next = checkFamilies(families);
    if (this.families && next.join() === this.families.join()) return;
    this.families = next;
    this.sysctlFullPass = true;
    if (this.running) await this.kick('desired', false);
  }

  /** Forces a resync from a kernel dump now. */
  resync(): Promise<void> {
    return this.kick('manual', true);
  }

  status(): RouteProgrammerStatus {
    let installed = 0;
    for (const r of this.actual.values()) if (r.protocol === this.opts.protocol) installed++;
    return {
      running: this.running,
      protocol: this.opts.protocol,
      desired: this.desired.size,
      installed,
      pending: [...this.pendingBySlot.values()],
      conflicts: [...this.conflictBySlot.values()],
      failed: [...this.failedBySlot.values()],
      ...(this.lastResync ? { lastResync: this.lastResync } : {}),
      ...(this.lastApply ? { lastApply: this.lastApply } : {}),
      inSync: this.lastApply !== undefined && this.failedBySlot.size === 0 && this.pendingBySlot.size === 0,
      ops: { ...this.counts },
      neighbours: {
        desired: this.desiredNeigh.length,
        installed: this.countOwnNeighbours(),
        pending: this.pendingNeigh,
      },
      unresolved: [...this.unresolvedBySlot.values()],
      families: this.familiesInUse(),
      unwritableSysctls: [...this.sysctlUnwritable.values()],
    };
  }

  /**
   * Every desired route with its state, from the kernel's answers: `installed` only when the
   * kernel acknowledged the route and a dump taken after that holds it.
   */
  routeStates(): RouteStateView[] {
    const conflicts = new Map<string, RouteConflict>();
    for (const c of this.conflictBySlot.values()) conflicts.set(slotKey(c.desired), c);
    const dirty = this.dirtySlots;
    const out: RouteStateView[] = [];
    for (const [k, d] of this.desired) {
      const view = (state: RouteState, detail?: string): RouteStateView => ({
        dst: d.dst,
        table: d.table,
        metric: d.metric,
        state,
        ...(detail ? { detail } : {}),
      });
      const c = conflicts.get(k);
      const f = this.failedBySlot.get(k);
      const u = this.unresolvedBySlot.get(k);
      const p = this.pendingBySlot.get(k);
      const a = this.actual.get(k);
      if (c) out.push(view('conflict', `held by ${formatKernelRoute(c.foreign)}`));
      else if (f) out.push(view('failed', `${f.code}: ${f.message}`));
      else if (u) out.push(view('unresolved', u.nextHops.map((h) => `${h.gateway}: ${h.reason}`).join('; ')));
      else if (p) out.push(view('pending', p.reason));
      else if (this.goneSinceDump.has(`${d.table}|${d.dst}`))
        out.push(view('missing', 'the kernel reported it deleted; a resync repairs it'));
      else if (dirty === 'all' || dirty.has(k)) out.push(view('pending', 'not applied yet'));
      else if (this.ackedSinceDump.has(k)) out.push(view('applied', 'acknowledged; awaiting a dump'));
      else if (a && a.protocol === this.opts.protocol) out.push(view('installed'));
      else out.push(view('missing', 'not in the last kernel dump'));
    }
    return out;
  }

  /**
   * Stops timers and watching. With keepRoutes (the default, for a graceful restart) the kernel
   * keeps podnet's routes; with keepRoutes false every route and permanent neighbour entry carrying
   * podnet's protocol is removed.
   */
  async stop(opts: { keepRoutes?: boolean } = {}): Promise<void> {
    this.running = false;
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    clearTimeout(this.retry);
    clearTimeout(this.verify);
    this.unwatch?.();
    this.unwatch = undefined;
    this.unresubscribe?.();
    this.unresubscribe = undefined;
    await this.loop;
    if (opts.keepRoutes === false) {
      const actual = await this.kernel.listRoutes(this.tables());
      const ops: RouteOp[] = actual
        .filter((r) => r.protocol === this.opts.protocol)
        .map((route) => ({ type: 'delete', route, reason: 'not-desired' }));
      const results = await this.kernel.apply(ops);
      const failed = results.filter((r) => !r.ok).length;
      this.log?.info({ removed: ops.length - failed, failed }, 'removed podnet routes on stop');
      if (this.kernel.listNeighbours && this.kernel.applyNeighbours) {
        const mine = (await this.kernel.listNeighbours()).filter((n) => n.protocol === this.opts.protocol);
        const nres = await this.kernel.applyNeighbours(mine.map((neigh) => ({ type: 'delete', neigh })));
        const nfailed = nres.filter((r) => !r.ok).length;
        if (mine.length)
          this.log?.info(
            { removed: mine.length - nfailed, failed: nfailed },
            'removed podnet neighbours on stop',
          );
      }
    }
    await this.kernel.close();
  }

  private tables(): number[] {
    const t = new Set(this.options.tables ?? [RT_TABLE_MAIN]);
    for (const r of this.desired.values()) t.add(r.table);
    return [...t];
  }

  private onEvent(e: KernelEvent): void {
    if (!this.running) return;
    switch (e.type) {
      case 'route-added':
        // Additions never take a route from podnet; next-hop changes come through the resolver.
        return;
      case 'route-deleted': {
        // Our own deletes remove routes that are no longer desired; anything else that takes away
        // a route we want (`ip route del`, a flushed interface) needs a resync.
        if (e.protocol !== this.opts.protocol) return;
        this.desiredDsts ??= new Set([...this.desired.values()].map((d) => `${d.table}|${d.dst}`));
        const wanted = this.desiredDsts.has(`${e.table}|${e.dst}`);
        if (!wanted) return;
        this.goneSinceDump.add(`${e.table}|${e.dst}`);
        this.log?.info({ dst: e.dst, table: e.table }, 'podnet route deleted outside podnet; resyncing');
        break;
      }
      case 'link':
      case 'link-removed': {
        const known = this.links.find((l) => l.ifindex === e.ifindex);
        if (e.type === 'link' && known && known.up === e.up && known.ifname === e.ifname) return;
        if (e.type === 'link-removed') this.forgetInterfaceSysctls(e.ifindex);
        if (e.type !== 'link' || e.up === false) this.linksSinceDump.delete(e.ifindex);
        if (e.type === 'link' && (!known || (known.ifname === e.ifname && !known.up && e.up))) {
          // A new interface (a pod's veth), or one coming up: no route went away with it, so the
          // routes that wait for it are written from what is known, without dumping the kernel's
          // tables (on a node with hundreds of pods, every pod start cost a dump of them all).
          const link = { ifname: e.ifname, ifindex: e.ifindex, up: e.up };
          this.linksSinceDump.set(e.ifindex, link);
          this.links = known
            ? this.links.map((l) => (l.ifindex === e.ifindex ? link : l))
            : [...this.links, link];
          this.dirtySlots = 'all';
          this.log?.debug(
            { ifname: e.ifname, ifindex: e.ifindex, up: e.up },
            'link added or up; reconciling',
          );
          this.scheduleEventPass(false);
          return;
        }
        this.log?.debug({ event: e.type, ifname: e.ifname, ifindex: e.ifindex }, 'link changed; resyncing');
        break;
      }
      case 'overflow':
        this.log?.warn('kernel events lost; resyncing');
        break;
    }
    this.scheduleEventPass(true);
  }

  /**
   * The first event schedules a pass (with a dump of the kernel's tables when `dump`); later ones
   * until it runs are covered by it (a steady stream of events cannot postpone it forever).
   */
  private scheduleEventPass(dump: boolean): void {
    if (dump) this.eventDump = true;
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      const withDump = this.eventDump;
      this.eventDump = false;
      void this.kick('event', withDump);
    }, this.opts.eventDebounceMs);
  }

  /**
   * Asks for a reconcile (with a kernel dump when `dump`). One loop runs at a time; a request made
   * while it runs makes it go round once more. Resolves when the loop is done.
   */
  private kick(trigger: Trigger, dump: boolean): Promise<void> {
    if (dump) this.needDump = true;
    this.dirty = true;
    if (!this.running) return Promise.resolve();
    if (!this.loop) {
      let done!: () => void;
      this.loop = new Promise<void>((r) => {
        done = r;
      });
      void this.runLoop(trigger).then(done);
    }
    return this.loop;
  }

  private async runLoop(trigger: Trigger): Promise<void> {
    try {
      while (this.dirty && this.running) {
        this.dirty = false;
        await this.reconcileOnce(trigger);
      }
    } finally {
      this.loop = undefined;
    }
  }

  private async reconcileOnce(trigger: Trigger): Promise<void> {
    const t0 = process.hrtime.bigint();
    try {
      if (this.needDump) {
        this.needDump = false;
        this.dirtySlots = 'all';
        // The dump is the truth from here on; a deletion reported while it runs marks the slot again.
        this.ackedSinceDump.clear();
        this.goneSinceDump.clear();
        this.linksSinceDump.clear();
        // One after the other: a netlink socket runs one dump at a time (EBUSY otherwise).
        const links = await this.kernel.listLinks();
        const routes = await this.kernel.listRoutes(this.tables());
        // A link that came (up) while the dump ran may be missing from it, or listed as it was.
        const dumped = new Set(links.map((l) => l.ifindex));
        this.links = [
          ...links.map((l) => this.linksSinceDump.get(l.ifindex) ?? l),
          ...[...this.linksSinceDump.values()].filter((l) => !dumped.has(l.ifindex)),
        ];
        this.actual = new Map(routes.map((r) => [slotKey(r), r]));
        if (this.kernel.listNeighbours) {
          this.actualNeigh = new Map((await this.kernel.listNeighbours()).map((n) => [neighKey(n), n]));
        }
        this.lastResync = new Date();
      }
      const dirty = this.dirtySlots;
      this.dirtySlots = new Set();
      let desired: DesiredRoute[];
      let actual: KernelRoute[];
      if (dirty === 'all') {
        desired = [...this.desired.values()];
        actual = [...this.actual.values()];
        this.pendingBySlot.clear();
        this.conflictBySlot.clear();
        this.failedBySlot.clear();
        this.unresolvedBySlot.clear();
      } else {
        desired = [];
        actual = [];
        for (const k of dirty) {
          const d = this.desired.get(k);
          if (d) desired.push(d);
          const a = this.actual.get(k);
          if (a) actual.push(a);
          this.pendingBySlot.delete(k);
          this.conflictBySlot.delete(k);
          this.failedBySlot.delete(k);
          this.unresolvedBySlot.delete(k);
        }
      }
      const diff = diffRoutes(this.resolveNextHops(desired), actual, this.links, this.diffOpts);
      this.reportDiff(diff.conflicts, diff.pending);
      const results = await this.kernel.apply(diff.ops);
      let failures = 0;
      diff.ops.forEach((op, i) => {
        const r = results[i] ?? { ok: false as const, code: 'EUNKNOWN', message: 'no result' };
        const key = slotKey(op.route);
        if (r.ok || (op.type === 'delete' && r.code === 'ESRCH')) {
          if (op.type === 'delete') this.actual.delete(key);
          else {
            this.actual.set(key, op.route);
            this.ackedSinceDump.add(key);
            if (this.goneSinceDump.size) this.goneSinceDump.delete(`${op.route.table}|${op.route.dst}`);
          }
          this.counts[op.type]++;
          this.metrics?.ops.inc({ op: op.type });
          if (op.type === 'replace' && op.adopted) {
            this.log?.info(
              { route: formatKernelRoute(op.route), previous: op.previous.protocol },
              'adopted route',
            );
          }
        } else {
          failures++;
          this.failedBySlot.set(key, {
            route: formatKernelRoute(op.route),
            code: r.code,
            message: r.message,
          });
          this.metrics?.errors.inc();
        }
      });
      if (this.ackedSinceDump.size) this.scheduleVerify();
      failures += await this.applyNeighbours();
      await this.applySysctls(desired, trigger);
      this.lastApply = new Date();
      if (failures) {
        this.log?.warn(
          { failed: [...this.failedBySlot.values()].slice(0, 10), count: failures },
          'route operations failed',
        );
        this.scheduleRetry();
      }
      if (diff.ops.length) {
        this.log?.debug({ trigger, ops: diff.ops.length, failed: failures }, 'routes reconciled');
      }
    } catch (err) {
      this.log?.error({ trigger, err }, 'reconcile failed');
      this.failedBySlot.set('*', {
        route: '*',
        code: (err as { code?: string }).code ?? 'ERROR',
        message: (err as Error).message,
      });
      this.needDump = true;
      this.scheduleRetry();
    } finally {
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      this.metrics?.reconcile.observe({ trigger }, s);
    }
  }

  private countOwnNeighbours(): number {
    let n = 0;
    for (const [k, e] of this.actualNeigh)
      if (e.protocol === this.opts.protocol || this.ownedNeigh.has(k)) n++;
    return n;
  }

  /**
   * Brings permanent neighbour entries in line; returns how many operations failed. Before
   * setDesiredNeighbours is first called nothing is removed (a restarted agent has not said yet
   * which entries it wants), except foreign entries on pod interfaces with removeForeignOnPodIfaces.
   */
  private async applyNeighbours(): Promise<number> {
    if (!this.kernel.applyNeighbours) return 0;
    if (!this.neighboursSet && !this.diffOpts.removeForeignOnPodIfaces) return 0;
    const prefix = this.diffOpts.podIfacePrefix ?? 'pn';
    const podIndex = new Set(this.links.filter((l) => l.ifname.startsWith(prefix)).map((l) => l.ifindex));
    const protocol = this.opts.protocol;
    const diff = diffNeighbours(
      this.desiredNeigh,
      [...this.actualNeigh.values()],
      this.links,
      (n) =>
        (this.neighboursSet && (n.protocol === protocol || this.ownedNeigh.has(neighKey(n)))) ||
        (this.diffOpts.removeForeignOnPodIfaces === true && podIndex.has(n.ifindex)),
      protocol,
    );
    this.pendingNeigh = diff.pending.length;
    if (diff.ops.length === 0) return 0;
    const results = await this.kernel.applyNeighbours(diff.ops);
    let failures = 0;
    diff.ops.forEach((op, i) => {
      const r = results[i];
      const k = neighKey(op.neigh);
      if (r?.ok || (op.type === 'delete' && r?.code === 'ENOENT')) {
        if (op.type === 'delete') {
          this.actualNeigh.delete(k);
          this.ownedNeigh.delete(k);
        } else {
          this.actualNeigh.set(k, op.neigh);
          this.ownedNeigh.add(k);
        }
      } else {
        failures++;
        this.failedBySlot.set(`neigh|${k}`, {
          route: `neigh ${op.neigh.ip} ifindex ${op.neigh.ifindex}`,
          code: r?.code ?? 'EUNKNOWN',
          message: r?.ok === false ? r.message : 'no result',
        });
      }
    });
    return failures;
  }

  private scheduleRetry(): void {
    if (!this.running || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.kick('retry', true);
    }, this.opts.retryMs);
    this.retry.unref();
  }

  /** A dump after acknowledged changes, so that they can be reported as installed. */
  private scheduleVerify(): void {
    if (!this.running || this.verify || this.opts.verifyDelayMs === 0) return;
    this.verify = setTimeout(() => {
      this.verify = undefined;
      void this.kick('verify', true);
    }, this.opts.verifyDelayMs);
    this.verify.unref();
  }

  private reportDiff(conflicts: RouteConflict[], pending: PendingRoute[]): void {
    for (const c of conflicts) {
      const k = slotKey(c.foreign);
      this.conflictBySlot.set(k, c);
      if (this.reportedConflicts.has(k)) continue;
      this.reportedConflicts.add(k);
      this.log?.warn(
        { dst: c.desired.dst, wanted: c.desired.type, foreign: formatKernelRoute(c.foreign) },
        'route conflict: a route podnet does not own holds the destination; leaving it alone',
      );
    }
    for (const k of this.reportedConflicts) if (!this.conflictBySlot.has(k)) this.reportedConflicts.delete(k);
    for (const p of pending) this.pendingBySlot.set(slotKey(p.route), p);
    this.metrics?.conflicts.set(this.conflictBySlot.size);
    this.metrics?.pending.set(this.pendingBySlot.size);
  }

  /** The families whose sysctls are kept: as set, or those of the desired routes. */
  private familiesInUse(): Family[] {
    if (this.families) return this.families;
    const f = new Set<Family>();
    for (const r of this.desired.values()) f.add(r.family);
    return [...f].sort();
  }

  private forgetInterfaceSysctls(ifindex: number): void {
    const suffix = `#${ifindex}`;
    for (const m of this.sysctlDone) if (m.endsWith(suffix)) this.sysctlDone.delete(m);
    for (const [m, p] of this.sysctlUnwritable)
      if (m.endsWith(suffix)) {
        this.sysctlUnwritable.delete(m);
        this.metrics?.unwritable.remove({ sysctl: p.sysctl });
      }
  }

  /**
   * Writes the forwarding sysctls of the families in use, globally (checked again on every resync)
   * and per pod interface (once per interface). A write
   * that /proc/sys refuses (read-only under containerd and CRI-O) is reported once (status, a
   * warning, podnet_sysctl_unwritable) and tried again only on a timer or manual resync, where the
   * read-before-write also notices when someone else (an init container) has set it meanwhile.
   */
  private async applySysctls(desired: DesiredRoute[], trigger: Trigger): Promise<void> {
    if (!this.sysctl) return;
    const recheck = trigger === 'timer' || trigger === 'manual' || trigger === 'start';
    const families = this.familiesInUse();
    const todo: { entry: SysctlEntry; mark: string }[] = [];
    const want = (entry: SysctlEntry, mark: string, verify = false) => {
      if ((this.sysctlDone.has(mark) && !verify) || todo.some((t) => t.mark === mark)) return;
      if (this.sysctlUnwritable.has(mark) && !recheck) return;
      todo.push({ entry, mark });
    };
    // The global switches are read again on every timer or manual resync (drift: something set
    // ip_forward back to 0); per-interface ones once per interface.
    for (const e of globalSysctls(families)) want(e, e.key, recheck);
    const up = new Map(this.links.map((l) => [l.ifname, l]));
    // Every pod interface on a full pass (a timer resync), else the ones whose routes changed.
    const locals = recheck || this.sysctlFullPass ? [...this.desired.values()] : desired;
    this.sysctlFullPass = false;
    for (const d of locals) {
      if (d.type !== 'local') continue;
      const l = up.get(d.ifname);
      if (!l) continue;
      for (const e of podInterfaceSysctls(l.ifname, families)) want(e, `${e.key}#${l.ifindex}`);
    }
    if (!todo.length) return;
    const results = await applyEach(
      this.sysctl,
      todo.map((t) => t.entry),
    );
    const changed: string[] = [];
    let transient = false;
    results.forEach((r, i) => {
      const { mark } = todo[i]!;
      const name = sysctlName(r.entry.key);
      if (r.ok) {
        this.sysctlDone.add(mark);
        if (r.changed) changed.push(r.entry.key);
        if (this.sysctlUnwritable.delete(mark)) {
          this.metrics?.unwritable.remove({ sysctl: name });
          this.log?.info({ sysctl: name, value: r.entry.value }, 'sysctl is set now');
        }
        return;
      }
      if (UNWRITABLE_CODES.has(r.code)) {
        if (!this.sysctlUnwritable.has(mark)) {
          this.log?.warn(
            { sysctl: name, value: r.entry.value, code: r.code, err: r.message },
            `sysctl ${name} is not ${r.entry.value} and cannot be set (${r.code}): /proc/sys is read-only for podnet; set it on the node (an init container, or a privileged agent); checked again on every resync`,
          );
          this.sysctlUnwritable.set(mark, {
            sysctl: name,
            value: r.entry.value,
            blocksForwarding: forwardingGate(r.entry.key),
            code: r.code,
            message: r.message,
            since: new Date(),
          });
        }
        this.metrics?.unwritable.set({ sysctl: name }, 1);
        return;
      }
      // An interface can vanish between the dump and the write: retry on the next resync.
      transient = true;
      this.log?.warn(
        { sysctl: name, code: r.code, err: r.message },
        'sysctl not written; retrying on the next resync',
      );
    });
    if (changed.length) this.log?.info({ changed }, 'sysctls written');
    if (transient) {
      this.needDump = true;
      this.scheduleRetry();
    }
  }

  /**
   * With a resolver: each `via` next hop becomes the gateway(s) the kernel's route to it names
   * (or stays, when it is on a connected subnet). A route none of whose next hops resolves is left
   * out (so an installed one goes) and listed in status().unresolved; each such next hop is logged
   * once. The resolver's change event brings them back.
   */
  private resolveNextHops(desired: DesiredRoute[]): DesiredRoute[] {
    const resolver = this.resolver;
    if (!resolver) return desired;
    const out: DesiredRoute[] = [];
    for (const d of desired) {
      if (d.type !== 'via') {
        out.push(d);
        continue;
      }
      const hops: DesiredNextHop[] = [];
      const seen = new Set<string>();
      const bad: UnresolvedRoute['nextHops'] = [];
      const add = (h: DesiredNextHop) => {
        const k = `${h.gateway}@${h.ifname ?? ''}`;
        if (seen.has(k)) return;
        seen.add(k);
        hops.push(h);
      };
      for (const nh of d.nexthops) {
        if (nh.ifname !== undefined) {
          add(nh);
          continue;
        }
        const r = resolver.resolve(nh.gateway);
        if (r.type === 'connected') add(nh);
        else if (r.type === 'recursive') for (const g of r.gateways) add({ gateway: g.gateway! });
        else bad.push({ gateway: nh.gateway, reason: r.reason });
      }
      if (hops.length === 0) {
        this.unresolvedBySlot.set(slotKey(d), { dst: d.dst, nextHops: bad });
        continue;
      }
      out.push(
        hops.length === d.nexthops.length && hops.every((h, i) => h === d.nexthops[i])
          ? d
          : { ...d, nexthops: hops },
      );
    }
    this.reportUnresolved();
    return out;
  }

  private reportUnresolved(): void {
    const now = new Map<string, string>();
    for (const u of this.unresolvedBySlot.values()) for (const h of u.nextHops) now.set(h.gateway, h.reason);
    for (const [gw, reason] of now) {
      if (this.reportedUnreachable.has(gw)) continue;
      this.reportedUnreachable.add(gw);
      const routes = [...this.unresolvedBySlot.values()].filter((u) =>
        u.nextHops.some((h) => h.gateway === gw),
      );
      this.log?.warn(
        { nextHop: gw, reason, routes: routes.slice(0, 10).map((u) => u.dst), count: routes.length },
        'next hop has no route in the kernel; its routes are not installed until one appears',
      );
    }
    for (const gw of this.reportedUnreachable)
      if (!now.has(gw)) {
        this.reportedUnreachable.delete(gw);
        this.log?.info({ nextHop: gw }, 'next hop reachable again');
      }
    this.metrics?.unreachable.set(now.size);
  }
}

function checkFamilies(families: readonly Family[]): Family[] {
  for (const f of families)
    if (f !== 4 && f !== 6)
      throw new RoutesError('ROUTES_ERR_INVALID', `families: ${JSON.stringify(f)} is not 4 or 6`);
  return [...new Set(families)].sort();
}

/** True when two desired routes ask for the same thing (computeDesired makes fresh objects). */
export function sameDesired(a: DesiredRoute, b: DesiredRoute): boolean {
  if (a === b) return true;
  if (a.type !== b.type || a.dst !== b.dst || a.table !== b.table || a.metric !== b.metric) return false;
  if (a.type === 'local') return a.ifname === (b as typeof a).ifname;
  if (a.type === 'via') {
    // A plain loop: setDesired calls this for every destination, often before the JIT has.
    const ah = a.nexthops;
    const bh = (b as typeof a).nexthops;
    if (ah.length !== bh.length) return false;
    for (let i = 0; i < ah.length; i++) {
      const x = ah[i]!;
      const y = bh[i]!;
      if (x.gateway !== y.gateway || x.ifname !== y.ifname) return false;
    }
    return true;
  }
  return true;
}
