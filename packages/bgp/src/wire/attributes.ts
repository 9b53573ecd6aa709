// Path attributes (RFC 4271 §4.3, §5) as a discriminated union, their codec, and the RFC 7606
// per-attribute error actions. Decoding never throws for a bad attribute: it records an issue
// with the action RFC 7606 assigns, and the strongest action wins for the whole UPDATE.
import { u16, u32, Writer } from './buffer.js';
import {
  Afi,
  AS_TRANS,
  AsPathSegment,
  AttrFlag,
  AttrType,
  attrTypeName,
  ErrorCode,
  Safi,
  UpdateSubcode,
} from './constants.js';
import { BgpError, updateError } from './errors.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from './ip.js';
import { decodePrefixes, encodePrefix } from './nlri.js';

export interface AsSegment {
  type: 'sequence' | 'set' | 'confed-sequence' | 'confed-set';
  asns: number[];
}

export type PathAttr =
  | { type: 'origin'; value: number }
  | { type: 'as-path'; segments: AsSegment[] }
  | { type: 'next-hop'; addr: string }
  | { type: 'med'; value: number }
  | { type: 'local-pref'; value: number }
  | { type: 'atomic-aggregate' }
  | { type: 'aggregator'; asn: number; addr: string }
  | { type: 'communities'; values: number[] }
  | { type: 'originator-id'; id: string }
  | { type: 'cluster-list'; ids: string[] }
  | { type: 'mp-reach'; afi: number; safi: number; nextHops: string[]; nlri: string[] }
  | { type: 'mp-unreach'; afi: number; safi: number; withdrawn: string[] }
  | { type: 'as4-path'; segments: AsSegment[] }
  | { type: 'as4-aggregator'; asn: number; addr: string }
  | { type: 'large-communities'; values: [number, number, number][] }
  | { type: 'unknown'; code: number; flags: number; value: Uint8Array };

/** How the codec reads and writes AS numbers: 4 octets once both sides sent the capability. */
export interface CodecContext {
  as4: boolean;
}

/** RFC 7606 actions, weakest first; the strongest of all issues applies to the whole UPDATE. */
export type ErrorAction = 'none' | 'attribute-discard' | 'treat-as-withdraw' | 'session-reset';
const actionRank: Record<ErrorAction, number> = {
  none: 0,
  'attribute-discard': 1,
  'treat-as-withdraw': 2,
  'session-reset': 3,
};
export function strongest(a: ErrorAction, b: ErrorAction): ErrorAction {
  return actionRank[a] >= actionRank[b] ? a : b;
}

export interface AttrIssue {
  action: ErrorAction;
  error: BgpError;
}

const segName: Record<number, AsSegment['type']> = {
  [AsPathSegment.AS_SET]: 'set',
  [AsPathSegment.AS_SEQUENCE]: 'sequence',
  [AsPathSegment.AS_CONFED_SEQUENCE]: 'confed-sequence',
  [AsPathSegment.AS_CONFED_SET]: 'confed-set',
};
const segCode: Record<AsSegment['type'], number> = {
  set: AsPathSegment.AS_SET,
  sequence: AsPathSegment.AS_SEQUENCE,
  'confed-sequence': AsPathSegment.AS_CONFED_SEQUENCE,
  'confed-set': AsPathSegment.AS_CONFED_SET,
};

/** Expected flag bits (optional, transitive) of the attributes we know (RFC 4271 §5). */
const expectedFlags: Record<number, number> = {
  [AttrType.ORIGIN]: AttrFlag.TRANSITIVE,
  [AttrType.AS_PATH]: AttrFlag.TRANSITIVE,
  [AttrType.NEXT_HOP]: AttrFlag.TRANSITIVE,
  [AttrType.MULTI_EXIT_DISC]: AttrFlag.OPTIONAL,
  [AttrType.LOCAL_PREF]: AttrFlag.TRANSITIVE,
  [AttrType.ATOMIC_AGGREGATE]: AttrFlag.TRANSITIVE,
  [AttrType.AGGREGATOR]: AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE,
  [AttrType.COMMUNITIES]: AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE,
  [AttrType.ORIGINATOR_ID]: AttrFlag.OPTIONAL,
  [AttrType.CLUSTER_LIST]: AttrFlag.OPTIONAL,
  [AttrType.MP_REACH_NLRI]: AttrFlag.OPTIONAL,
  [AttrType.MP_UNREACH_NLRI]: AttrFlag.OPTIONAL,
  [AttrType.AS4_PATH]: AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE,
  [AttrType.AS4_AGGREGATOR]: AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE,
  [AttrType.LARGE_COMMUNITIES]: AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE,
};

