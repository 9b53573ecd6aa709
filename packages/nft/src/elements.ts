// Set elements in one canonical text form, so the model and the kernel's listing compare equal:
// addresses in RFC 5952 form, a host prefix (/32, /128) as the bare address, ports in decimal.
import { familyBits, formatCidr, formatIp, parseCidrResult } from '@podnet/net';
import type { BaseType, SetType, Verdict } from './model.js';

/** The fields of a set type: one, or those of a concatenation (`ifname . ipv4_addr`). */
export function typeParts(type: SetType): BaseType[] {
  return type.split(' . ') as BaseType[];
}

export const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

/** The canonical text of an element of a set of `type`, or why it is not one. */
export function elementResult(
  type: SetType,
  text: string,
  interval: boolean,
): { ok: true; value: string } | { ok: false; reason: string } {
  if (typeof text !== 'string') return { ok: false, reason: 'not a string' };
  if (type.includes(' . ')) {
    const types = typeParts(type);
    const parts = text.split(' . ');
    if (parts.length !== types.length) {
      return { ok: false, reason: `not ${types.length} values joined by " . "` };
    }
    const out: string[] = [];
    for (let i = 0; i < types.length; i++) {
      const r = elementResult(types[i]!, parts[i]!, false);
      if (!r.ok) return { ok: false, reason: `value ${i + 1}: ${r.reason}` };
      out.push(r.value);
    }
    return { ok: true, value: out.join(' . ') };
  }
  if (type === 'inet_service') {
    if (!/^[0-9]{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
      return { ok: false, reason: 'not a port 1..65535' };
    }
    return { ok: true, value: String(Number(text)) };
  }
  if (type === 'ifname') {
    if (!IFNAME_RE.test(text))
      return { ok: false, reason: 'not an interface name (1-15 of A-Z a-z 0-9 _ . -)' };
    return { ok: true, value: text };
  }
  const r = parseCidrResult(text, { hostBits: 'reject', bare: true });
  if (!r.ok) return r;
  const want = type === 'ipv4_addr' ? 4 : 6;
  if (r.value.family !== want) return { ok: false, reason: `not an IPv${want} address` };
  if (r.value.len === familyBits(want))
    return { ok: true, value: formatIp({ family: want, value: r.value.addr }) };
  if (!interval) return { ok: false, reason: 'a prefix in a set without `interval`' };
  return { ok: true, value: formatCidr(r.value) };
}

/** Canonical text of an element read from the kernel (already valid there). */
export function canonicalElement(type: SetType, text: string): string {
  const r = elementResult(type, text, true);
  return r.ok ? r.value : text;
}

/** A verdict in nft syntax: `accept`, `jump name`. */
export function verdictText(v: Verdict): string {
  return v.kind === 'jump' || v.kind === 'goto' ? `${v.kind} ${v.chain}` : v.kind;
}
