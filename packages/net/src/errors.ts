// The one error of @podnet/net: bad input, naming the field, the value and what is wrong with it.

export const NET_ERR_INVALID = 'NET_ERR_INVALID';

export class NetError extends Error {
  readonly code = NET_ERR_INVALID;

  constructor(
    /** Where the value came from, e.g. `spec.cidr` or `--node-ip`. */
    readonly field: string,
    readonly value: string,
    /** What the value should have been, e.g. `an IP address`. */
    readonly expected: string,
    /** Why it is not, e.g. `leading zero in an IPv4 octet`. */
    readonly reason: string,
  ) {
    super(`${field}: ${JSON.stringify(value)} is not ${expected} (${reason})`);
    this.name = 'NetError';
  }
}
