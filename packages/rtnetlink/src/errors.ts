// Typed errors of rtnetlink-ts. Every error has a stable `code`:
// - NL_ERR_KERNEL   the kernel refused a request: `errno`/`errnoName` and the extended ACK message;
// - NL_ERR_DECODE   a malformed message (truncated, bad length): never thrown by decode, returned;
// - NL_ERR_INVALID  bad input from the caller, naming the field and the value;
// - NL_ERR_OVERRUN  the receive queue overflowed (ENOBUFS): replies were lost;
// - NL_ERR_CLOSED   the client was closed while the request was pending;
// - NL_ERR_TIMEOUT  no reply in time;
// - NL_ERR_SOCKET   a socket syscall failed (cause: the NativeError).
import { getSystemErrorName } from 'node:util';

export type NetlinkErrorCode =
  | 'NL_ERR_KERNEL'
  | 'NL_ERR_DECODE'
  | 'NL_ERR_INVALID'
  | 'NL_ERR_OVERRUN'
  | 'NL_ERR_CLOSED'
  | 'NL_ERR_TIMEOUT'
  | 'NL_ERR_SOCKET';

export interface NetlinkErrorDetails {
  /** Positive errno (kernel errors), e.g. 17. */
  errno?: number;
  /** The errno name, e.g. 'EEXIST'. */
  errnoName?: string;
  /** The kernel's extended ACK message (NLMSGERR_ATTR_MSG), when it sent one. */
  extAck?: string;
  /** Offset of the offending attribute in the request (NLMSGERR_ATTR_OFFS). */
  extAckOffset?: number;
  /** What was asked: e.g. 'route.add 10.0.0.0/24 table 254'. */
  request?: string;
  /** Index of the request in a batch. */
  index?: number;
  /** Sequence number of the request. */
  seq?: number;
  cause?: unknown;
}

export class NetlinkError extends Error {
  readonly code: NetlinkErrorCode;
  readonly errno: number | undefined;
  readonly errnoName: string | undefined;
  readonly extAck: string | undefined;
  readonly extAckOffset: number | undefined;
  readonly request: string | undefined;
  readonly index: number | undefined;
  readonly seq: number | undefined;

  constructor(code: NetlinkErrorCode, message: string, details: NetlinkErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'NetlinkError';
    this.code = code;
    this.errno = details.errno;
    this.errnoName = details.errnoName;
    this.extAck = details.extAck;
    this.extAckOffset = details.extAckOffset;
    this.request = details.request;
    this.index = details.index;
    this.seq = details.seq;
  }
}

/** errno number → name ('EEXIST'), or 'E<n>' when unknown. */
export function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-Math.abs(errno));
  } catch {
    return `E${errno}`;
  }
}

/** The error the kernel reported for one request. */
export function kernelError(
  errno: number,
  extAck: string | undefined,
  extAckOffset: number | undefined,
  request: string | undefined,
  seq: number,
  index?: number,
): NetlinkError {
  const name = errnoName(errno);
  const where = request ? `${request}: ` : '';
  const msg = `${where}${name}${extAck ? ` (${extAck})` : ''}`;
  return new NetlinkError('NL_ERR_KERNEL', msg, {
    errno,
    errnoName: name,
    extAck,
    extAckOffset,
    request,
    seq,
    index,
  });
}

export function invalid(field: string, value: unknown, why: string): NetlinkError {
  let shown: string;
  try {
    shown = JSON.stringify(value) ?? String(value);
  } catch {
    shown = String(value);
  }
  return new NetlinkError('NL_ERR_INVALID', `${field}: ${why} (got ${shown})`);
}

export function decodeError(message: string): NetlinkError {
  return new NetlinkError('NL_ERR_DECODE', message);
}

/** Throws NL_ERR_INVALID unless `v` is a (non-null) object. */
export function requireObject(field: string, v: unknown, what: string): void {
  if (v === null || typeof v !== 'object') throw invalid(field, v, `must be ${what}`);
}
