// The netlink framing layer: nlmsghdr, rtattr (nested) and nlmsgerr with extended ACK TLVs.
// Pure functions: they never throw on bad input; they return a NetlinkError (code NL_ERR_DECODE).
// Reads are zero-copy: bodies and attribute values are subarray views of the datagram.
import { NLM_F, NLMSG, NLMSG_HDRLEN, NLMSGERR_ATTR } from './constants.js';
import { decodeError, type NetlinkError } from './errors.js';

/** One netlink message: the header fields and a view of its body. */
export interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  body: Buffer;
}

/**
 * Splits a datagram into messages. A malformed header stops the walk: the messages before it are
 * returned with `error` describing the rest.
 */
export function splitMessages(buf: Buffer): { msgs: NlMsg[]; error?: NetlinkError } {
  const msgs: NlMsg[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < NLMSG_HDRLEN) {
      return {
        msgs,
        error: decodeError(`truncated nlmsghdr at offset ${off}: ${buf.length - off} of 16 bytes`),
      };
    }
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN) {
      return { msgs, error: decodeError(`bad nlmsg_len ${len} at offset ${off}: below the 16-byte header`) };
    }
    if (len > buf.length - off) {
      return {
        msgs,
        error: decodeError(`bad nlmsg_len ${len} at offset ${off}: only ${buf.length - off} bytes remain`),
      };
    }
    msgs.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      body: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += (len + 3) & ~3;
  }
  return { msgs };
}

/** Attributes by type (nested/byte-order flag bits masked off); the last one of a type wins. */
export type Attrs = (Buffer | undefined)[];

export const NLA_TYPE_MASK = 0x3fff;

/** Parses a run of rtattr/nlattr. Returns the attributes or a NetlinkError naming the offset. */
export function parseAttrs(buf: Buffer, start = 0): Attrs | NetlinkError {
  const attrs: Attrs = [];
  let off = start;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < 4 || off + len > buf.length) {
      return decodeError(`bad attribute length ${len} (type ${type}) at offset ${off} of ${buf.length}`);
    }
    attrs[type] = buf.subarray(off + 4, off + len);
    off += (len + 3) & ~3;
  }
  if (off < buf.length && buf.length - off < 4 && buf.subarray(off).some((b) => b !== 0)) {
    return decodeError(`truncated attribute header at offset ${off} of ${buf.length}`);
  }
  return attrs;
}

/** Walks attributes in order (for lists such as RTA_MULTIPATH or repeated types). */
export function forEachAttr(
  buf: Buffer,
  fn: (type: number, value: Buffer) => void,
  start = 0,
): NetlinkError | undefined {
  let off = start;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < 4 || off + len > buf.length) {
      return decodeError(`bad attribute length ${len} (type ${type}) at offset ${off} of ${buf.length}`);
    }
    fn(type, buf.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return undefined;
}

export function u32(b: Buffer | undefined): number | undefined {
  return b && b.length >= 4 ? b.readUInt32LE(0) : undefined;
}

export function i32(b: Buffer | undefined): number | undefined {
  return b && b.length >= 4 ? b.readInt32LE(0) : undefined;
}

export function u8(b: Buffer | undefined): number | undefined {
  return b && b.length >= 1 ? b[0] : undefined;
}

/** A NUL-terminated string attribute. */
export function str(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
}

/** An NLMSG_ERROR body: errno 0 is an ACK. */
export interface NlError {
  /** Positive errno, 0 for an ACK. */
  errno: number;
  /** Header of the request it answers. */
  reqType: number;
  reqSeq: number;
  extAck?: string;
  extAckOffset?: number;
}

/** Decodes an NLMSG_ERROR body (nlmsgerr + optional extended ACK TLVs). */
export function decodeNlError(msg: NlMsg): NlError | NetlinkError {
  const b = msg.body;
  if (b.length < 4 + NLMSG_HDRLEN) return decodeError(`truncated nlmsgerr: ${b.length} of 20 bytes`);
  const error = b.readInt32LE(0);
  const origLen = b.readUInt32LE(4);
  const out: NlError = { errno: -error, reqType: b.readUInt16LE(8), reqSeq: b.readUInt32LE(12) };
  if (msg.flags & NLM_F.ACK_TLVS) {
    // The request is echoed whole unless the ACK is capped (NETLINK_CAP_ACK).
    const echoed = msg.flags & NLM_F.CAPPED ? NLMSG_HDRLEN : origLen;
    const tlvStart = 4 + ((echoed + 3) & ~3);
    if (tlvStart <= b.length) {
      const attrs = parseAttrs(b, tlvStart);
      if (!(attrs instanceof Error)) {
        const m = str(attrs[NLMSGERR_ATTR.MSG]);
        if (m) out.extAck = m;
        const offs = u32(attrs[NLMSGERR_ATTR.OFFS]);
        if (offs !== undefined) out.extAckOffset = offs;
      }
    }
  }
  return out;
}

export function isControl(type: number): boolean {
  return type === NLMSG.NOOP || type === NLMSG.ERROR || type === NLMSG.DONE || type === NLMSG.OVERRUN;
}
