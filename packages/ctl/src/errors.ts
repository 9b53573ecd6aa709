// podnetctl's errors: each says what went wrong and what to do next. `exitCode` is the process's.

export type CtlErrorCode =
  | 'CTL_ERR_USAGE'
  | 'CTL_ERR_AGENT'
  | 'CTL_ERR_API'
  | 'CTL_ERR_NOT_FOUND'
  | 'CTL_ERR_INCONSISTENT';

export class CtlError extends Error {
  override readonly name = 'CtlError';
  constructor(
    readonly code: CtlErrorCode,
    message: string,
    readonly exitCode = code === 'CTL_ERR_USAGE' ? 2 : 1,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