/** RFC 7606 §7 action for a malformed attribute of each type. */
const malformedAction: Record<number, ErrorAction> = {
  [AttrType.ORIGIN]: 'treat-as-withdraw',
  [AttrType.AS_PATH]: 'treat-as-withdraw',
  [AttrType.NEXT_HOP]: 'treat-as-withdraw',
  [AttrType.MULTI_EXIT_DISC]: 'treat-as-withdraw',
  [AttrType.LOCAL_PREF]: 'treat-as-withdraw',
  [AttrType.ATOMIC_AGGREGATE]: 'attribute-discard',
  [AttrType.AGGREGATOR]: 'attribute-discard',
  [AttrType.COMMUNITIES]: 'treat-as-withdraw',
  [AttrType.ORIGINATOR_ID]: 'treat-as-withdraw',
  [AttrType.CLUSTER_LIST]: 'treat-as-withdraw',
  [AttrType.MP_REACH_NLRI]: 'session-reset',
  [AttrType.MP_UNREACH_NLRI]: 'session-reset',
  [AttrType.AS4_PATH]: 'attribute-discard',
  [AttrType.AS4_AGGREGATOR]: 'attribute-discard',
  [AttrType.LARGE_COMMUNITIES]: 'treat-as-withdraw',
};

function attrError(subcode: number, code: number, msg: string, raw: Uint8Array): BgpError {
  return updateError(subcode, `${attrTypeName[code] ?? `attribute ${code}`}: ${msg}`, raw);
}

function decodeSegments(v: Uint8Array, asLen: 2 | 4): AsSegment[] | string {
  const segs: AsSegment[] = [];
  let off = 0;
  while (off < v.length) {
    if (off + 2 > v.length) return 'truncated segment header';
    const t = v[off]!;
    const n = v[off + 1]!;
    off += 2;
    const name = segName[t];
    if (!name) return `segment type ${t} unknown`;
    if (n === 0) return 'empty segment';
    if (off + n * asLen > v.length) return 'segment overruns the attribute';
    const asns: number[] = new Array(n);
    for (let i = 0; i < n; i++) asns[i] = asLen === 4 ? u32(v, off + i * 4) : u16(v, off + i * 2);
    off += n * asLen;
    segs.push({ type: name, asns });
  }
  return segs;
}

function decodeIpv4List(v: Uint8Array): string[] {
  const out: string[] = [];
  for (let i = 0; i + 4 <= v.length; i += 4) out.push(formatIpv4(u32(v, i)));
  return out;
}

/**
 * Decodes one attribute value. Returns the attribute, or a string describing why it is malformed
 * (the caller turns that into an issue with the RFC 7606 action for the type).
 */
