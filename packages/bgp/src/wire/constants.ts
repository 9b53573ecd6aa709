// Constant tables of BGP-4. Each carries the RFC section it comes from; codes are `as const`
// objects with a reverse name map so logs print names.

/** RFC 4271 §4.1: every message starts with 16 octets of 0xff, a 2-octet length and a 1-octet type. */
export const HEADER_LEN = 19;
export const MARKER_LEN = 16;
/** RFC 4271 §4: messages are 19..4096 octets (RFC 8654 extended messages are not negotiated). */
export const MIN_MESSAGE_LEN = 19;
export const MAX_MESSAGE_LEN = 4096;
export const BGP_VERSION = 4;
/** RFC 6793 §9: AS_TRANS stands in for a 4-octet AS in 2-octet fields. */
export const AS_TRANS = 23456;

/** RFC 4271 §4.1 (and RFC 2918 §3 for ROUTE-REFRESH). */
export const MessageType = {
  OPEN: 1,
  UPDATE: 2,
  NOTIFICATION: 3,
  KEEPALIVE: 4,
  ROUTE_REFRESH: 5,
} as const;

/** RFC 4760 AFI / SAFI values used here. */
export const Afi = { IPV4: 1, IPV6: 2 } as const;
export const Safi = { UNICAST: 1 } as const;

/** RFC 4271 §4.2 optional parameter types; RFC 5492 capabilities; RFC 9072 extended length (255). */
export const OptParam = { CAPABILITIES: 2, EXTENDED_LENGTH: 255 } as const;

/** IANA capability codes (RFC 4760, 2918, 4724, 6793, 9494). */
export const CapabilityCode = {
  MULTIPROTOCOL: 1,
  ROUTE_REFRESH: 2,
  GRACEFUL_RESTART: 64,
  FOUR_OCTET_AS: 65,
  LONG_LIVED_GRACEFUL_RESTART: 71,
} as const;

/** RFC 4271 §5 and §4.3 attribute type codes (plus RFC 1997, 4456, 4760, 8092). */
export const AttrType = {
  ORIGIN: 1,
  AS_PATH: 2,
  NEXT_HOP: 3,
  MULTI_EXIT_DISC: 4,
  LOCAL_PREF: 5,
  ATOMIC_AGGREGATE: 6,
  AGGREGATOR: 7,
  COMMUNITIES: 8,
  ORIGINATOR_ID: 9,
  CLUSTER_LIST: 10,
  MP_REACH_NLRI: 14,
  MP_UNREACH_NLRI: 15,
  AS4_PATH: 17,
  AS4_AGGREGATOR: 18,
  LARGE_COMMUNITIES: 32,
} as const;

/** RFC 4271 §4.3 attribute flag bits. */
export const AttrFlag = {
  OPTIONAL: 0x80,
  TRANSITIVE: 0x40,
  PARTIAL: 0x20,
  EXTENDED_LENGTH: 0x10,
} as const;

/** RFC 4271 §5.1.1. */
export const Origin = { IGP: 0, EGP: 1, INCOMPLETE: 2 } as const;

/** RFC 4271 §4.3 AS_PATH segment types (RFC 5065 confed types accepted on decode only). */
export const AsPathSegment = { AS_SET: 1, AS_SEQUENCE: 2, AS_CONFED_SEQUENCE: 3, AS_CONFED_SET: 4 } as const;

/** RFC 4271 §4.5 NOTIFICATION error codes. */
export const ErrorCode = {
  MESSAGE_HEADER: 1,
  OPEN_MESSAGE: 2,
  UPDATE_MESSAGE: 3,
  HOLD_TIMER_EXPIRED: 4,
  FSM: 5,
  CEASE: 6,
  ROUTE_REFRESH: 7,
} as const;

/** RFC 4271 §6.1. */
export const HeaderSubcode = {
  CONNECTION_NOT_SYNCHRONIZED: 1,
  BAD_MESSAGE_LENGTH: 2,
  BAD_MESSAGE_TYPE: 3,
} as const;

/** RFC 4271 §6.2 (and RFC 5492 for 7). */
export const OpenSubcode = {
  UNSUPPORTED_VERSION: 1,
  BAD_PEER_AS: 2,
  BAD_BGP_IDENTIFIER: 3,
  UNSUPPORTED_OPTIONAL_PARAMETER: 4,
  UNACCEPTABLE_HOLD_TIME: 6,
  UNSUPPORTED_CAPABILITY: 7,
} as const;

/** RFC 4271 §6.3. */
export const UpdateSubcode = {
  MALFORMED_ATTRIBUTE_LIST: 1,
  UNRECOGNIZED_WELLKNOWN_ATTRIBUTE: 2,
  MISSING_WELLKNOWN_ATTRIBUTE: 3,
  ATTRIBUTE_FLAGS_ERROR: 4,
  ATTRIBUTE_LENGTH_ERROR: 5,
  INVALID_ORIGIN_ATTRIBUTE: 6,
  INVALID_NEXT_HOP_ATTRIBUTE: 8,
  OPTIONAL_ATTRIBUTE_ERROR: 9,
  INVALID_NETWORK_FIELD: 10,
  MALFORMED_AS_PATH: 11,
} as const;

/** RFC 6608 FSM error subcodes. */
export const FsmSubcode = {
  UNSPECIFIED: 0,
  UNEXPECTED_IN_OPENSENT: 1,
  UNEXPECTED_IN_OPENCONFIRM: 2,
  UNEXPECTED_IN_ESTABLISHED: 3,
} as const;

/** RFC 4486 Cease subcodes. */
export const CeaseSubcode = {
  MAX_PREFIXES: 1,
  ADMINISTRATIVE_SHUTDOWN: 2,
  PEER_DECONFIGURED: 3,
  ADMINISTRATIVE_RESET: 4,
  CONNECTION_REJECTED: 5,
  OTHER_CONFIGURATION_CHANGE: 6,
  CONNECTION_COLLISION_RESOLUTION: 7,
  OUT_OF_RESOURCES: 8,
  HARD_RESET: 9,
  /** RFC 9384. */
  BFD_DOWN: 10,
} as const;

/** RFC 1997 well-known communities. */
export const WellKnownCommunity = {
  NO_EXPORT: 0xffffff01,
  NO_ADVERTISE: 0xffffff02,
  NO_EXPORT_SUBCONFED: 0xffffff03,
} as const;

function invert<T extends Record<string, number>>(o: T): Record<number, string> {
  const out: Record<number, string> = {};
  for (const [k, v] of Object.entries(o)) out[v] = k;
  return out;
}

export const messageTypeName = invert(MessageType);
export const attrTypeName = invert(AttrType);
export const errorCodeName = invert(ErrorCode);
const subcodeTables: Record<number, Record<number, string>> = {
  [ErrorCode.MESSAGE_HEADER]: invert(HeaderSubcode),
  [ErrorCode.OPEN_MESSAGE]: invert(OpenSubcode),
  [ErrorCode.UPDATE_MESSAGE]: invert(UpdateSubcode),
  [ErrorCode.FSM]: invert(FsmSubcode),
  [ErrorCode.CEASE]: invert(CeaseSubcode),
};

/** `CEASE/MAX_PREFIXES`-style name for a NOTIFICATION code and subcode. */
export function notificationName(code: number, subcode: number): string {
  const c = errorCodeName[code] ?? `code-${code}`;
  const s = subcodeTables[code]?.[subcode] ?? (subcode === 0 ? 'UNSPECIFIC' : `subcode-${subcode}`);
  return `${c}/${s}`;
}
