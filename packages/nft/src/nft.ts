// The table podnet owns, kept equal to a model: sync() applies the model in one transaction and
// drift() says how the kernel differs from the last model synced.
import { NftError } from './errors.js';
import type { NftExecutor } from './exec.js';
import type { Table } from './model.js';
import { type Observed, parseListing } from './observed.js';
import {
  compare,
  type Drift,
  renderElements,
  renderFull,
  structureKey,
  type ValidTable,
  validate,
} from './render.js';

export interface SyncResult {
  /** `full`: flushed and recreated; `elements`: only set/map elements changed; `none`: already equal. */
  mode: 'full' | 'elements' | 'none';
  /** The transaction applied ('' for `none`). */
  script: string;
}

export class NftTable {
  private readonly exec: NftExecutor;
  /** Structure (everything but set contents) of the last model applied by this process. */
  private applied: string | undefined;
  private model: ValidTable | undefined;

  constructor(opts: { exec: NftExecutor }) {
    this.exec = opts.exec;
  }

  /** Reads podnet's table back (null when it does not exist). */
  async read(table: string): Promise<Observed | null> {
    const json = await this.exec.list(table);
    return json === null ? null : parseListing(json, table);
  }

  /**
   * Makes the kernel's table equal to `model` in one transaction. The first sync of a process,
   * a changed structure or any structural drift gives a full flush-and-recreate; otherwise only
   * the differing set and map elements are added and deleted. Throws NFT_ERR_INVALID before
   * touching the kernel, NFT_ERR_APPLY (nothing changed) when nft refuses.
   */
  async sync(model: Table): Promise<SyncResult> {
    const t = validate(model);
    const key = structureKey(t);
    const observed = await this.read(t.name);
    const drift = compare(t, observed);
    let result: SyncResult;
    if (this.applied === key && drift.structural.length === 0) {
      const script = renderElements(t, drift.elements);
      result = { mode: script ? 'elements' : 'none', script };
    } else {
      result = { mode: 'full', script: renderFull(t, observed) };
    }
    if (result.script) await this.exec.apply(result.script);
    this.applied = key;
    this.model = t;
    return result;
  }

  /** How the kernel differs from the last model synced (empty lists: no drift). */
  async drift(): Promise<Drift> {
    if (!this.model) throw new NftError('NFT_ERR_INVALID', 'drift(): nothing has been synced yet');
    return compare(this.model, await this.read(this.model.name));
  }
}