function decodeOne(code: number, flags: number, v: Uint8Array, ctx: CodecContext): PathAttr | string {
  switch (code) {
    case AttrType.ORIGIN:
      if (v.length !== 1) return `length ${v.length}, expected 1`;
      if (v[0]! > 2) return `value ${v[0]} not IGP/EGP/INCOMPLETE`;
      return { type: 'origin', value: v[0]! };
    case AttrType.AS_PATH: {
      const segs = decodeSegments(v, ctx.as4 ? 4 : 2);
      return typeof segs === 'string' ? segs : { type: 'as-path', segments: segs };
    }
    case AttrType.NEXT_HOP:
      if (v.length !== 4) return `length ${v.length}, expected 4`;
      return { type: 'next-hop', addr: formatIpv4(u32(v, 0)) };
    case AttrType.MULTI_EXIT_DISC:
      if (v.length !== 4) return `length ${v.length}, expected 4`;
      return { type: 'med', value: u32(v, 0) };
    case AttrType.LOCAL_PREF:
      if (v.length !== 4) return `length ${v.length}, expected 4`;
      return { type: 'local-pref', value: u32(v, 0) };
    case AttrType.ATOMIC_AGGREGATE:
      if (v.length !== 0) return `length ${v.length}, expected 0`;
      return { type: 'atomic-aggregate' };
    case AttrType.AGGREGATOR: {
      const asLen = ctx.as4 ? 4 : 2;
      if (v.length !== asLen + 4) return `length ${v.length}, expected ${asLen + 4}`;
      const asn = asLen === 4 ? u32(v, 0) : u16(v, 0);
      return { type: 'aggregator', asn, addr: formatIpv4(u32(v, asLen)) };
    }
    case AttrType.COMMUNITIES: {
      if (v.length % 4 !== 0) return `length ${v.length} not a multiple of 4`;
      const values: number[] = [];
      for (let i = 0; i < v.length; i += 4) values.push(u32(v, i));
      return { type: 'communities', values };
    }
    case AttrType.ORIGINATOR_ID:
      if (v.length !== 4) return `length ${v.length}, expected 4`;
      return { type: 'originator-id', id: formatIpv4(u32(v, 0)) };
    case AttrType.CLUSTER_LIST:
      if (v.length % 4 !== 0) return `length ${v.length} not a multiple of 4`;
      return { type: 'cluster-list', ids: decodeIpv4List(v) };
    case AttrType.MP_REACH_NLRI: {
      if (v.length < 5) return `length ${v.length} too short`;
      const afi = u16(v, 0);
      const safi = v[2]!;
      const nhLen = v[3]!;
      if (4 + nhLen + 1 > v.length) return `next hop length ${nhLen} overruns the attribute`;
      const nh = v.subarray(4, 4 + nhLen);
      const nextHops: string[] = [];
      if (afi === Afi.IPV6) {
        if (nhLen !== 16 && nhLen !== 32) return `IPv6 next hop length ${nhLen}, expected 16 or 32`;
        nextHops.push(formatIpv6(nh, 0));
        if (nhLen === 32) nextHops.push(formatIpv6(nh, 16));
      } else if (afi === Afi.IPV4) {
        if (nhLen !== 4) return `IPv4 next hop length ${nhLen}, expected 4`;
        nextHops.push(formatIpv4(u32(nh, 0)));
      } else {
        return { type: 'mp-reach', afi, safi, nextHops: [], nlri: [] };
      }
      // One reserved octet (RFC 4760 §3), then NLRI.
      const start = 4 + nhLen + 1;
      if (safi !== Safi.UNICAST) return { type: 'mp-reach', afi, safi, nextHops, nlri: [] };
      const nlri = decodePrefixes(afi, v, start, v.length);
      return { type: 'mp-reach', afi, safi, nextHops, nlri };
    }
    case AttrType.MP_UNREACH_NLRI: {
      if (v.length < 3) return `length ${v.length} too short`;
      const afi = u16(v, 0);
      const safi = v[2]!;
      if ((afi !== Afi.IPV4 && afi !== Afi.IPV6) || safi !== Safi.UNICAST)
        return { type: 'mp-unreach', afi, safi, withdrawn: [] };
      return { type: 'mp-unreach', afi, safi, withdrawn: decodePrefixes(afi, v, 3, v.length) };
    }
    case AttrType.AS4_PATH: {
      const segs = decodeSegments(v, 4);
      return typeof segs === 'string' ? segs : { type: 'as4-path', segments: segs };
    }
    case AttrType.AS4_AGGREGATOR:
      if (v.length !== 8) return `length ${v.length}, expected 8`;
      return { type: 'as4-aggregator', asn: u32(v, 0), addr: formatIpv4(u32(v, 4)) };
    case AttrType.LARGE_COMMUNITIES: {
      if (v.length % 12 !== 0 || v.length === 0) return `length ${v.length} not a non-zero multiple of 12`;
      const values: [number, number, number][] = [];
      for (let i = 0; i < v.length; i += 12) values.push([u32(v, i), u32(v, i + 4), u32(v, i + 8)]);
      return { type: 'large-communities', values };
    }
    default:
      return { type: 'unknown', code, flags, value: Uint8Array.from(v) };
  }
}

export interface DecodedAttributes {
  attrs: PathAttr[];
  issues: AttrIssue[];
  /** Strongest action over all issues. */
  action: ErrorAction;
}

/**
 * Decodes the Path Attributes field (RFC 4271 §4.3) following RFC 7606: a bad attribute becomes an
 * issue and is left out, the rest is still decoded when its length can be trusted.
 */
