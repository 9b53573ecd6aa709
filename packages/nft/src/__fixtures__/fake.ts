// An in-memory executor: it records every transaction it was given and answers `list` with the
// listing the test sets; `refuse` makes the next apply fail the way nft does. With `fast` it also
// has the element fast path and a generation the test controls (`gen`, bumped by each apply).
import { NftError } from '../errors.js';
import type { NftExecutor } from '../exec.js';
import type { ElementChange } from '../nfnl.js';

export class FakeExecutor implements NftExecutor {
  readonly applied: string[] = [];
  /** Element transactions given to the fast path. */
  readonly fastApplied: ElementChange[][] = [];
  listing: string | null = null;
  lists = 0;
  refuse: string | undefined;
  gen = 1;
  /** The fast path answers null (not taken) while this is set. */
  fastDeclines = false;
  applyElements?: NftExecutor['applyElements'];
  generation?: NftExecutor['generation'];

  constructor(opts: { fast?: boolean } = {}) {
    if (opts.fast) {
      this.generation = async () => this.gen;
      this.applyElements = async (_table, changes) => {
        if (this.fastDeclines) return null;
        if (this.refuse !== undefined) {
          const why = this.refuse;
          this.refuse = undefined;
          throw new NftError('NFT_ERR_APPLY', `nf_tables refused the transaction: ${why}`, why);
        }
        this.fastApplied.push(changes);
        return ++this.gen;
      };
    }
  }

  async apply(script: string): Promise<void> {
    if (this.refuse !== undefined) {
      const stderr = this.refuse;
      this.refuse = undefined;
      throw new NftError('NFT_ERR_APPLY', `nft -f refused the transaction (exit 1): ${stderr}`, stderr);
    }
    this.applied.push(script);
    this.gen++;
  }

  async list(): Promise<string | null> {
    this.lists++;
    return this.listing;
  }
}
