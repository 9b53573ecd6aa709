// The table podnet owns, kept equal to a model: sync() applies the model in one transaction and
// drift() says how the kernel differs from the last model synced.
//
// Which transaction: a full flush-and-recreate (`nft -f -`) on the first sync of a process, when
// the model's structure changed or when the kernel drifted structurally (a chain, set or map, or
// the content of a rule, differs from what the last full apply left); otherwise only the element
// delta, over netlink when the executor has the fast path and no set involved has `interval`,
// else through `nft -f -`. Either way one kernel transaction.
//
// Drift detection: right after a full apply the rules are read back (`nft -t -j list table`) and
// kept, normalised (handles and counter values dropped); a later read compares every rule with
// them, so a rule replaced in place is seen. Reading costs a process start and the whole listing,
// so a sync first asks the kernel for its ruleset generation (NFT_MSG_GETGEN): unchanged since
// podnet's last transaction means nothing in the namespace's nf_tables changed, and the delta is
// computed from the last model alone.
import { elementResult, verdictText } from './elements.js';
import { NftError } from './errors.js';
import type { NftExecutor } from './exec.js';
import type { Table, Verdict } from './model.js';
import type { ElementChange } from './nfnl.js';
import { type Observed, parseListing } from './observed.js';
import {
  compare,
  type Drift,
  renderElements,
  renderFull,
  type SetDelta,
  structureKey,
  type ValidTable,
  validate,
} from './render.js';

export interface SyncResult {
  /** `full`: flushed and recreated; `elements`: only set/map elements changed; `none`: already equal. */
  mode: 'full' | 'elements' | 'none';
  /** The transaction applied, in nft syntax ('' for `none`; for `netlink` the equivalent text). */
  script: string;
  /** The executor that applied it: `nft -f -` or the netlink element fast path (absent for `none`). */
  via?: 'nft' | 'netlink';
  /** How the kernel differed from what podnet last left there (repaired by this sync); empty: no drift. */
  repaired?: string[];
}

/** What the agent exports as metrics. */
export interface NftCounters {
  /** Full flush-and-recreate transactions applied. */
  fullApplies: number;
  /** Element-only transactions applied (either executor). */
  elementDeltas: number;
  /** Of those, applied over netlink. */
  elementDeltasNetlink: number;
  /** Syncs that found the table differing from what podnet last left there, and repaired it. */
  driftRepairs: number;
  /** Syncs that skipped reading the table back because the ruleset generation was unchanged. */
  readsSkipped: number;
  /** The namespace's ruleset generation right after podnet's last transaction (undefined: unknown). */
  generation: number | undefined;
}

/** Elements to add to and delete from one set or map of the last model synced (see update()). */
export type ElementUpdate =
  | { set: string; add?: string[]; delete?: string[] }
  | { map: string; add?: { key: string; verdict: Verdict }[]; delete?: string[] };

export class NftTable {
  private readonly exec: NftExecutor;
  /** Structure (everything but set contents) of the last model applied by this process. */
  private applied: string | undefined;
  private model: ValidTable | undefined;
  /** Each chain's rules as the kernel reported them right after the last full apply. */
  private rules: Map<string, string[]> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly stats: NftCounters = {
    fullApplies: 0,
    elementDeltas: 0,
    elementDeltasNetlink: 0,
    driftRepairs: 0,
    readsSkipped: 0,
    generation: undefined,
  };

  constructor(opts: { exec: NftExecutor }) {
    this.exec = opts.exec;
  }

  /** A copy of the counters (for metrics). */
  get counters(): NftCounters {
    return { ...this.stats };
  }

  /** Reads podnet's table back (null when it does not exist). */
  async read(table: string): Promise<Observed | null> {
    const json = await this.exec.list(table);
    return json === null ? null : parseListing(json, table);
  }

