// @podnet/routes — the route programmer: desired routes to kernel routes, owned by protocol number.
//
// Pure layer (no kernel needed):
//   computeDesired({ localPods, ownedBlocks, remote, table?, metric? }) → { routes, rejected, shadowed }
//   diffRoutes(desired, actualKernelRoutes, links, { removeForeignOnPodIfaces?, adoptOnPodIfaces? })
//     → { ops (add/replace before delete), conflicts (foreign routes, never touched), pending, unchanged }
//   PODNET_PROTO (80): every route podnet installs carries it; only such routes are changed/removed.
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
