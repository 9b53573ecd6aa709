// BGP messages (RFC 4271 §4) as a discriminated union keyed by `type`, with pure encode/decode.
import {
  type AttrIssue,
  type CodecContext,
  decodeAttributes,
  type ErrorAction,
  encodeAttribute,
  missingAttrError,
  type PathAttr,
  strongest,
} from './attributes.js';
import { u16, u32, Writer } from './buffer.js';
import {
  Afi,
  AttrType,
  BGP_VERSION,
  CapabilityCode,
  ErrorCode,
  HEADER_LEN,
  HeaderSubcode,
  MARKER_LEN,
  MAX_MESSAGE_LEN,
  MessageType,
  OpenSubcode,
  OptParam,
  Safi,
  UpdateSubcode,
} from './constants.js';
import { BgpError, headerError, openError, updateError } from './errors.js';
import { formatIpv4, parseIpv4 } from './ip.js';
import { decodePrefixes, encodePrefix } from './nlri.js';

export type Capability =
  | { type: 'multiprotocol'; afi: number; safi: number }
  | { type: 'route-refresh' }
  | { type: 'four-octet-as'; asn: number }
  | {
      type: 'graceful-restart';
      restarting: boolean;
      /** RFC 8538 N bit: Graceful Restart also after a NOTIFICATION or a Hold Timer expiry. */
      notification?: boolean;
      restartTime: number;
      families: { afi: number; safi: number; forwardingPreserved: boolean }[];
    }
  | {
      /** RFC 9494: per family, the F bit and the Long-lived Stale Time (seconds, 24 bits). */
      type: 'long-lived-graceful-restart';
      families: { afi: number; safi: number; forwardingPreserved: boolean; staleTime: number }[];
    }
  | { type: 'unknown'; code: number; value: Uint8Array };

export interface OpenMessage {
  type: 'open';
  version: number;
  /** The 2-octet My Autonomous System field (AS_TRANS when the real AS needs 4 octets). */
  myAs: number;
  holdTime: number;
  bgpId: string;
  capabilities: Capability[];
}

export interface UpdateMessage {
  type: 'update';
  /** IPv4 prefixes in the Withdrawn Routes field. */
  withdrawn: string[];
  attrs: PathAttr[];
  /** IPv4 prefixes in the NLRI field. */
  nlri: string[];
}

export interface NotificationMessage {
  type: 'notification';
  code: number;
  subcode: number;
  data: Uint8Array;
}

export interface KeepaliveMessage {
  type: 'keepalive';
}

export interface RouteRefreshMessage {
  type: 'route-refresh';
  afi: number;
  safi: number;
}

export interface UnknownMessage {
  type: 'unknown';
  code: number;
  body: Uint8Array;
}

export type BgpMessage =
  | OpenMessage
  | UpdateMessage
  | NotificationMessage
  | KeepaliveMessage
  | RouteRefreshMessage
  | UnknownMessage;

export const DEFAULT_CONTEXT: CodecContext = { as4: true };

// ---------------------------------------------------------------------------------------------
// Header

/**
 * Validates a header (RFC 4271 §6.1) and returns the message length and type. Throws the
 * NOTIFICATION-shaped BgpError for a bad marker, length or type.
 */
export function checkHeader(b: Uint8Array, off = 0): { length: number; msgType: number } {
  for (let i = 0; i < MARKER_LEN; i++) {
    if (b[off + i] !== 0xff)
      throw headerError(HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED, 'marker is not all ones');
  }
  const length = u16(b, off + 16);
  const msgType = b[off + 18]!;
  const lenData = Uint8Array.of(length >> 8, length & 255);
  if (length < HEADER_LEN || length > MAX_MESSAGE_LEN)
    throw headerError(HeaderSubcode.BAD_MESSAGE_LENGTH, `length ${length} outside 19..4096`, lenData);
  const min: Record<number, number> = { 1: 29, 2: 23, 3: 21, 4: 19, 5: 23 };
  const want = min[msgType];
  if (want === undefined)
    throw headerError(HeaderSubcode.BAD_MESSAGE_TYPE, `type ${msgType}`, Uint8Array.of(msgType));
  if (length < want || (msgType === MessageType.KEEPALIVE && length !== 19))
    throw headerError(
      HeaderSubcode.BAD_MESSAGE_LENGTH,
      `length ${length} invalid for type ${msgType}`,
      lenData,
    );
  return { length, msgType };
}