  /**
   * Makes the kernel's table equal to `model` in one transaction (see the file's header for which).
   * Throws NFT_ERR_INVALID before touching the kernel, NFT_ERR_APPLY (nothing changed) when the
   * kernel or nft refuses.
   */
  sync(model: Table): Promise<SyncResult> {
    return this.serial(() => this.syncNow(model));
  }

  /** One sync or update at a time: each starts from what the one before left. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f, f);
    this.queue = run.catch(() => {});
    return run;
  }

  private async syncNow(model: Table): Promise<SyncResult> {
    const t = validate(model);
    const key = structureKey(t);
    const gen = this.exec.generation ? await this.exec.generation() : undefined;
    if (this.model && this.applied === key && gen !== undefined && gen === this.stats.generation) {
      // Nothing in nf_tables changed since podnet's last transaction: the kernel holds this.model.
      this.stats.readsSkipped++;
      return this.applyDelta(t, diffModels(this.model, t), []);
    }
    const observed = await this.read(t.name);
    const drift = compare(t, observed);
    const ruleDrift =
      this.applied === key && this.rules && observed
        ? compareRules(this.rules, await this.readRules(t.name, observed))
        : [];
    const repaired = this.model ? describeDrift(this.model, observed, ruleDrift) : [];
    this.stats.generation = gen;
    if (this.applied === key && drift.structural.length === 0 && ruleDrift.length === 0) {
      return this.applyDelta(t, drift.elements, repaired);
    }
    const script = renderFull(t, observed);
    await this.exec.apply(script);
    this.stats.fullApplies++;
    if (repaired.length) this.stats.driftRepairs++;
    this.model = t;
    this.applied = key;
    await this.snapshot(t.name);
    return { mode: 'full', script, via: 'nft', repaired };
  }

  /**
   * Changes elements of the last model synced without handing over the whole model: a pod's
   * elements come and go at the cost of the change, not of the table (sync() validates and
   * compares everything). Only the elements named are checked (NFT_ERR_INVALID naming the field
   * and the value); adding an element already there and deleting one that is not are no-ops. When
   * the ruleset generation is podnet's own the delta is applied directly (over netlink when no
   * set involved has `interval`); otherwise this is a sync() of the updated model, which reads
   * the table and repairs drift.
   */
  update(changes: ElementUpdate[]): Promise<SyncResult> {
    return this.serial(async () => {
      const t = this.model;
      if (!t) throw new NftError('NFT_ERR_INVALID', 'update(): nothing has been synced yet');
      const { next, deltas } = applyUpdates(t, changes);
      const sets = new Map(t.sets.map((s) => [s.name, s]));
      // Prefixes (interval sets) get the whole model's checks (overlaps) through sync().
      if (deltas.every((d) => !sets.get(d.set)!.interval)) {
        const gen = this.exec.generation ? await this.exec.generation() : undefined;
        if (this.applied !== undefined && gen !== undefined && gen === this.stats.generation) {
          this.stats.readsSkipped++;
          return this.applyDelta(next, deltas, []);
        }
      }
      return this.syncNow(toTable(next));
    });
  }

  /** How the kernel differs from the last model synced (empty lists: no drift). Always reads the table. */
  async drift(): Promise<Drift> {
    if (!this.model) throw new NftError('NFT_ERR_INVALID', 'drift(): nothing has been synced yet');
    const observed = await this.read(this.model.name);
    const d = compare(this.model, observed);
    if (this.rules && observed)
      d.structural.push(...compareRules(this.rules, await this.readRules(this.model.name, observed)));
    return d;
  }

  /** Releases the executor's netlink socket. */
  close(): void {
    this.exec.close?.();
  }

