// Long-Lived Graceful Restart (RFC 9494): the pure parts. The speaker applies them when a peer's
// session is gone past its restart time (or at once when graceful restart is not in force for a
// family but LLGR is).

import type { RouteAttrs } from './rib/attrs.js';
import { LLGR_STALE, NO_LLGR } from './rib/rib.js';
import type { Negotiated } from './session/session.js';
import { Safi } from './wire/constants.js';

/** Largest Long-lived Stale Time: the field has 24 bits (RFC 9494). */
export const MAX_LONG_LIVED_STALE_TIME = 0xffffff;

/**
 * Families whose routes enter the long-lived stale phase, with the stale time in seconds: LLGR
 * negotiated (both sides sent graceful restart and LLGR), a unicast family the peer's LLGR
 * capability lists with a non-zero stale time, capped by `maxStaleTime`.
 */
export function longLivedFamilies(n: Negotiated | undefined, maxStaleTime?: number): Map<number, number> {
  const out = new Map<number, number>();
  if (!n?.longLivedGracefulRestart || !n.peerLongLivedGracefulRestart) return out;
  for (const f of n.peerLongLivedGracefulRestart.families) {
    if (f.safi !== Safi.UNICAST) continue;
    const t = Math.min(f.staleTime, maxStaleTime ?? Number.POSITIVE_INFINITY);
    if (t > 0) out.set(f.afi, t);
  }
  return out;
}

/**
 * A stale route's attributes for the long-lived phase: LLGR_STALE attached (RFC 9494), or
 * null when the route carries NO_LLGR and must go instead. Already marked: the same object.
 */
export function markLongLivedStale(a: RouteAttrs): RouteAttrs | null {
  const cs = a.communities ?? [];
  if (cs.includes(NO_LLGR)) return null;
  if (cs.includes(LLGR_STALE)) return a;
  return { ...a, communities: [...cs, LLGR_STALE] };
}