function frame(type: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER_LEN + body.length);
  out.fill(0xff, 0, MARKER_LEN);
  out.writeUInt16BE(HEADER_LEN + body.length, 16);
  out[18] = type;
  out.set(body, HEADER_LEN);
  return out;
}

// ---------------------------------------------------------------------------------------------
// OPEN (RFC 4271 §4.2, RFC 5492, RFC 9072)

function encodeCapability(w: Writer, c: Capability): void {
  switch (c.type) {
    case 'multiprotocol':
      w.u8(CapabilityCode.MULTIPROTOCOL).u8(4).u16(c.afi).u8(0).u8(c.safi);
      return;
    case 'route-refresh':
      w.u8(CapabilityCode.ROUTE_REFRESH).u8(0);
      return;
    case 'four-octet-as':
      w.u8(CapabilityCode.FOUR_OCTET_AS).u8(4).u32(c.asn);
      return;
    case 'graceful-restart':
      w.u8(CapabilityCode.GRACEFUL_RESTART).u8(2 + 4 * c.families.length);
      w.u16((c.restarting ? 0x8000 : 0) | (c.notification ? 0x4000 : 0) | (c.restartTime & 0x0fff));
      for (const f of c.families)
        w.u16(f.afi)
          .u8(f.safi)
          .u8(f.forwardingPreserved ? 0x80 : 0);
      return;
    case 'long-lived-graceful-restart':
      w.u8(CapabilityCode.LONG_LIVED_GRACEFUL_RESTART).u8(7 * c.families.length);
      for (const f of c.families)
        w.u16(f.afi)
          .u8(f.safi)
          .u8(f.forwardingPreserved ? 0x80 : 0)
          .u8((f.staleTime >>> 16) & 0xff)
          .u16(f.staleTime & 0xffff);
      return;
    case 'unknown':
      w.u8(c.code).u8(c.value.length).bytes(c.value);
      return;
  }
}

function decodeCapabilities(b: Uint8Array, out: Capability[]): void {
  let off = 0;
  while (off < b.length) {
    if (off + 2 > b.length) throw openError(0, 'truncated capability');
    const code = b[off]!;
    const len = b[off + 1]!;
    off += 2;
    if (off + len > b.length) throw openError(0, `capability ${code} length ${len} overruns the parameter`);
    const v = b.subarray(off, off + len);
    off += len;
    switch (code) {
      case CapabilityCode.MULTIPROTOCOL:
        if (len !== 4) throw openError(0, `multiprotocol capability length ${len}, expected 4`);
        out.push({ type: 'multiprotocol', afi: u16(v, 0), safi: v[3]! });
        break;
      case CapabilityCode.ROUTE_REFRESH:
        out.push({ type: 'route-refresh' });
        break;
      case CapabilityCode.FOUR_OCTET_AS:
        if (len !== 4) throw openError(0, `4-octet AS capability length ${len}, expected 4`);
        out.push({ type: 'four-octet-as', asn: u32(v, 0) });
        break;
      case CapabilityCode.GRACEFUL_RESTART: {
        if (len < 2 || (len - 2) % 4 !== 0) throw openError(0, `graceful restart capability length ${len}`);
        const flags = u16(v, 0);
        const families = [];
        for (let i = 2; i < len; i += 4)
          families.push({ afi: u16(v, i), safi: v[i + 2]!, forwardingPreserved: (v[i + 3]! & 0x80) !== 0 });
        out.push({
          type: 'graceful-restart',
          restarting: (flags & 0x8000) !== 0,
          ...((flags & 0x4000) !== 0 ? { notification: true } : {}),
          restartTime: flags & 0x0fff,
          families,
        });
        break;
      }
      case CapabilityCode.LONG_LIVED_GRACEFUL_RESTART: {
        if (len % 7 !== 0) throw openError(0, `long-lived graceful restart capability length ${len}`);
        const families = [];
        for (let i = 0; i < len; i += 7)
          families.push({
            afi: u16(v, i),
            safi: v[i + 2]!,
            forwardingPreserved: (v[i + 3]! & 0x80) !== 0,
            staleTime: (v[i + 4]! << 16) | u16(v, i + 5),
          });
        out.push({ type: 'long-lived-graceful-restart', families });
        break;
      }
      default:
        out.push({ type: 'unknown', code, value: Uint8Array.from(v) });
    }
  }
}