  private async applyDelta(t: ValidTable, deltas: SetDelta[], repaired: string[]): Promise<SyncResult> {
    if (deltas.length === 0) {
      this.model = t;
      return { mode: 'none', script: '' };
    }
    const script = renderElements(t, deltas);
    const sets = new Map(t.sets.map((s) => [s.name, s]));
    let via: 'nft' | 'netlink' = 'nft';
    if (this.exec.applyElements && deltas.every((d) => !sets.get(d.set)!.interval)) {
      const changes: ElementChange[] = deltas.map((d) => {
        const s = sets.get(d.set)!;
        return { set: d.set, kind: s.kind, type: s.type, add: d.add, delete: d.delete };
      });
      // The model is remembered only once the kernel took the change: a refusal leaves the old one.
      const gen = await this.guard(() => this.exec.applyElements!(t.name, changes));
      if (gen !== null) {
        via = 'netlink';
        this.stats.generation = gen;
        this.stats.elementDeltasNetlink++;
      }
    }
    if (via === 'nft') {
      await this.guard(() => this.exec.apply(script));
      this.stats.generation = this.exec.generation ? await this.exec.generation() : undefined;
    }
    this.model = t;
    this.stats.elementDeltas++;
    if (repaired.length) this.stats.driftRepairs++;
    return { mode: 'elements', script, via, repaired };
  }

  /** Runs a kernel change; on failure forgets the generation, so the next sync reads the table. */
  private async guard<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      this.stats.generation = undefined;
      throw err;
    }
  }

  /** Each chain's rules: digests over netlink when the executor has them, else from `listing`. */
  private async readRules(table: string, listing: Observed | null): Promise<Map<string, string[]> | null> {
    if (this.exec.ruleDigests) return this.exec.ruleDigests(table);
    return listing && new Map([...listing.chains].map(([name, c]) => [name, c.ruleTexts]));
  }

  /** Keeps the rules as the kernel holds them after a full apply, and the generation they are at. */
  private async snapshot(table: string): Promise<void> {
    const before = this.exec.generation ? await this.exec.generation() : undefined;
    let rules: Map<string, string[]> | null;
    if (this.exec.ruleDigests) rules = await this.exec.ruleDigests(table);
    else {
      const json = await this.exec.list(table, { terse: true });
      rules = await this.readRules(table, json === null ? null : parseListing(json, table));
    }
    const after = this.exec.generation ? await this.exec.generation() : undefined;
    this.rules = rules ?? undefined;
    if (before !== after || rules === null) {
      // Something else changed nf_tables between the apply and the read: the snapshot may hold it.
      this.applied = undefined;
      this.stats.generation = undefined;
    } else {
      this.stats.generation = after;
    }
  }
}

/**
 * The model with `changes` applied, and the element delta: only the sets named are copied and
 * compared, and only the elements named are checked (pure).
 */
function applyUpdates(t: ValidTable, changes: ElementUpdate[]): { next: ValidTable; deltas: SetDelta[] } {
  const sets = [...t.sets];
  const index = new Map(sets.map((s, i) => [s.name, i]));
  const regular = new Set(t.chains.filter((c) => !c.base).map((c) => c.name));
  const touched = new Map<string, { before: string[]; current: Map<string, string> }>();
  changes.forEach((c, i) => {
    const f = `changes[${i}]`;
    const isMap = 'map' in c;
    const name = isMap ? c.map : c.set;
    const at = index.get(name);
    const s = at === undefined ? undefined : sets[at]!;
    if (!s || s.kind !== (isMap ? 'map' : 'set')) {
      throw new NftError(
        'NFT_ERR_INVALID',
        `${f}.${isMap ? 'map' : 'set'}: ${JSON.stringify(name)} is not a ${isMap ? 'map' : 'set'} of the table`,
      );
    }
    const canon = (field: string, e: string) => {
      const r = elementResult(s.type, e, s.interval);
      if (!r.ok) {
        throw new NftError(
          'NFT_ERR_INVALID',
          `${field}: ${JSON.stringify(e)} is not a ${s.type} element: ${r.reason}`,
        );
      }
      return r.value;
    };
    // Elements of a map are `key : verdict`; they are keyed by `key`.
    const keyOf = (e: string) => (isMap ? e.slice(0, e.indexOf(' : ')) : e);
    let entry = touched.get(name);
    if (!entry) {
      entry = { before: s.elements, current: new Map(s.elements.map((e) => [keyOf(e), e])) };
      touched.set(name, entry);
    }
    const current = entry.current;
    (c.delete ?? []).forEach((e, j) => {
      current.delete(canon(`${f}.delete[${j}]`, e));
    });
    (c.add ?? []).forEach((e, j) => {
      if (typeof e === 'string') {
        const v = canon(`${f}.add[${j}]`, e);
        current.set(v, v);
        return;
      }
      const key = canon(`${f}.add[${j}].key`, e.key);
      const v = e.verdict;
      if ((v.kind === 'jump' || v.kind === 'goto') && !regular.has(v.chain)) {
        throw new NftError(
          'NFT_ERR_INVALID',
          `${f}.add[${j}].verdict.chain: ${JSON.stringify(v.chain)} is not a regular chain of the table`,
        );
      }
      current.set(key, `${key} : ${verdictText(v)}`);
    });
  });
  const deltas: SetDelta[] = [];
  // In the model's set order, like diffModels.
  for (const [name, { before, current }] of [...touched].sort(
    (a, b) => index.get(a[0])! - index.get(b[0])!,
  )) {
    const at = index.get(name)!;
    const elements = [...current.values()];
    sets[at] = { ...sets[at]!, elements };
    const had = new Set(before);
    const now = new Set(elements);
    const add = elements.filter((e) => !had.has(e));
    const del = before.filter((e) => !now.has(e));
    if (add.length || del.length) deltas.push({ set: name, add, delete: del });
  }
  return { next: { ...t, sets }, deltas };
}

