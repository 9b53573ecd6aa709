// Pure diffs between what the speaker and the ARP responder have and what `compute` wants. The shell
// applies them; a change to one peer never touches another peer's session.
import type { Advertisement, ArpInterface, DesiredPeer } from './model.js';

export interface Diff<T> {
  add: T[];
  update: T[];
  remove: T[];
}

/**
 * Deep equality of plain data as JSON would see it: key order does not matter, and a key holding
 * `undefined` is the same as no key. Cheaper than serialising both sides (this runs over every
 * advertisement on every pass).
 */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const y = b as unknown[];
    if (a.length !== y.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameData(a[i], y[i])) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    if (x[k] === undefined) continue;
    n++;
    if (!sameData(x[k], y[k])) return false;
  }
  for (const k in y) if (y[k] !== undefined) n--;
  return n === 0;
}

/** Keyed diff: entries only in `desired` are added, only in `current` removed, changed ones updated. */
export function diffKeyed<T>(current: Map<string, T>, desired: T[], key: (t: T) => string): Diff<T> {
  const out: Diff<T> = { add: [], update: [], remove: [] };
  const want = new Map(desired.map((d) => [key(d), d]));
  for (const [k, d] of want) {
    const cur = current.get(k);
    if (cur === undefined) out.add.push(d);
    else if (!sameData(cur, d)) out.update.push(d);
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
