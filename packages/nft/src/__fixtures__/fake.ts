// An in-memory executor: it records every transaction it was given and answers `list` with the
// listing the test sets; `refuse` makes the next apply fail the way nft does.
import { NftError } from '../errors.js';
import type { NftExecutor } from '../exec.js';

export class FakeExecutor implements NftExecutor {
  readonly applied: string[] = [];
  listing: string | null = null;
  refuse: string | undefined;

  async apply(script: string): Promise<void> {
    if (this.refuse !== undefined) {
      const stderr = this.refuse;
      this.refuse = undefined;
      throw new NftError('NFT_ERR_APPLY', `nft -f refused the transaction (exit 1): ${stderr}`, stderr);
    }
    this.applied.push(script);
  }

  async list(): Promise<string | null> {
    return this.listing;
  }
}
