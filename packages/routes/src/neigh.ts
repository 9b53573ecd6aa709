// Permanent neighbour entries for local pods (pod IP → pod MAC on its pn* interface), so the node
// never has to resolve a pod's address. Pure diff here; the programmer applies it.
//
// Ownership: podnet marks the entries it installs with its protocol number (NDA_PROTOCOL, Linux
// 5.2+), so after a restart a fresh programmer recognises its own entries in a dump. It owns those,
// the entries it installed in this process, and, when removeForeignOnPodIfaces is set, every
// permanent entry on a pod interface. Nothing else is ever removed.
import type { Family } from './ip.js';
import type { LinkInfo, PendingReason } from './model.js';

export interface DesiredNeighbour {
  ifname: string;
  /** Canonical address text (no prefix length). */
  ip: string;
  family: Family;
  /** Lower-case MAC. */
  mac: string;
}

/** A permanent neighbour entry as the kernel holds it. */
export interface KernelNeighbour {
  family: Family;
  ifindex: number;
  ip: string;
  mac?: string;
  /** Owner protocol (NDA_PROTOCOL) when the entry carries one. */
  protocol?: number;
}

export type NeighbourOp =
  | { type: 'replace'; neigh: KernelNeighbour & { mac: string } }
  | { type: 'delete'; neigh: KernelNeighbour };

export const neighKey = (n: { ifindex: number; ip: string }) => `${n.ifindex}|${n.ip}`;

export interface NeighbourDiff {
  ops: NeighbourOp[];
  pending: { neigh: DesiredNeighbour; reason: PendingReason }[];
}

/**
 * What to change so the kernel's permanent entries match `desired`. `owned(n)` says whether an
 * entry not desired any more may be removed. With `protocol`, entries are installed with that owner
 * protocol, and a desired entry that carries another one (or none) is replaced to take it over.
 */
export function diffNeighbours(
  desired: readonly DesiredNeighbour[],
  actual: readonly KernelNeighbour[],
  links: readonly LinkInfo[],
  owned: (n: KernelNeighbour) => boolean,
  protocol?: number,
): NeighbourDiff {
  const linkByName = new Map(links.map((l) => [l.ifname, l]));
  const have = new Map(actual.map((n) => [neighKey(n), n]));
  const want = new Set<string>();
  const ops: NeighbourOp[] = [];
  const pending: NeighbourDiff['pending'] = [];
  for (const d of desired) {
    const l = linkByName.get(d.ifname);
    if (!l?.up) {
      pending.push({ neigh: d, reason: l ? 'interface-down' : 'interface-missing' });
      continue;
    }
    const n: KernelNeighbour & { mac: string } = {
      family: d.family,
      ifindex: l.ifindex,
      ip: d.ip,
      mac: d.mac,
    };
    if (protocol !== undefined) n.protocol = protocol;
    const k = neighKey(n);
    want.add(k);
    const h = have.get(k);
    if (h?.mac !== d.mac || (protocol !== undefined && h.protocol !== protocol))
      ops.push({ type: 'replace', neigh: n });
  }
  for (const [k, n] of have) if (!want.has(k) && owned(n)) ops.push({ type: 'delete', neigh: n });
  return { ops, pending };
}
