// Typed IPAM errors with stable codes (the CNI plugin maps them onto CNI error codes).

export const IPAM_ERR = {
  POOL_EXHAUSTED: 'IPAM_ERR_POOL_EXHAUSTED',
  NO_POOL_FOR_NODE: 'IPAM_ERR_NO_POOL_FOR_NODE',
  INVALID_CIDR: 'IPAM_ERR_INVALID_CIDR',
  BLOCK_SIZE: 'IPAM_ERR_BLOCK_SIZE',
  POOLS_OVERLAP: 'IPAM_ERR_POOLS_OVERLAP',
  INVALID_ARGUMENT: 'IPAM_ERR_INVALID_ARGUMENT',
  NOT_ALLOCATED: 'IPAM_ERR_NOT_ALLOCATED',
  TOO_MANY_CONFLICTS: 'IPAM_ERR_TOO_MANY_CONFLICTS',
  /** Another allocation with the same handle holds it and has not recorded its address yet. */
  HANDLE_BUSY: 'IPAM_ERR_HANDLE_BUSY',
  DATASTORE: 'IPAM_ERR_DATASTORE',
} as const;
export type IpamErrorCode = (typeof IPAM_ERR)[keyof typeof IPAM_ERR];

export class IpamError extends Error {
  constructor(
    readonly code: IpamErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'IpamError';
  }
}

export function isIpamError(err: unknown, code?: IpamErrorCode): err is IpamError {
  return err instanceof IpamError && (code === undefined || err.code === code);
}
