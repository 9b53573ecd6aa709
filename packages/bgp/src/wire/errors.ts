import { ErrorCode, notificationName } from './constants.js';

/**
 * A protocol error that maps one-to-one onto a NOTIFICATION (RFC 4271 §4.5): `code`/`subcode`/`data`
 * are what goes on the wire; `errCode` is the stable string for logs and callers.
 */
export class BgpError extends Error {
  readonly errCode: string;
  constructor(
    readonly code: number,
    readonly subcode: number,
    message: string,
    readonly data: Uint8Array = new Uint8Array(0),
    options?: { cause?: unknown },
  ) {
    super(`${notificationName(code, subcode)}: ${message}`, options);
    this.name = 'BgpError';
    this.errCode = `BGP_ERR_${notificationName(code, subcode).replace('/', '_')}`;
  }
}

/** Errors in configuration or API use (not on the wire). */
export class BgpConfigError extends Error {
  readonly code = 'BGP_ERR_CONFIG';
  constructor(
    readonly field: string,
    readonly value: unknown,
    why: string,
  ) {
    super(`invalid ${field}=${JSON.stringify(value)}: ${why}`);
    this.name = 'BgpConfigError';
  }
}

export const headerError = (subcode: number, msg: string, data?: Uint8Array) =>
  new BgpError(ErrorCode.MESSAGE_HEADER, subcode, msg, data);
export const openError = (subcode: number, msg: string, data?: Uint8Array) =>
  new BgpError(ErrorCode.OPEN_MESSAGE, subcode, msg, data);
export const updateError = (subcode: number, msg: string, data?: Uint8Array) =>
  new BgpError(ErrorCode.UPDATE_MESSAGE, subcode, msg, data);
