// The route model shared by the pure layer (desired, diff) and the kernel shell.
import type { Family } from './ip.js';

/**
 * podnet's default route protocol number (rtm_protocol; the agent's `--route-protocol` changes
 * it). Every route podnet installs carries it, and only routes carrying it are ever changed or
 * removed. 213 is in neither iproute2's rt_protos nor FRR's (186-197), and is not BIRD's 12,
 * zebra's 11, babel's 42, openr's 99, nor Calico felix's: felix marks its VXLAN, IPIP-blackhole and
 * no-encap routes with 80 (and its device routes with 3, boot), and treats every proto-80 route as
 * its own. podnet used 80 before; docs/install.md says how to migrate from Calico and from 80.
 * `ip route show proto 213` lists podnet's routes; `podnetctl` prints the number.
 */
export const PODNET_PROTO = 213;
export const PODNET_PROTO_NAME = 'podnet';

/** rtm_protocol values (linux/rtnetlink.h) this package cares about. */
export const RTPROT = { unspec: 0, redirect: 1, kernel: 2, boot: 3, static: 4 } as const;
/** rtm_scope values (linux/rtnetlink.h). */
export const RT_SCOPE = { universe: 0, site: 200, link: 253, host: 254, nowhere: 255 } as const;
/** The main routing table (linux/rtnetlink.h RT_TABLE_MAIN). */
export const RT_TABLE_MAIN = 254;

/** The default metric the kernel gives a route without RTA_PRIORITY: 0 for IPv4, 1024 for IPv6. */
export const defaultMetric = (family: Family) => (family === 4 ? 0 : 1024);

/** One next hop of a `via` route: a gateway and, optionally, the interface to reach it by name. */
export interface DesiredNextHop {
  gateway: string;
  ifname?: string;
}

interface DesiredBase {
  /** Canonical prefix text (`10.65.1.0/26`). */
  dst: string;
  family: Family;
  table: number;
  metric: number;
}

/**
 * One route podnet wants in the kernel. A discriminated union on `type`:
 * - `local`: a pod address (/32, /128) on its pn* interface, scope link;
 * - `blackhole`: a block this node owns, so unused addresses in it are dropped, not routed out;
 * - `via`: a remote block (or a borrowed /32) via one or more node IPs (ECMP when several).
 */
export type DesiredRoute =
  | (DesiredBase & { type: 'local'; ifname: string })
  | (DesiredBase & { type: 'blackhole' })
  | (DesiredBase & { type: 'via'; nexthops: DesiredNextHop[] });

/** The kernel's route types this package distinguishes (rtm_type). */
export type KernelRouteKind = 'unicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'other';

export interface KernelNextHop {
  gateway?: string;
  /** Interface index. */
  oif?: number;
}

/** A route as the kernel holds it (from a dump), or as podnet asks the kernel to hold it. */
export interface KernelRoute {
  family: Family;
  table: number;
  /** Canonical prefix text. */
  dst: string;
  metric: number;
  protocol: number;
  kind: KernelRouteKind;
  scope: number;
  /** Empty for blackholes; one entry for a plain route; several for ECMP (RTA_MULTIPATH). */
  nexthops: KernelNextHop[];
}

/** An interface as the route programmer sees it. */
export interface LinkInfo {
  ifname: string;
  ifindex: number;
  /** Administratively up (IFF_UP). The kernel refuses, or flushes, routes on a down interface. */
  up: boolean;
}

/** The kernel key of a route: at most one route per (table, dst, metric) in IPv4 and IPv6. */
export const slotKey = (r: { table: number; dst: string; metric: number }) =>
  `${r.table}|${r.dst}|${r.metric}`;

/** One change the diff asks the kernel for. `add` and `replace` are both sent with replace semantics. */
export type RouteOp =
  | { type: 'add'; route: KernelRoute }
  | { type: 'replace'; route: KernelRoute; previous: KernelRoute; adopted: boolean }
  | { type: 'delete'; route: KernelRoute; reason: 'not-desired' | 'foreign-on-pod-interface' };

/** A desired route that a route podnet does not own occupies. Reported, never touched. */
export interface RouteConflict {
  desired: DesiredRoute;
  foreign: KernelRoute;
}

export type PendingReason = 'interface-missing' | 'interface-down';

export interface PendingRoute {
  route: DesiredRoute;
  reason: PendingReason;
}

/** Formats a route the way `ip route` would, for logs and podnetctl. */
export function formatKernelRoute(r: KernelRoute, names?: (ifindex: number) => string | undefined): string {
  const dev = (i: number | undefined) => (i === undefined ? '' : ` dev ${names?.(i) ?? `#${i}`}`);
  const parts: string[] = [];
  if (r.kind !== 'unicast') parts.push(r.kind);
  parts.push(r.dst);
  if (r.nexthops.length === 1) {
    const nh = r.nexthops[0]!;
    parts.push(`${nh.gateway ? ` via ${nh.gateway}` : ''}${dev(nh.oif)}`.trim());
  } else if (r.nexthops.length > 1) {
    for (const nh of r.nexthops) parts.push(`nexthop${nh.gateway ? ` via ${nh.gateway}` : ''}${dev(nh.oif)}`);
  }
  parts.push(`proto ${r.protocol === PODNET_PROTO ? PODNET_PROTO_NAME : r.protocol}`);
  if (r.scope === RT_SCOPE.link) parts.push('scope link');
  if (r.metric) parts.push(`metric ${r.metric}`);
  if (r.table !== RT_TABLE_MAIN) parts.push(`table ${r.table}`);
  return parts.filter((p) => p !== '').join(' ');
}