function encodeOpen(m: OpenMessage): Buffer {
  const caps = new Writer(64);
  for (const c of m.capabilities) encodeCapability(caps, c);
  const capBytes = caps.toBuffer();
  const w = new Writer(64);
  const bgpId = parseIpv4(m.bgpId);
  if (bgpId === undefined) throw new TypeError(`bgpId is not an IPv4 address: ${JSON.stringify(m.bgpId)}`);
  w.u8(m.version).u16(m.myAs).u16(m.holdTime).u32(bgpId);
  if (capBytes.length === 0) {
    w.u8(0);
  } else if (capBytes.length + 2 <= 255) {
    w.u8(capBytes.length + 2)
      .u8(OptParam.CAPABILITIES)
      .u8(capBytes.length)
      .bytes(capBytes);
  } else {
    // RFC 9072: non-extended length 255 and type 255, then a 2-octet length; params use 2-octet lengths.
    w.u8(255)
      .u8(OptParam.EXTENDED_LENGTH)
      .u16(capBytes.length + 3);
    w.u8(OptParam.CAPABILITIES).u16(capBytes.length).bytes(capBytes);
  }
  return frame(MessageType.OPEN, w.toBuffer());
}

function decodeOpen(b: Uint8Array): OpenMessage {
  if (b.length < 10) throw headerError(HeaderSubcode.BAD_MESSAGE_LENGTH, 'OPEN shorter than 29 octets');
  const version = b[0]!;
  if (version !== BGP_VERSION)
    throw openError(OpenSubcode.UNSUPPORTED_VERSION, `version ${version}`, Uint8Array.of(0, BGP_VERSION));
  const myAs = u16(b, 1);
  const holdTime = u16(b, 3);
  const bgpId = formatIpv4(u32(b, 5));
  let optLen = b[9]!;
  let off = 10;
  let extended = false;
  if (optLen === 255 && b[10] === OptParam.EXTENDED_LENGTH) {
    if (b.length < 13) throw openError(0, 'truncated extended optional parameters length');
    extended = true;
    optLen = u16(b, 11);
    off = 13;
  }
  if (off + optLen !== b.length)
    throw openError(0, `optional parameters length ${optLen} does not match the message`);
  const capabilities: Capability[] = [];
  const end = off + optLen;
  while (off < end) {
    const hdr = extended ? 3 : 2;
    if (off + hdr > end) throw openError(0, 'truncated optional parameter');
    const t = b[off]!;
    const len = extended ? u16(b, off + 1) : b[off + 1]!;
    off += hdr;
    if (off + len > end) throw openError(0, `optional parameter ${t} overruns the field`);
    if (t !== OptParam.CAPABILITIES)
      throw openError(OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER, `optional parameter type ${t}`);
    decodeCapabilities(b.subarray(off, off + len), capabilities);
    off += len;
  }
  return { type: 'open', version, myAs, holdTime, bgpId, capabilities };
}

// ---------------------------------------------------------------------------------------------
// UPDATE (RFC 4271 §4.3)