/** A valid model back in the model's own shape (to hand to sync()). */
function toTable(t: ValidTable): Table {
  const verdictOf = (text: string): Verdict => {
    const [kind, chain] = text.split(' ');
    return kind === 'jump' || kind === 'goto' ? { kind, chain: chain! } : ({ kind } as Verdict);
  };
  return {
    name: t.name,
    chains: t.chains,
    sets: t.sets
      .filter((s) => s.kind === 'set')
      .map((s) => ({
        name: s.name,
        type: s.type,
        interval: s.interval,
        elements: s.elements,
        comment: s.comment,
      })),
    maps: t.sets
      .filter((s) => s.kind === 'map')
      .map((s) => ({
        name: s.name,
        type: s.type,
        interval: s.interval,
        comment: s.comment,
        elements: s.elements.map((e) => {
          const [key, v] = e.split(' : ');
          return { key: key!, verdict: verdictOf(v!) };
        }),
      })),
  };
}

/** The element changes from one valid model to another of the same structure (pure). */
export function diffModels(from: ValidTable, to: ValidTable): SetDelta[] {
  const old = new Map(from.sets.map((s) => [s.name, s.elements]));
  const out: SetDelta[] = [];
  for (const s of to.sets) {
    const before = old.get(s.name) ?? [];
    const had = new Set(before);
    const want = new Set(s.elements);
    const add = s.elements.filter((e) => !had.has(e));
    const del = before.filter((e) => !want.has(e));
    if (add.length || del.length) out.push({ set: s.name, add, delete: del });
  }
  return out;
}

/** Rules that differ from those the kernel held after the last full apply (pure). */
export function compareRules(applied: Map<string, string[]>, now: Map<string, string[]> | null): string[] {
  if (!now) return [];
  const out: string[] = [];
  for (const [chain, want] of applied) {
    const have = now.get(chain) ?? [];
    if (!have || have.length !== want.length) continue; // missing chains and counts: compare() reports them
    want.forEach((r, i) => {
      if (have[i] !== r) out.push(`chain ${chain} rule ${i + 1} differs from the one applied`);
    });
  }
  return out;
}

function describeDrift(model: ValidTable, observed: Observed | null, ruleDrift: string[]): string[] {
  const d = compare(model, observed);
  return [
    ...d.structural,
    ...ruleDrift,
    ...d.elements.map((e) => `${e.set}: ${e.add.length} elements missing, ${e.delete.length} extra`),
  ];
}
