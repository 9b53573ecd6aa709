// Typed errors with a stable `code`.
export const ARP_ERROR_CODES = {
  ARP_ERR_INVALID: 'bad input (interface, address, MAC or option)',
  ARP_ERR_SOCKET: 'a packet socket could not be opened',
  ARP_ERR_SYSCTL: 'an interface sysctl could not be written',
  ARP_ERR_CLOSED: 'the responder is closed',
} as const;

export type ArpErrorCode = keyof typeof ARP_ERROR_CODES;

export class ArpError extends Error {
  override readonly name = 'ArpError';
  constructor(
    readonly code: ArpErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
