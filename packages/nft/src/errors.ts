// Typed errors with a stable `code`, so callers (the agent, podnetctl) branch on codes, not messages.
export const NFT_ERROR_CODES = {
  NFT_ERR_INVALID: 'bad input in the model (a name, comment, element or reference)',
  NFT_ERR_APPLY: 'nft or the kernel refused the transaction (nothing was changed)',
  NFT_ERR_EXEC: 'the nft program could not be run',
  NFT_ERR_READ: 'the kernel ruleset could not be read back or parsed',
} as const;

export type NftErrorCode = keyof typeof NFT_ERROR_CODES;

export class NftError extends Error {
  override readonly name = 'NftError';
  constructor(
    readonly code: NftErrorCode,
    message: string,
    /** nft's own stderr, when nft ran and failed. */
    readonly stderr = '',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
