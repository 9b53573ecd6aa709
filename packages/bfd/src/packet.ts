// The BFD Control packet (RFC 5880 §4.1) and its reception checks (§6.8.6), as a pure codec.
// Authentication (§4.2–4.4) is not implemented: a packet with the A bit set is refused.

/** bfd.SessionState values on the wire (RFC 5880 §4.1, "Sta"). */
export const State = { ADMIN_DOWN: 0, DOWN: 1, INIT: 2, UP: 3 } as const;
export type StateCode = (typeof State)[keyof typeof State];
export const STATE_NAMES = ['admin-down', 'down', 'init', 'up'] as const;
export type StateName = (typeof STATE_NAMES)[number];

/** Diagnostic codes (RFC 5880 §4.1, "Diag"). */
export const Diag = {
  NONE: 0,
  CONTROL_DETECTION_TIME_EXPIRED: 1,
  ECHO_FUNCTION_FAILED: 2,
  NEIGHBOR_SIGNALED_SESSION_DOWN: 3,
  FORWARDING_PLANE_RESET: 4,
  PATH_DOWN: 5,
  CONCATENATED_PATH_DOWN: 6,
  ADMINISTRATIVELY_DOWN: 7,
  REVERSE_CONCATENATED_PATH_DOWN: 8,
} as const;
export const DIAG_NAMES: Record<number, string> = {
  0: 'none',
  1: 'control-detection-time-expired',
  2: 'echo-function-failed',
  3: 'neighbor-signaled-session-down',
  4: 'forwarding-plane-reset',
  5: 'path-down',
  6: 'concatenated-path-down',
  7: 'administratively-down',
  8: 'reverse-concatenated-path-down',
};

/** UDP destination port of single-hop BFD Control packets (RFC 5881 §4). */
export const BFD_PORT = 3784;
/** Source ports a session picks from (RFC 5881 §4). */
export const SOURCE_PORT_MIN = 49152;
export const SOURCE_PORT_MAX = 65535;
/** TTL / hop limit sent, and the only one accepted (RFC 5881 §5, without authentication). */
export const BFD_TTL = 255;

const VERSION = 1;
const LENGTH = 24;

export interface BfdPacket {
  version: number;
  diag: number;
  state: StateCode;
  poll: boolean;
  final: boolean;
  /** Control Plane Independent (C). */
  cpi: boolean;
  auth: boolean;
  demand: boolean;
  multipoint: boolean;
  detectMult: number;
  myDiscr: number;
  yourDiscr: number;
  /** Microseconds. */
  desiredMinTx: number;
  /** Microseconds. */
  requiredMinRx: number;
  /** Microseconds. */
  requiredMinEchoRx: number;
}

/** Encodes a Control packet without authentication (24 bytes). */
export function encodePacket(p: Omit<BfdPacket, 'version' | 'auth' | 'multipoint'>): Buffer {
  const b = Buffer.alloc(LENGTH);
  b[0] = (VERSION << 5) | (p.diag & 0x1f);
  b[1] =
    (p.state << 6) | (p.poll ? 0x20 : 0) | (p.final ? 0x10 : 0) | (p.cpi ? 0x08 : 0) | (p.demand ? 0x02 : 0);
  b[2] = p.detectMult;
  b[3] = LENGTH;
  b.writeUInt32BE(p.myDiscr >>> 0, 4);
  b.writeUInt32BE(p.yourDiscr >>> 0, 8);
  b.writeUInt32BE(p.desiredMinTx >>> 0, 12);
  b.writeUInt32BE(p.requiredMinRx >>> 0, 16);
  b.writeUInt32BE(p.requiredMinEchoRx >>> 0, 20);
  return b;
}

export type DecodeResult = { ok: true; packet: BfdPacket } | { ok: false; reason: string };

/**
 * Decodes a Control packet and applies the checks of RFC 5880 §6.8.6 that need no session:
 * version, length, detect multiplier, multipoint, My Discriminator, Your Discriminator against the
 * state, and the A bit (authentication is not supported, so an authenticated packet is refused).
 * Never throws.
 */
export function decodePacket(b: Uint8Array): DecodeResult {
  if (b.length < LENGTH) return { ok: false, reason: `short packet (${b.length} bytes)` };
  const version = b[0]! >> 5;
  if (version !== VERSION) return { ok: false, reason: `version ${version}` };
  const flags = b[1]!;
  const auth = (flags & 0x04) !== 0;
  const length = b[3]!;
  if (length < (auth ? LENGTH + 2 : LENGTH)) return { ok: false, reason: `length field ${length}` };
  if (length > b.length) return { ok: false, reason: `length field ${length} > ${b.length} bytes received` };
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const packet: BfdPacket = {
    version,
    diag: b[0]! & 0x1f,
    state: (flags >> 6) as StateCode,
    poll: (flags & 0x20) !== 0,
    final: (flags & 0x10) !== 0,
    cpi: (flags & 0x08) !== 0,
    auth,
    demand: (flags & 0x02) !== 0,
    multipoint: (flags & 0x01) !== 0,
    detectMult: b[2]!,
    myDiscr: v.getUint32(4),
    yourDiscr: v.getUint32(8),
    desiredMinTx: v.getUint32(12),
    requiredMinRx: v.getUint32(16),
    requiredMinEchoRx: v.getUint32(20),
  };
  if (packet.detectMult === 0) return { ok: false, reason: 'detect multiplier 0' };
  if (packet.multipoint) return { ok: false, reason: 'multipoint bit set' };
  if (packet.myDiscr === 0) return { ok: false, reason: 'my discriminator 0' };
  if (packet.yourDiscr === 0 && packet.state !== State.DOWN && packet.state !== State.ADMIN_DOWN) {
    return { ok: false, reason: `your discriminator 0 in state ${STATE_NAMES[packet.state]}` };
  }
  if (packet.auth) return { ok: false, reason: 'authentication present (not supported)' };
  return { ok: true, packet };
}
