// NLRI prefix encoding (RFC 4271 §4.3 and RFC 4760 §5): a length octet, then the fewest octets
// that hold the prefix bits.

import type { Writer } from './buffer.js';
import { Afi, UpdateSubcode } from './constants.js';
import { updateError } from './errors.js';
import { formatPrefix, parsePrefix } from './ip.js';

/** Decodes a run of prefixes; throws UPDATE/INVALID_NETWORK_FIELD (session reset, RFC 7606 §5.3). */
export function decodePrefixes(afi: number, b: Uint8Array, off: number, end: number): string[] {
  const max = afi === Afi.IPV4 ? 32 : 128;
  const out: string[] = [];
  const tmp = new Uint8Array(afi === Afi.IPV4 ? 4 : 16);
  while (off < end) {
    const len = b[off++]!;
    if (len > max)
      throw updateError(UpdateSubcode.INVALID_NETWORK_FIELD, `prefix length ${len} above ${max}`);
    const n = (len + 7) >> 3;
    if (off + n > end)
      throw updateError(UpdateSubcode.INVALID_NETWORK_FIELD, `prefix of length ${len} overruns the field`);
    tmp.fill(0);
    for (let i = 0; i < n; i++) tmp[i] = b[off + i]!;
    // Clear bits beyond the length (RFC 4271 §4.3: trailing bits are irrelevant).
    if (len & 7) tmp[n - 1] = tmp[n - 1]! & (0xff << (8 - (len & 7)));
    off += n;
    out.push(formatPrefix(afi, tmp, len));
  }
  return out;
}

export function encodePrefix(w: Writer, prefix: string): void {
  const p = parsePrefix(prefix, 'nlri');
  w.u8(p.len);
  w.bytes(p.bytes.subarray(0, (p.len + 7) >> 3));
}

/** Encoded size of one prefix on the wire. */
export function prefixWireLen(prefix: string): number {
  const slash = prefix.lastIndexOf('/');
  return 1 + ((Number(prefix.slice(slash + 1)) + 7) >> 3);
}

export function familyOfPrefix(prefix: string): number {
  return prefix.includes(':') ? Afi.IPV6 : Afi.IPV4;
}
