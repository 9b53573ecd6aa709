// @podnet/routes — the route programmer: desired routes to kernel routes, owned by protocol number.
//
// Pure layer (no kernel needed):
//   computeDesired({ localPods, ownedBlocks, remote, table?, metric? }) → { routes, rejected, shadowed }
//   diffRoutes(desired, actualKernelRoutes, links, { removeForeignOnPodIfaces?, adoptOnPodIfaces? })
//     → { ops (add/replace before delete), conflicts (foreign routes, never touched), pending, unchanged }
//   PODNET_PROTO (213; the agent's --route-protocol): every route podnet installs carries it; only such routes are changed/removed.
//
// Shell (the reconciler the agent composes):
//   const rp = new RouteProgrammer({ kernel?, netns?, logger, registry, resyncIntervalMs: 30_000,
//                                    removeForeignOnPodIfaces: false, sysctl? });
//   await rp.start();                                   // dump, diff, apply; watch link/route events
//   await rp.setDesired(computeDesired(inputs).routes); // resolves once applied (failures retried)
//     (the same destinations in the same order as last time: compared in place, O(n) without keys or maps)
//   await rp.patchDesired({ set: [route], remove: [route] }); // O(changes), for hot paths
//   await rp.setDesiredNeighbours(computeDesired(inputs).neighbours); // permanent pod IP → pod MAC entries,
//     marked with podnet's protocol (NDA_PROTOCOL): after a restart the entries carrying it are
//     recognised as podnet's; stale ones go once setDesiredNeighbours is called; others are never touched
//   rp.status()   → { desired, installed, pending, conflicts, failed, inSync, ops, neighbours, lastResync }
//   rp.routeStates() → per desired route: installed (the kernel ACKed it and a later dump holds it),
//     applied (ACKed, not yet confirmed by a dump: one follows after verifyDelayMs, default 1 s),
//     missing (a dump lacks it or the kernel reported it deleted; until repaired), pending,
//     conflict, failed (the kernel refused it), unresolved (no route to any next hop)
//   await rp.stop({ keepRoutes: true });                // graceful restart keeps podnet's routes
// `kernel` is a RouteKernel: ipRouteKernel({ netns }) (iproute2) or rtnetlinkKernel (netlink).
// Sysctls: for the families in use (`families`, or setFamilies from the IPPools): ip_forward and
// per pod interface forwarding; IPv6 (all.forwarding, per interface forwarding, accept_ra=0) only
// when IPv6 is used. Written in the node namespace only (procSysctl in-process, netnsSysctl(path)).
// A write /proc/sys refuses (EROFS/EACCES/EPERM) is reported once (status().unwritableSysctls,
// podnet_sysctl_unwritable) and rechecked on each resync, never retried in a loop.
// Next hops: new NextHopResolver({ netns }) keeps the kernel's routes of other protocols; given as
// `resolver`, a `via` next hop off the node's subnets is installed via the gateway of the route to
// it (BIRD's `gateway recursive`), and one with no route is listed in status().unresolved.

export { netnsSysctl, procSysctl, type SysctlEntry, type SysctlWriter } from '@podnet/rtnetlink';
export {
  computeDesired,
  type DesiredSet,
  inAnyBlock,
  type LocalPodInput,
  type RejectedInput,
  type RemoteRouteInput,
  type RouteInputs,
  type ShadowedRoute,
  validIfname,
} from './desired.js';
export { type DiffOptions, diffRoutes, type RouteDiff, resolveDesired, routeMatches } from './diff.js';
export { ROUTES_ERROR_CODES, RoutesError, type RoutesErrorCode } from './errors.js';
export {
  canonicalAddr,
  type Family,
  formatAddr,
  type Prefix,
  parseAddr,
  parsePrefix,
  prefixContains,
  tryParsePrefix,
} from './ip.js';
export { type IpRouteKernelOptions, ipRouteArgs, ipRouteKernel } from './ip-kernel.js';
export type { KernelEvent, OpResult, RouteKernel } from './kernel.js';
export {
  type DesiredNextHop,
  type DesiredRoute,
  defaultMetric,
  formatKernelRoute,
  type KernelNextHop,
  type KernelRoute,
  type KernelRouteKind,
  type LinkInfo,
  type PendingReason,
  type PendingRoute,
  PODNET_PROTO,
  PODNET_PROTO_NAME,
  type RouteConflict,
  type RouteOp,
  RT_SCOPE,
  RT_TABLE_MAIN,
  RTPROT,
  slotKey,
} from './model.js';
export {
  type DesiredNeighbour,
  diffNeighbours,
  type KernelNeighbour,
  type NeighbourDiff,
  type NeighbourOp,
  neighKey,
} from './neigh.js';
export {
  type NextHopResolution,
  NextHopResolver,
  type NextHopResolverOptions,
  resolveNextHop,
} from './nexthop.js';
export {
  RouteProgrammer,
  type RouteProgrammerOptions,
  type RouteProgrammerStatus,
  type RouteState,
  type RouteStateView,
  type SysctlProblem,
  sameDesired,
  type UnresolvedRoute,
} from './programmer.js';
export { fromRouteInfo, type RtnetlinkKernelOptions, rtnetlinkKernel, toRequest } from './rtnl-kernel.js';
export {
  applyEach,
  forwardingGate,
  globalSysctls,
  podInterfaceSysctls,
  type SysctlResult,
  sysctlErrorCode,
  sysctlName,
  UNWRITABLE_CODES,
} from './sysctl.js';