export function decodeAttributes(b: Uint8Array, ctx: CodecContext): DecodedAttributes {
  const attrs: PathAttr[] = [];
  const issues: AttrIssue[] = [];
  let action: ErrorAction = 'none';
  const seen = new Set<number>();
  const issue = (a: ErrorAction, e: BgpError) => {
    issues.push({ action: a, error: e });
    action = strongest(action, a);
  };
  let off = 0;
  while (off < b.length) {
    if (off + 3 > b.length) {
      // RFC 7606 §4: the attribute header does not fit, treat-as-withdraw.
      issue(
        'treat-as-withdraw',
        updateError(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, 'truncated attribute header'),
      );
      break;
    }
    const flags = b[off]!;
    const code = b[off + 1]!;
    const ext = (flags & AttrFlag.EXTENDED_LENGTH) !== 0;
    if (ext && off + 4 > b.length) {
      issue(
        'treat-as-withdraw',
        updateError(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, 'truncated attribute header'),
      );
      break;
    }
    const len = ext ? u16(b, off + 2) : b[off + 2]!;
    const hdr = ext ? 4 : 3;
    const raw = b.subarray(off, Math.min(off + hdr + len, b.length));
    if (off + hdr + len > b.length) {
      const a =
        code === AttrType.MP_REACH_NLRI || code === AttrType.MP_UNREACH_NLRI
          ? 'session-reset'
          : 'treat-as-withdraw';
      issue(
        a,
        attrError(
          UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
          code,
          `length ${len} overruns the attribute list`,
          raw,
        ),
      );
      break;
    }
    const v = b.subarray(off + hdr, off + hdr + len);
    off += hdr + len;
    if (seen.has(code)) {
      // RFC 7606 §3.g: repeated MP_(UN)REACH resets; other repeats are discarded.
      if (code === AttrType.MP_REACH_NLRI || code === AttrType.MP_UNREACH_NLRI)
        issue('session-reset', attrError(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, code, 'appears twice', raw));
      else
        issue(
          'attribute-discard',
          attrError(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, code, 'appears twice', raw),
        );
      continue;
    }
    seen.add(code);
    const want = expectedFlags[code];
    if (want === undefined && !(flags & AttrFlag.OPTIONAL)) {
      // RFC 4271 §6.3: an unrecognised well-known attribute.
      issue(
        'session-reset',
        attrError(
          UpdateSubcode.UNRECOGNIZED_WELLKNOWN_ATTRIBUTE,
          code,
          'unrecognised well-known attribute',
          raw,
        ),
      );
      continue;
    }
    if (want !== undefined && (flags & (AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE)) !== want) {
      const a =
        malformedAction[code] === 'session-reset'
          ? 'session-reset'
          : (malformedAction[code] ?? 'treat-as-withdraw');
      issue(a, attrError(UpdateSubcode.ATTRIBUTE_FLAGS_ERROR, code, `flags 0x${flags.toString(16)}`, raw));
      continue;
    }
    let decoded: PathAttr | string;
    try {
      decoded = decodeOne(code, flags, v, ctx);
    } catch (err) {
      if (err instanceof BgpError) {
        issue('session-reset', err);
        continue;
      }
      throw err;
    }
    if (typeof decoded === 'string') {
      const sub =
        code === AttrType.ORIGIN
          ? UpdateSubcode.INVALID_ORIGIN_ATTRIBUTE
          : code === AttrType.AS_PATH
            ? UpdateSubcode.MALFORMED_AS_PATH
            : code === AttrType.NEXT_HOP && v.length === 4
              ? UpdateSubcode.INVALID_NEXT_HOP_ATTRIBUTE
              : decoded.startsWith('length')
                ? UpdateSubcode.ATTRIBUTE_LENGTH_ERROR
                : UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR;
      issue(malformedAction[code] ?? 'treat-as-withdraw', attrError(sub, code, decoded, raw));
      continue;
    }
    if (decoded.type === 'unknown' && !(flags & AttrFlag.TRANSITIVE)) continue; // RFC 4271 §9: drop quietly
    attrs.push(decoded);
  }
  return { attrs, issues, action };
}

function flagsFor(a: PathAttr): number {
  if (a.type === 'unknown') return a.flags & ~AttrFlag.EXTENDED_LENGTH;
  return expectedFlags[codeOf(a)] ?? 0;
}

export function codeOf(a: PathAttr): number {
  switch (a.type) {
    case 'origin':
      return AttrType.ORIGIN;
    case 'as-path':
      return AttrType.AS_PATH;
    case 'next-hop':
      return AttrType.NEXT_HOP;
    case 'med':
      return AttrType.MULTI_EXIT_DISC;
    case 'local-pref':
      return AttrType.LOCAL_PREF;
    case 'atomic-aggregate':
      return AttrType.ATOMIC_AGGREGATE;
    case 'aggregator':
      return AttrType.AGGREGATOR;
    case 'communities':
      return AttrType.COMMUNITIES;
    case 'originator-id':
      return AttrType.ORIGINATOR_ID;
    case 'cluster-list':
      return AttrType.CLUSTER_LIST;
    case 'mp-reach':
      return AttrType.MP_REACH_NLRI;
    case 'mp-unreach':
      return AttrType.MP_UNREACH_NLRI;
    case 'as4-path':
      return AttrType.AS4_PATH;
    case 'as4-aggregator':
      return AttrType.AS4_AGGREGATOR;
    case 'large-communities':
      return AttrType.LARGE_COMMUNITIES;
    case 'unknown':
      return a.code;
  }
}

