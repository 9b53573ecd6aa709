// The observed part of IPPool.status and BGPPeer.status, as pure functions of what the elected
// status writer watches: the use of each pool's addresses (from the IPAMBlocks) and, per BGPPeer,
// the session of every node that peers with it (from the NodeStatus objects the agents write).
import { blockInPool, type IPAMBlock, type IPPool, type NodeStatus, parseCidr } from '@podnet/k8s';

/** A condition besides Ready that the writer keeps (Exhausted on pools, Established on peers). */
export interface ObservedCondition {
  type: 'Exhausted' | 'Established';
  status: 'True' | 'False';
  reason: string;
  message: string;
}

export interface ObservedStatus {
  /** Status fields, replaced as a whole (merge patch). */
  fields: Record<string, unknown>;
  condition: ObservedCondition;
}

export const POOL_REASON = {
  noFree: 'NoFreeAddresses',
  nearlyFull: 'NearlyFull',
  available: 'AddressesAvailable',
} as const;

/**
 * Per pool: blocks claimed from it, addresses allocated in them, addresses left (a decimal string),
 * and `Exhausted`: True (NoFreeAddresses) when none is left; False with reason NearlyFull once
 * `warnAt` (0-1] of the pool is in use; else False (AddressesAvailable).
 */
export function poolUsage(pools: IPPool[], blocks: IPAMBlock[], warnAt: number): Map<string, ObservedStatus> {
  const out = new Map<string, ObservedStatus>();
  for (const p of pools) {
    const c = parseCidr(p.spec.cidr);
    if (!c) continue;
    const capacity = 1n << BigInt((c.family === 6 ? 128 : 32) - c.prefixLength);
    let n = 0;
    let inUse = 0;
    for (const b of blocks) {
      if (!blockInPool(p.spec.cidr, b.spec.cidr)) continue;
      n++;
      inUse += b.spec.allocations.length - b.spec.unallocated.length;
    }
    const free = capacity - BigInt(inUse);
    const share = Number((BigInt(inUse) * 1_000_000n) / capacity) / 1_000_000;
    const used = `${inUse} of ${capacity} addresses in use (${(share * 100).toFixed(1)}%)`;
    const condition: ObservedCondition =
      free <= 0n
        ? {
            type: 'Exhausted',
            status: 'True',
            reason: POOL_REASON.noFree,
            message: `${used}: no address left; add an IPPool or widen spec.cidr`,
          }
        : share >= warnAt
          ? {
              type: 'Exhausted',
              status: 'False',
              reason: POOL_REASON.nearlyFull,
              message: `${used}, at or above the warning level ${warnAt} (--pool-usage-warning)`,
            }
          : { type: 'Exhausted', status: 'False', reason: POOL_REASON.available, message: used };
    out.set(p.metadata.name, {
      fields: { blocks: n, addressesInUse: inUse, addressesFree: free.toString() },
      condition,
    });
  }
  return out;
}

/**
 * Per BGPPeer: the session of every node whose NodeStatus lists one from it, how many are
 * Established, and `Established`: True when all are, False (NotEstablished, naming the nodes and
 * their states; NoSessions when no node peers with it).
 */
export function peerSessions(
  peers: { metadata: { name: string } }[],
  statuses: NodeStatus[],
): Map<string, ObservedStatus> {
  const out = new Map<string, ObservedStatus>();
  for (const peer of peers) {
    const name = peer.metadata.name;
    const nodes = statuses
      .flatMap((ns) =>
        (ns.status?.sessions ?? [])
          .filter((s) => s.source === name)
          .map((s) => ({
            node: ns.metadata.name,
            state: s.state,
            since: s.since,
            ...(s.lastError ? { lastError: s.lastError } : {}),
          })),
      )
      .sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    const up = nodes.filter((n) => n.state === 'Established');
    const down = nodes.filter((n) => n.state !== 'Established');
    const condition: ObservedCondition =
      nodes.length === 0
        ? {
            type: 'Established',
            status: 'False',
            reason: 'NoSessions',
            message:
              'no node peers with it (no NodeStatus lists a session; check spec.node and spec.nodeSelector)',
          }
        : down.length === 0
          ? {
              type: 'Established',
              status: 'True',
              reason: 'Established',
              message: `${up.length} of ${nodes.length} nodes Established`,
            }
          : {
              type: 'Established',
              status: 'False',
              reason: 'NotEstablished',
              message: `${up.length} of ${nodes.length} nodes Established; ${down
                .map((n) => `${n.node} ${n.state}${n.lastError ? ` (${n.lastError})` : ''}`)
                .join(', ')}`,
            };
    out.set(name, { fields: { nodes, established: up.length, sessions: nodes.length }, condition });
  }
  return out;
}
