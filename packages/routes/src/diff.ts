// The pure diff: desired routes + the kernel's routes + the interfaces → the operations that make
// the kernel match, the conflicts with routes podnet does not own, and the routes still waiting
// for their interface. Ownership is by protocol number: only routes carrying podnet's are changed
// or removed, with two narrow, explicit exceptions on pod interfaces (see DiffOptions).
import {
  type DesiredRoute,
  type KernelNextHop,
  type KernelRoute,
  type LinkInfo,
  type PendingRoute,
  PODNET_PROTO,
  type RouteConflict,
  type RouteOp,
  RT_SCOPE,
  RTPROT,
  slotKey,
} from './model.js';

export interface DiffOptions {
  /** podnet's protocol number (default PODNET_PROTO). */
  protocol?: number;
  /** Interface names starting with this are pod interfaces (default `pn`). */
  podIfacePrefix?: string;
  /**
   * Take over a route another protocol put exactly where a desired local pod route goes, on that
   * same pod interface (the CNI plugin's `podIP/32 dev pnX scope link` when it did not use podnet's
   * protocol). Default true.
   */
  adoptOnPodIfaces?: boolean;
  /** Remove (or overwrite) routes of other protocols on pod interfaces. Default false. */
  removeForeignOnPodIfaces?: boolean;
}

export interface RouteDiff {
  /** Adds and replaces first, then deletes, so nothing is removed before its successor is in place. */
  ops: RouteOp[];
  conflicts: RouteConflict[];
  pending: PendingRoute[];
  /** Desired routes already in the kernel exactly as wanted. */
  unchanged: number;
}

/** Turns a desired route into the kernel route podnet would install, or says why it must wait. */
export function resolveDesired(
  d: DesiredRoute,
  linkByName: ReadonlyMap<string, LinkInfo>,
  protocol = PODNET_PROTO,
): { type: 'ready'; route: KernelRoute } | { type: 'pending'; pending: PendingRoute } {
  const base = { family: d.family, table: d.table, dst: d.dst, metric: d.metric, protocol };
  const linkOf = (ifname: string) => {
    const l = linkByName.get(ifname);
    if (!l) return { type: 'pending' as const, pending: { route: d, reason: 'interface-missing' as const } };
    if (!l.up) return { type: 'pending' as const, pending: { route: d, reason: 'interface-down' as const } };
    return l;
  };
  switch (d.type) {
    case 'local': {
      const l = linkOf(d.ifname);
      if ('type' in l) return l;
      return {
        type: 'ready',
        route: { ...base, kind: 'unicast', scope: RT_SCOPE.link, nexthops: [{ oif: l.ifindex }] },
      };
    }
    case 'blackhole':
      return { type: 'ready', route: { ...base, kind: 'blackhole', scope: RT_SCOPE.universe, nexthops: [] } };
    case 'via': {
      const nexthops: KernelNextHop[] = [];
      for (const nh of d.nexthops) {
        if (nh.ifname === undefined) {
          nexthops.push({ gateway: nh.gateway });
          continue;
        }
        const l = linkOf(nh.ifname);
        if ('type' in l) return l;
        nexthops.push({ gateway: nh.gateway, oif: l.ifindex });
      }
      return { type: 'ready', route: { ...base, kind: 'unicast', scope: RT_SCOPE.universe, nexthops } };
    }
  }
}

const hopKey = (h: KernelNextHop) => `${h.gateway ?? ''}@${h.oif ?? ''}`;

/**
 * True when the kernel's route `have` is what `want` asks for. A wanted next hop without an
 * interface matches whatever interface the kernel resolved the gateway to.
 */
