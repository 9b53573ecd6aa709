// Address ranges: the union of a rule's peers (pod addresses, ipBlocks minus their excepts) as a
// minimal list of non-overlapping prefixes, which is what an nft interval set holds (nft refuses
// overlapping elements, and `except` has no nft counterpart: it is subtracted here).
import { type Cidr, type Family, familyBits, formatCidr, formatIp } from '@podnet/net';

/** An inclusive range of addresses of one family. */
export interface Span {
  start: bigint;
  end: bigint;
}

export function spanOf(c: Cidr): Span {
  const size = 1n << BigInt(familyBits(c.family) - c.len);
  const start = (c.addr / size) * size;
  return { start, end: start + size - 1n };
}

/** Sorted, merged (adjacent spans joined). */
export function union(spans: Span[]): Span[] {
  const s = [...spans].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Span[] = [];
  for (const x of s) {
    const last = out[out.length - 1];
    if (last && x.start <= last.end + 1n) {
      if (x.end > last.end) last.end = x.end;
    } else out.push({ ...x });
  }
  return out;
}

/** `from` minus every span of `minus`. */
export function subtract(from: Span[], minus: Span[]): Span[] {
  let cur = union(from);
  for (const m of union(minus)) {
    const next: Span[] = [];
    for (const s of cur) {
      if (m.end < s.start || m.start > s.end) {
        next.push(s);
        continue;
      }
      if (m.start > s.start) next.push({ start: s.start, end: m.start - 1n });
      if (m.end < s.end) next.push({ start: m.end + 1n, end: s.end });
    }
    cur = next;
  }
  return cur;
}

/** Whether `addr` lies in one of `spans` (merged or not). */
export function inSpans(spans: Span[], addr: bigint): boolean {
  return spans.some((s) => addr >= s.start && addr <= s.end);
}

/** The fewest prefixes covering exactly `spans`, as canonical text (a host as the bare address). */
export function toPrefixes(family: Family, spans: Span[]): string[] {
  const bits = familyBits(family);
  const out: string[] = [];
  for (const s of union(spans)) {
    let start = s.start;
    while (start <= s.end) {
      // The largest block aligned at `start` that does not pass the end.
      let size = start === 0n ? 1n << BigInt(bits) : start & -start;
      while (start + size - 1n > s.end) size >>= 1n;
      const len = bits - (size.toString(2).length - 1);
      out.push(len === bits ? formatIp({ family, value: start }) : formatCidr({ family, addr: start, len }));
      start += size;
    }
  }
  return out;
}
