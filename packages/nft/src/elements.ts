// Set elements in one canonical text form, so the model and the kernel's listing compare equal:
// addresses in RFC 5952 form, a host prefix (/32, /128) as the bare address, ports in decimal.
import { familyBits, formatCidr, formatIp, parseCidrResult } from '@podnet/net';
import type { BaseType, SetType, Verdict } from './model.js';

/** The fields of a set type: one, or those of a concatenation (`ifname . ipv4_addr`). */
export function typeParts(type: SetType): BaseType[] {
  let parts = PARTS.get(type);
  if (!parts) {
    parts = type.split(' . ') as BaseType[];
    PARTS.set(type, parts);
  }
  return parts;
}
const PARTS = new Map<string, BaseType[]>();

export const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

type ElementResult = { ok: true; value: string } | { ok: false; reason: string };

/** An IPv4 address already in canonical text (the common case, checked without parsing). */
const IPV4_CANON =
  /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/** The canonical text of a single-field value when it is cheap to tell (else undefined). */
function quick(type: BaseType, text: string, memo: Map<string, string> | undefined): string | undefined {
  if (type === 'ipv4_addr') return IPV4_CANON.test(text) ? text : undefined;
  if (type === 'ifname') return IFNAME_RE.test(text) ? text : undefined;
  return memo?.get(`${type} ${text}`);
}

/**
 * The canonical text of an element of a set of `type`, or why it is not one. `memo` (optional,
 * for checking many elements at once) remembers canonical single-field values that cost parsing.
 */
export function elementResult(
  type: SetType,
  text: string,
  interval: boolean,
  memo?: Map<string, string>,
): ElementResult {
  if (typeof text !== 'string') return { ok: false, reason: 'not a string' };
  if (type.includes(' . ')) {
    const types = typeParts(type);
    const parts = text.split(' . ');
    if (parts.length !== types.length) {
      return { ok: false, reason: `not ${types.length} values joined by " . "` };
    }
    let value = '';
    for (let i = 0; i < types.length; i++) {
      let v = quick(types[i]!, parts[i]!, memo);
      if (v === undefined) {
        const r = elementResult(types[i]!, parts[i]!, false);
        if (!r.ok) return { ok: false, reason: `value ${i + 1}: ${r.reason}` };
        v = r.value;
        memo?.set(`${types[i]} ${parts[i]}`, v);
      }
      value = i === 0 ? v : `${value} . ${v}`;
    }
    return { ok: true, value };
  }
  if (!interval || (type !== 'ipv4_addr' && type !== 'ipv6_addr')) {
    const v = quick(type as BaseType, text, memo);
    if (v !== undefined) return { ok: true, value: v };
  }
  const r0 = slow(type as BaseType, text, interval);
  if (r0.ok && memo && !interval) memo.set(`${type} ${text}`, r0.value);
  return r0;
}

function slow(type: BaseType, text: string, interval: boolean): ElementResult {
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
