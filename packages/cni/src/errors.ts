// CNI error codes and the typed error every command throws.
//
// Codes 0-99 are reserved by the CNI specification (SPEC.md, "Error" section, spec 1.1.0);
// 100 and above are plugin-specific. The spec's well-known codes are:
//   1 incompatible CNI version, 2 unsupported field in network configuration,
//   3 container unknown or does not exist, 4 invalid necessary environment variables,
//   5 I/O failure, 6 failed to decode content, 7 invalid network configuration,
//   11 try again later, 50 plugin not available (STATUS), 51 not available and existing
//   containers may have limited connectivity (STATUS).
export const CniErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnv: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  PluginNotAvailableLimitedConnectivity: 51,
  // podnet's own codes (>= 100).
  IpamExhausted: 100,
  IpamFailure: 101,
  DataplaneFailure: 102,
  DatastoreFailure: 103,
  CheckFailed: 104,
} as const;
export type CniErrorCode = (typeof CniErrorCode)[keyof typeof CniErrorCode];

export const CniErrorName: Record<CniErrorCode, string> = {
  1: 'INCOMPATIBLE_CNI_VERSION',
  2: 'UNSUPPORTED_FIELD',
  3: 'UNKNOWN_CONTAINER',
  4: 'INVALID_ENV',
  5: 'IO_FAILURE',
  6: 'DECODE_FAILURE',
  7: 'INVALID_NETWORK_CONFIG',
  11: 'TRY_AGAIN_LATER',
  50: 'PLUGIN_NOT_AVAILABLE',
  51: 'PLUGIN_NOT_AVAILABLE_LIMITED_CONNECTIVITY',
  100: 'IPAM_EXHAUSTED',
  101: 'IPAM_FAILURE',
  102: 'DATAPLANE_FAILURE',
  103: 'DATASTORE_FAILURE',
  104: 'CHECK_FAILED',
};

/** The error object a plugin writes to stdout (SPEC.md "Error"). */
export interface CniErrorObject {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export class CniError extends Error {
  override readonly name = 'CniError';
  constructor(
    readonly code: CniErrorCode,
    msg: string,
    readonly details?: string,
    options?: { cause?: unknown },
  ) {
    super(msg, options);
  }

  get codeName(): string {
    return CniErrorName[this.code];
  }

  toObject(cniVersion: string): CniErrorObject {
    const obj: CniErrorObject = { cniVersion, code: this.code, msg: this.message };
    const details = this.details ?? causeText(this.cause);
    if (details) obj.details = details;
    return obj;
  }
}

function causeText(cause: unknown): string | undefined {
  if (cause === undefined || cause === null) return undefined;
  if (cause instanceof Error) return cause.message;
  return String(cause);
}

/** Wraps anything thrown into a CniError, keeping an existing one as is. */
export function toCniError(err: unknown, fallback: CniErrorCode, msg: string): CniError {
  if (err instanceof CniError) return err;
  return new CniError(fallback, `${msg}: ${err instanceof Error ? err.message : String(err)}`, undefined, {
    cause: err,
  });
}
