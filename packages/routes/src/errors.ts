// Typed errors with a stable `code`, so callers (the agent, podnetctl) branch on codes, not messages.
export const ROUTES_ERROR_CODES = {
  ROUTES_ERR_INVALID: 'bad input (a prefix, address, interface name or option)',
  ROUTES_ERR_KERNEL: 'the kernel refused a request',
  ROUTES_ERR_STOPPED: 'the route programmer is stopped',
  ROUTES_ERR_SYSCTL: 'a sysctl could not be written',
} as const;

export type RoutesErrorCode = keyof typeof ROUTES_ERROR_CODES;

export class RoutesError extends Error {
  override readonly name = 'RoutesError';
  constructor(
    readonly code: RoutesErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