function encodeUpdate(m: UpdateMessage, ctx: CodecContext): Buffer {
  const w = new Writer(128);
  const wAt = w.reserve(2);
  for (const p of m.withdrawn) encodePrefix(w, p);
  w.patchU16(wAt, w.length - 2);
  const aAt = w.reserve(2);
  const aStart = w.length;
  for (const a of m.attrs) encodeAttribute(w, a, ctx);
  w.patchU16(aAt, w.length - aStart);
  for (const p of m.nlri) encodePrefix(w, p);
  const body = w.toBuffer();
  if (body.length + HEADER_LEN > MAX_MESSAGE_LEN)
    throw new RangeError(`UPDATE of ${body.length + HEADER_LEN} octets exceeds ${MAX_MESSAGE_LEN}`);
  return frame(MessageType.UPDATE, body);
}

/** Result of decoding an UPDATE body with RFC 7606 handling. */
export interface DecodedUpdate {
  msg: UpdateMessage;
  /** Strongest action: `treat-as-withdraw` means every NLRI (incl. MP_REACH) is to be withdrawn. */
  action: ErrorAction;
  issues: AttrIssue[];
}

/** Offsets of the three UPDATE fields; throws (session reset) when the lengths are inconsistent. */
export function updateLayout(b: Uint8Array): { wEnd: number; aStart: number; aEnd: number } {
  if (b.length < 4)
    throw updateError(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, 'UPDATE body shorter than 4 octets');
  const wLen = u16(b, 0);
  if (2 + wLen + 2 > b.length)
    throw updateError(
      UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
      `withdrawn routes length ${wLen} overruns the message`,
    );
  const aLen = u16(b, 2 + wLen);
  const aStart = 4 + wLen;
  if (aStart + aLen > b.length)
    throw updateError(
      UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
      `path attributes length ${aLen} overruns the message`,
    );
  return { wEnd: 2 + wLen, aStart, aEnd: aStart + aLen };
}

/**
 * Decodes the Path Attributes field and applies the UPDATE-level checks of RFC 4271 §6.3 and
 * RFC 7606: throws for session-reset conditions; missing well-known attributes (when there is
 * NLRI) make the action treat-as-withdraw; LOCAL_PREF from an external peer is discarded.
 */
export function validateAttributes(
  view: Uint8Array,
  ctx: CodecContext,
  ebgp: boolean,
  hasIpv4Nlri: boolean,
): { attrs: PathAttr[]; action: ErrorAction; issues: AttrIssue[] } {
  const dec = decodeAttributes(view, ctx);
  let { action } = dec;
  const issues = dec.issues;
  const reset = issues.find((i) => i.action === 'session-reset');
  if (reset) throw reset.error;
  const attrs = dec.attrs;
  // RFC 7606 §7.5, §7.9, §7.10: LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST from an external peer
  // are discarded (they mean something only inside the AS).
  if (ebgp) {
    for (let i = attrs.length - 1; i >= 0; i--) {
      const t = attrs[i]!.type;
      if (t === 'local-pref' || t === 'originator-id' || t === 'cluster-list') attrs.splice(i, 1);
    }
  }
  const hasMpReach = attrs.some((a) => a.type === 'mp-reach' && a.nlri.length > 0);
  if (hasIpv4Nlri || hasMpReach) {
    // RFC 4271 §6.3 / RFC 7606 §3.d: missing well-known mandatory attributes -> treat-as-withdraw.
    const need: number[] = [AttrType.ORIGIN, AttrType.AS_PATH];
    if (hasIpv4Nlri) need.push(AttrType.NEXT_HOP);
    const have = new Set(attrs.map((a) => a.type));
    const names: Record<number, PathAttr['type']> = { 1: 'origin', 2: 'as-path', 3: 'next-hop' };
    for (const code of need) {
      if (!have.has(names[code]!)) {
        issues.push({ action: 'treat-as-withdraw', error: missingAttrError(code) });
        action = strongest(action, 'treat-as-withdraw');
      }
    }
  }
  return { attrs, action, issues };
}

/**
 * Decodes and validates an UPDATE body. Throws a BgpError only for session-reset conditions; all
 * other problems come back as `action` + `issues`, with the offending attributes left out.
 */