function ipv4(w: Writer, s: string): void {
  const v = parseIpv4(s);
  if (v === undefined) throw new TypeError(`not an IPv4 address: ${JSON.stringify(s)}`);
  w.u32(v);
}

function writeSegments(w: Writer, segs: AsSegment[], asLen: 2 | 4): void {
  for (const s of segs) {
    // A segment holds at most 255 ASNs; split longer ones.
    for (let i = 0; i < s.asns.length || (i === 0 && s.asns.length === 0); i += 255) {
      const part = s.asns.slice(i, i + 255);
      if (part.length === 0) break;
      w.u8(segCode[s.type]).u8(part.length);
      for (const asn of part) {
        if (asLen === 4) w.u32(asn);
        else w.u16(asn > 0xffff ? AS_TRANS : asn);
      }
    }
  }
}

function writeValue(w: Writer, a: PathAttr, ctx: CodecContext): void {
  switch (a.type) {
    case 'origin':
      w.u8(a.value);
      return;
    case 'as-path':
      writeSegments(w, a.segments, ctx.as4 ? 4 : 2);
      return;
    case 'as4-path':
      writeSegments(w, a.segments, 4);
      return;
    case 'next-hop':
      ipv4(w, a.addr);
      return;
    case 'med':
    case 'local-pref':
      w.u32(a.value);
      return;
    case 'atomic-aggregate':
      return;
    case 'aggregator':
      if (ctx.as4) w.u32(a.asn);
      else w.u16(a.asn > 0xffff ? AS_TRANS : a.asn);
      ipv4(w, a.addr);
      return;
    case 'as4-aggregator':
      w.u32(a.asn);
      ipv4(w, a.addr);
      return;
    case 'communities':
      for (const c of a.values) w.u32(c);
      return;
    case 'large-communities':
      for (const [x, y, z] of a.values) w.u32(x).u32(y).u32(z);
      return;
    case 'originator-id':
      ipv4(w, a.id);
      return;
    case 'cluster-list':
      for (const id of a.ids) ipv4(w, id);
      return;
    case 'mp-reach': {
      w.u16(a.afi).u8(a.safi);
      const lenAt = w.reserve(1);
      const start = w.length;
      for (const nh of a.nextHops) {
        if (a.afi === Afi.IPV6) {
          const b = parseIpv6(nh);
          if (!b) throw new TypeError(`not an IPv6 next hop: ${JSON.stringify(nh)}`);
          w.bytes(b);
        } else ipv4(w, nh);
      }
      w.patchU8(lenAt, w.length - start);
      w.u8(0);
      for (const p of a.nlri) encodePrefix(w, p);
      return;
    }
    case 'mp-unreach':
      w.u16(a.afi).u8(a.safi);
      for (const p of a.withdrawn) encodePrefix(w, p);
      return;
    case 'unknown':
      w.bytes(a.value);
      return;
  }
}

/** Writes one attribute with its header; extended length is used when the value exceeds 255 octets. */
export function encodeAttribute(w: Writer, a: PathAttr, ctx: CodecContext): void {
  const flags = flagsFor(a);
  const code = codeOf(a);
  const start = w.length;
  w.u8(flags | AttrFlag.EXTENDED_LENGTH).u8(code);
  const lenAt = w.reserve(2);
  const vStart = w.length;
  writeValue(w, a, ctx);
  const len = w.length - vStart;
  if (len <= 255) {
    // Re-write compactly with a one-octet length.
    const tmp = new Writer(len + 3);
    tmp.u8(flags).u8(code).u8(len);
    const value = new Writer(len);
    writeValue(value, a, ctx);
    w.truncate(start);
    w.bytes(tmp.toBuffer()).bytes(value.toBuffer());
    return;
  }
  w.patchU16(lenAt, len);
}

export function encodeAttributes(attrs: PathAttr[], ctx: CodecContext): Buffer {
  const w = new Writer(64);
  for (const a of attrs) encodeAttribute(w, a, ctx);
  return w.toBuffer();
}

/** The NOTIFICATION data for a missing well-known attribute is its type code (RFC 4271 §6.3). */
export function missingAttrError(code: number): BgpError {
  return new BgpError(
    ErrorCode.UPDATE_MESSAGE,
    UpdateSubcode.MISSING_WELLKNOWN_ATTRIBUTE,
    `missing well-known attribute ${attrTypeName[code] ?? code}`,
    Uint8Array.of(code),
  );
}