export function routeMatches(want: KernelRoute, have: KernelRoute): boolean {
  if (
    want.family !== have.family ||
    want.table !== have.table ||
    want.dst !== have.dst ||
    want.metric !== have.metric ||
    want.protocol !== have.protocol ||
    want.kind !== have.kind ||
    // IPv6 has no route scopes: the kernel ignores rtm_scope and reports universe.
    (want.family === 4 && want.scope !== have.scope) ||
    (want.kind === 'unicast' && want.nexthops.length !== have.nexthops.length)
  ) {
    return false;
  }
  // A blackhole has no next hop; the kernel reports IPv6 ones on `lo`.
  if (want.kind !== 'unicast') return true;
  const byGateway = (a: KernelNextHop, b: KernelNextHop) => (hopKey(a) < hopKey(b) ? -1 : 1);
  const w = [...want.nexthops].sort(byGateway);
  const h = [...have.nexthops].sort(byGateway);
  return w.every((x, i) => {
    const y = h[i]!;
    return (x.gateway ?? '') === (y.gateway ?? '') && (x.oif === undefined || x.oif === y.oif);
  });
}

/** Computes what to change in the kernel. Pure: the same inputs always give the same diff. */
export function diffRoutes(
  desired: readonly DesiredRoute[],
  actual: readonly KernelRoute[],
  links: readonly LinkInfo[],
  opts: DiffOptions = {},
): RouteDiff {
  const protocol = opts.protocol ?? PODNET_PROTO;
  const podPrefix = opts.podIfacePrefix ?? 'pn';
  const adopt = opts.adoptOnPodIfaces ?? true;
  const removeForeign = opts.removeForeignOnPodIfaces ?? false;
  const linkByName = new Map(links.map((l) => [l.ifname, l]));
  const nameByIndex = new Map(links.map((l) => [l.ifindex, l.ifname]));
  const isPodIface = (i: number | undefined) =>
    i !== undefined && (nameByIndex.get(i)?.startsWith(podPrefix) ?? false);
  const onPodIfaces = (r: KernelRoute) =>
    r.kind === 'unicast' && r.nexthops.length > 0 && r.nexthops.every((h) => isPodIface(h.oif));

  const actualBySlot = new Map<string, KernelRoute>();
  const extras: KernelRoute[] = [];
  for (const a of actual) {
    const k = slotKey(a);
    if (actualBySlot.has(k)) extras.push(a);
    else actualBySlot.set(k, a);
  }

  const upserts: RouteOp[] = [];
  const deletes: RouteOp[] = [];
  const conflicts: RouteConflict[] = [];
  const pending: PendingRoute[] = [];
  const claimed = new Set<string>();
  let unchanged = 0;

  for (const d of desired) {
    const key = slotKey(d);
    claimed.add(key);
    const r = resolveDesired(d, linkByName, protocol);
    if (r.type === 'pending') {
      pending.push(r.pending);
      continue;
    }
    const want = r.route;
    const have = actualBySlot.get(key);
    if (!have) {
      upserts.push({ type: 'add', route: want });
    } else if (have.protocol === protocol) {
      if (routeMatches(want, have)) unchanged++;
      else upserts.push({ type: 'replace', route: want, previous: have, adopted: false });
    } else if (
      have.protocol !== RTPROT.kernel &&
      onPodIfaces(have) &&
      (removeForeign ||
        (adopt &&
          d.type === 'local' &&
          have.nexthops.length === 1 &&
          have.nexthops[0]!.oif === want.nexthops[0]?.oif))
    ) {
      upserts.push({ type: 'replace', route: want, previous: have, adopted: true });
    } else {
      conflicts.push({ desired: d, foreign: have });
    }
  }

  for (const a of [...actualBySlot.values(), ...extras]) {
    if (claimed.has(slotKey(a)) && !extras.includes(a)) continue;
    if (a.protocol === protocol) deletes.push({ type: 'delete', route: a, reason: 'not-desired' });
    else if (removeForeign && a.protocol !== RTPROT.kernel && onPodIfaces(a) && !claimed.has(slotKey(a))) {
      deletes.push({ type: 'delete', route: a, reason: 'foreign-on-pod-interface' });
    }
  }

  return { ops: [...upserts, ...deletes], conflicts, pending, unchanged };
}
