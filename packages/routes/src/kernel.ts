// The kernel as the route programmer sees it: list routes and links, apply operations in batches,
// and report changes. The reconciler depends only on this interface; `ipRouteKernel` implements it
// with iproute2 and `rtnetlinkKernel` with @podnet/rtnetlink.
import type { KernelRoute, LinkInfo, RouteOp } from './model.js';
import type { KernelNeighbour, NeighbourOp } from './neigh.js';

export type OpResult = { ok: true } | { ok: false; code: string; message: string };

/** A change in the kernel that may need a resync. */
export type KernelEvent =
  | { type: 'link'; ifname: string; ifindex: number; up: boolean }
  | { type: 'link-removed'; ifname: string; ifindex: number }
  /** A route went away; `protocol` and `dst` tell whether it was one of podnet's. */
  | { type: 'route-deleted'; dst: string; table: number; protocol: number }
  /** A route of another protocol was added or replaced (next hops may resolve differently now). */
  | { type: 'route-added'; dst: string; table: number; protocol: number }
  /** Events were lost (receive buffer overflow, monitor restarted): only a full resync is safe. */
  | { type: 'overflow' };

export interface RouteKernel {
  /** IPv4 and IPv6 routes of the given tables (every kind, every protocol). */
  listRoutes(tables: readonly number[]): Promise<KernelRoute[]>;
  listLinks(): Promise<LinkInfo[]>;
  /** Applies the operations in batches (add/replace as NLM_F_CREATE|NLM_F_REPLACE); one result per op. */
  apply(ops: readonly RouteOp[]): Promise<OpResult[]>;
  /** Reports changes until the returned function is called. */
  watch(onEvent: (e: KernelEvent) => void): () => void;
  close(): Promise<void>;
  /** Permanent neighbour entries (IPv4 and IPv6). Optional: without it, neighbours are not managed. */
  listNeighbours?(): Promise<KernelNeighbour[]>;
  /** Replaces (`nud permanent`) or deletes neighbour entries; one result per op. */
  applyNeighbours?(ops: readonly NeighbourOp[]): Promise<OpResult[]>;
}