export function decodeUpdate(b: Uint8Array, ctx: CodecContext = DEFAULT_CONTEXT, ebgp = true): DecodedUpdate {
  const { wEnd, aStart, aEnd } = updateLayout(b);
  const withdrawn = decodePrefixes(Afi.IPV4, b, 2, wEnd);
  const nlri = decodePrefixes(Afi.IPV4, b, aEnd, b.length);
  const { attrs, action, issues } = validateAttributes(b.subarray(aStart, aEnd), ctx, ebgp, nlri.length > 0);
  return { msg: { type: 'update', withdrawn, attrs, nlri }, action, issues };
}

// ---------------------------------------------------------------------------------------------
// Everything else

const KEEPALIVE = frame(MessageType.KEEPALIVE, new Uint8Array(0));

/** Encodes any message. KEEPALIVE is a shared constant buffer. */
export function encodeMessage(m: BgpMessage, ctx: CodecContext = DEFAULT_CONTEXT): Buffer {
  switch (m.type) {
    case 'open':
      return encodeOpen(m);
    case 'update':
      return encodeUpdate(m, ctx);
    case 'notification': {
      const body = Buffer.allocUnsafe(2 + m.data.length);
      body[0] = m.code;
      body[1] = m.subcode;
      body.set(m.data, 2);
      return frame(MessageType.NOTIFICATION, body);
    }
    case 'keepalive':
      return KEEPALIVE;
    case 'route-refresh':
      return frame(MessageType.ROUTE_REFRESH, Uint8Array.of(m.afi >> 8, m.afi & 255, 0, m.safi));
    case 'unknown':
      return frame(m.code, m.body);
  }
}

/**
 * Decodes one whole message (header included). Throws BgpError for anything that must reset the
 * session. For UPDATEs use `decodeMessageFull` to also get the RFC 7606 action.
 */
export function decodeMessage(frameBuf: Uint8Array, ctx: CodecContext = DEFAULT_CONTEXT): BgpMessage {
  const { msgType } = checkHeader(frameBuf);
  const body = frameBuf.subarray(HEADER_LEN, u16(frameBuf, 16));
  switch (msgType) {
    case MessageType.OPEN:
      return decodeOpen(body);
    case MessageType.UPDATE:
      return decodeUpdate(body, ctx, false).msg;
    case MessageType.NOTIFICATION:
      return {
        type: 'notification',
        code: body[0]!,
        subcode: body[1]!,
        data: Uint8Array.from(body.subarray(2)),
      };
    case MessageType.KEEPALIVE:
      return { type: 'keepalive' };
    case MessageType.ROUTE_REFRESH:
      // RFC 7313 §5: ROUTE-REFRESH Message Error / Invalid Message Length, with the message as data.
      if (body.length !== 4)
        throw new BgpError(
          ErrorCode.ROUTE_REFRESH,
          1,
          `ROUTE-REFRESH length ${body.length + 19}`,
          Uint8Array.from(frameBuf),
        );
      return { type: 'route-refresh', afi: u16(body, 0), safi: body[3]! };
    default:
      return { type: 'unknown', code: msgType, body: Uint8Array.from(body) };
  }
}

export function isEndOfRib(m: UpdateMessage): { afi: number; safi: number } | undefined {
  // RFC 4724 §2: IPv4 EoR is an empty UPDATE; others an UPDATE with only an empty MP_UNREACH.
  if (m.withdrawn.length === 0 && m.nlri.length === 0) {
    if (m.attrs.length === 0) return { afi: Afi.IPV4, safi: Safi.UNICAST };
    const only = m.attrs[0];
    if (m.attrs.length === 1 && only?.type === 'mp-unreach' && only.withdrawn.length === 0)
      return { afi: only.afi, safi: only.safi };
  }
  return undefined;
}

export function endOfRib(afi: number, safi: number = Safi.UNICAST): UpdateMessage {
  if (afi === Afi.IPV4) return { type: 'update', withdrawn: [], attrs: [], nlri: [] };
  return {
    type: 'update',
    withdrawn: [],
    attrs: [{ type: 'mp-unreach', afi, safi, withdrawn: [] }],
    nlri: [],
  };
}

export { BgpError };
