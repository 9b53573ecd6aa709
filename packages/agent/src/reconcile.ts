// Pure diffs between what the speaker and the ARP responder have and what `compute` wants. The shell
// applies them; a change to one peer never touches another peer's session.
import type { Advertisement, ArpInterface, DesiredPeer } from './model.js';

export interface Diff<T> {
  add: T[];
  update: T[];
  remove: T[];
}

function stable(v: unknown): string {
  return JSON.stringify(v, (_k, x) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b)))
      : x,
  );
}

/** Keyed diff: entries only in `desired` are added, only in `current` removed, changed ones updated. */
export function diffKeyed<T>(current: Map<string, T>, desired: T[], key: (t: T) => string): Diff<T> {
  const out: Diff<T> = { add: [], update: [], remove: [] };
  const want = new Map(desired.map((d) => [key(d), d]));
  for (const [k, d] of want) {
    const cur = current.get(k);
    if (cur === undefined) out.add.push(d);
    else if (stable(cur) !== stable(d)) out.update.push(d);
  }
  for (const [k, c] of current) if (!want.has(k)) out.remove.push(c);
  return out;
}

export const diffPeers = (current: Map<string, DesiredPeer>, desired: DesiredPeer[]) =>
  diffKeyed(current, desired, (p) => p.key);

export const diffAdvertisements = (current: Map<string, Advertisement>, desired: Advertisement[]) =>
  diffKeyed(current, desired, (a) => a.prefix);

export const diffArp = (current: Map<string, ArpInterface>, desired: ArpInterface[]) =>
  diffKeyed(current, desired, (a) => a.iface);

export function isEmpty(d: Diff<unknown>): boolean {
  return d.add.length === 0 && d.update.length === 0 && d.remove.length === 0;
}
