// The table podnet owns, kept equal to a model: sync() applies the model in one transaction and
// drift() says how the kernel differs from the last model synced.
//
// Which transaction: a full flush-and-recreate (`nft -f -`) on the first sync of a process, when
// the kernel drifted structurally (a chain, set or map, or the content of a rule, differs from what
// podnet left) or when the structure changed in a way planPatch() does not express; a structure
// change while the generation is podnet's own is a patch (only the chains, sets and elements that
// differ, over netlink when the executor has the fast path and nfnl-patch.ts encodes the steps,
// else `nft -f -`; the rules of the chains written are read back after it); otherwise the element
// delta, over netlink when the executor has the fast path and no set involved has `interval`, else
// through `nft -f -`. Either way one kernel transaction.
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
import { type PatchPlan, planPatch, renderPlan } from './patch.js';
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
  /**
   * `full`: flushed and recreated; `patch`: only the chains, sets and elements that differ from
   * the last model (the kernel held it unchanged); `elements`: only set/map elements changed;
   * `none`: already equal.
   */
  mode: 'full' | 'patch' | 'elements' | 'none';
  /** The transaction applied, in nft syntax ('' for `none`; for `netlink` the equivalent text). */
  script: string;
  /** The executor that applied it: `nft -f -` or the netlink fast path (absent for `none`). */
  via?: 'nft' | 'netlink';
  /** How the kernel differed from what podnet last left there (repaired by this sync); empty: no drift. */
  repaired?: string[];
  /**
   * Where the sync's time went, in ms (present for a sync(), not for update()): `check` validating
   * the model and its structure key, `plan` reading the generation (and the table when it must) and
   * rendering, `apply` the kernel transaction, `readBack` reading the written rules back.
   */
  phases?: { check: number; plan: number; apply: number; readBack: number };
}

/** What the agent exports as metrics. */
export interface NftCounters {
  /** Full flush-and-recreate transactions applied. */
  fullApplies: number;
  /** Incremental transactions (chains, sets and elements that differ) applied (either executor). */
  patches: number;
  /** Of those, applied over netlink. */
  patchesNetlink: number;
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

/** Past this many chains written by a patch, reading the whole table back costs less than a dump per chain. */
const PATCH_READ_CHAINS_MAX = 32;

export class NftTable {
  private readonly exec: NftExecutor;
  /** Structure (everything but set contents) of the last model applied by this process. */
  private applied: string | undefined;
  private model: ValidTable | undefined;
  /**
   * Element state kept incrementally by update(): for each set it touched since the model was
   * last replaced, the set's elements by key (for a map, `key` → `key : verdict`), changed in
   * place once the kernel acknowledged. `this.model`'s element lists of the sets in `dirty` are
   * stale until current() writes them back (only sync(), drift() and a fallback need them).
   */
  private live = new Map<string, Map<string, string>>();
  private dirty = new Set<string>();
  /** Lookups over this.model's structure (sets by name with their position, regular chains). */
  private lookup: { model: ValidTable; sets: Map<string, number>; regular: Set<string> } | undefined;
  /** Each chain's rules as the kernel reported them right after the last full apply. */
  private rules: Map<string, string[]> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly stats: NftCounters = {
    fullApplies: 0,
    patches: 0,
    patchesNetlink: 0,
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
    return this.serial(async () => {
      const clock = phaseClock();
      const r = await this.syncNow(model, clock);
      return { ...r, phases: clock.done() };
    });
  }

  /** One sync or update at a time: each starts from what the one before left. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f, f);
    this.queue = run.catch(() => {});
    return run;
  }

  private async syncNow(model: Table, clock = phaseClock()): Promise<SyncResult> {
    const t = validate(model);
    const key = structureKey(t);
    clock.lap('check');
    const gen = this.exec.generation ? await this.exec.generation() : undefined;
    const prev = this.model && this.current();
    if (prev && this.applied === key && gen !== undefined && gen === this.stats.generation) {
      // Nothing in nf_tables changed since podnet's last transaction: the kernel holds the model.
      this.stats.readsSkipped++;
      const deltas = diffModels(prev, t);
      clock.lap('plan');
      return this.applyDelta(t, deltas, []);
    }
    if (prev && this.applied !== undefined && gen !== undefined && gen === this.stats.generation) {
      // The kernel holds `prev` exactly: change only what differs, in one transaction.
      const plan = planPatch(prev, t);
      if (plan !== null) return this.applyPatch(plan, t, key, clock);
    }
    const observed = await this.read(t.name);
    const drift = compare(t, observed);
    const ruleDrift =
      this.applied === key && this.rules && observed
        ? compareRules(this.rules, await this.readRules(t.name, observed))
        : [];
    const repaired = prev ? describeDrift(prev, observed, ruleDrift) : [];
    this.stats.generation = gen;
    if (this.applied === key && drift.structural.length === 0 && ruleDrift.length === 0) {
      clock.lap('plan');
      return this.applyDelta(t, drift.elements, repaired);
    }
    const script = renderFull(t, observed);
    clock.lap('plan');
    await this.exec.apply(script);
    clock.lap('apply');
    this.stats.fullApplies++;
    if (repaired.length) this.stats.driftRepairs++;
    this.setModel(t);
    this.applied = key;
    await this.snapshot(t.name);
    clock.lap('readBack');
    return { mode: 'full', script, via: 'nft', repaired };
  }

  /**
   * Applies planPatch()'s steps (over netlink when the executor takes them, else as `nft -f` text)
   * and takes `t` as the model; the rules of the chains it wrote are read back (the others are as
   * the last read left them: the kernel held the old model exactly).
   */
  private async applyPatch(
    plan: PatchPlan,
    t: ValidTable,
    key: string,
    clock: PhaseClock,
  ): Promise<SyncResult> {
    const script = renderPlan(plan);
    clock.lap('plan');
    let via: 'nft' | 'netlink' = 'nft';
    if (this.exec.applyPatch) {
      const gen = await this.guard(() => this.exec.applyPatch!(plan));
      if (gen !== null) {
        via = 'netlink';
        this.stats.patchesNetlink++;
      }
    }
    if (via === 'nft') await this.guard(() => this.exec.apply(script));
    clock.lap('apply');
    this.stats.patches++;
    this.setModel(t);
    this.applied = key;
    await this.snapshotPatched(t.name, plan);
    clock.lap('readBack');
    return { mode: 'patch', script, via, repaired: [] };
  }

  /**
   * After a patch: the rule digests of the chains it wrote, one dump each, into the ones kept; the
   * whole table's dump instead when there is no earlier read to start from or many chains changed.
   */
  private async snapshotPatched(
    table: string,
    chains: { written: string[]; deleteChains: string[] },
  ): Promise<void> {
    const read = this.exec.ruleDigests;
    if (!read || !this.exec.generation || !this.rules || chains.written.length > PATCH_READ_CHAINS_MAX)
      return this.snapshot(table);
    const before = await this.exec.generation();
    const rules = new Map(this.rules);
    for (const name of chains.deleteChains) rules.delete(name);
    for (const name of chains.written) {
      const got = await read.call(this.exec, table, name);
      if (got === null) return this.snapshot(table); // the table or chain went away: read it all
      const digests = got.get(name);
      if (digests) rules.set(name, digests);
      else rules.delete(name);
    }
    const after = await this.exec.generation();
    this.rules = rules;
    if (before !== after) {
      // Something else changed nf_tables during the reads: the next sync reads the table.
      this.applied = undefined;
      this.stats.generation = undefined;
    } else this.stats.generation = after;
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
      if (!this.model) throw new NftError('NFT_ERR_INVALID', 'update(): nothing has been synced yet');
      const look = this.lookups();
      const { deltas, staged } = stageUpdates(this.model, look, (name) => this.liveSet(name), changes);
      // Prefixes (interval sets) get the whole model's checks (overlaps) through sync().
      if (deltas.every((d) => !this.model!.sets[look.sets.get(d.set)!]!.interval)) {
        const gen = this.exec.generation ? await this.exec.generation() : undefined;
        if (this.applied !== undefined && gen !== undefined && gen === this.stats.generation) {
          this.stats.readsSkipped++;
          if (deltas.length === 0) return { mode: 'none', script: '' };
          const r = await this.applyDeltaOnly(this.model, deltas, []);
          // The kernel took it: the staged elements become the state (no copy of any set).
          for (const [name, changed] of staged) {
            const live = this.liveSet(name);
            for (const [k, v] of changed) {
              if (v === null) live.delete(k);
              else live.set(k, v);
            }
            this.dirty.add(name);
          }
          return r;
        }
      }
      // The slow way: the whole updated model through sync() (reads the table, repairs drift).
      const t = this.current();
      const sets = t.sets.map((s) => {
        const changed = staged.get(s.name);
        if (!changed) return s;
        const m = new Map(this.liveSet(s.name));
        for (const [k, v] of changed) {
          if (v === null) m.delete(k);
          else m.set(k, v);
        }
        return { ...s, elements: [...m.values()] };
      });
      return this.syncNow(toTable({ ...t, sets }));
    });
  }

  /** The elements of set `name` of this.model by key, built on first use. */
  private liveSet(name: string): Map<string, string> {
    let m = this.live.get(name);
    if (!m) {
      const s = this.model!.sets[this.lookups().sets.get(name)!]!;
      const keyOf = (e: string) => (s.kind === 'map' ? e.slice(0, e.indexOf(' : ')) : e);
      m = new Map(s.elements.map((e) => [keyOf(e), e]));
      this.live.set(name, m);
    }
    return m;
  }

  private lookups(): { model: ValidTable; sets: Map<string, number>; regular: Set<string> } {
    const t = this.model!;
    if (this.lookup?.model !== t) {
      this.lookup = {
        model: t,
        sets: new Map(t.sets.map((s, i) => [s.name, i])),
        regular: new Set(t.chains.filter((c) => !c.base).map((c) => c.name)),
      };
    }
    return this.lookup;
  }

  /** this.model with the element lists update() changed written back (the state sync() compares). */
  private current(): ValidTable {
    const t = this.model!;
    if (this.dirty.size === 0) return t;
    const sets = t.sets.map((s) =>
      this.dirty.has(s.name) ? { ...s, elements: [...this.liveSet(s.name).values()] } : s,
    );
    this.dirty.clear();
    this.live.clear();
    this.setModel({ ...t, sets });
    return this.model!;
  }

  /** Replaces the model remembered (update()'s incremental state belongs to the old one). */
  private setModel(t: ValidTable): void {
    if (this.model !== t) {
      this.live.clear();
      this.dirty.clear();
    }
    this.model = t;
  }

  /** How the kernel differs from the last model synced (empty lists: no drift). Always reads the table. */
  async drift(): Promise<Drift> {
    if (!this.model) throw new NftError('NFT_ERR_INVALID', 'drift(): nothing has been synced yet');
    const t = this.current();
    const observed = await this.read(t.name);
    const d = compare(t, observed);
    if (this.rules && observed)
      d.structural.push(...compareRules(this.rules, await this.readRules(t.name, observed)));
    return d;
  }

  /** Releases the executor's netlink socket. */
  close(): void {
    this.exec.close?.();
  }

  private async applyDelta(t: ValidTable, deltas: SetDelta[], repaired: string[]): Promise<SyncResult> {
    if (deltas.length === 0) {
      this.setModel(t);
      return { mode: 'none', script: '' };
    }
    const r = await this.applyDeltaOnly(t, deltas, repaired);
    this.setModel(t);
    return r;
  }

  /**
   * Applies an element delta of `t` (whose structure is the kernel's) without remembering a model:
   * the caller does once the kernel took it (a refusal leaves the old one).
   */
  private async applyDeltaOnly(t: ValidTable, deltas: SetDelta[], repaired: string[]): Promise<SyncResult> {
    const index = t === this.model ? this.lookups().sets : new Map(t.sets.map((s, i) => [s.name, i]));
    const setOf = (name: string) => t.sets[index.get(name)!]!;
    const script = renderElements(t, deltas, setOf);
    let via: 'nft' | 'netlink' = 'nft';
    if (this.exec.applyElements && deltas.every((d) => !setOf(d.set).interval)) {
      const changes: ElementChange[] = deltas.map((d) => {
        const s = setOf(d.set);
        return { set: d.set, kind: s.kind, type: s.type, add: d.add, delete: d.delete };
      });
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
 * What `changes` do to the current elements (`live(name)`: a set's elements by key, not changed
 * here): the element delta to send, and per set the keys staged (the element text, or null for a
 * deletion). Only the sets and elements named are looked at and checked, so the cost is the
 * change's, not the table's (pure but for reading `live`).
 */
function stageUpdates(
  t: ValidTable,
  look: { sets: Map<string, number>; regular: Set<string> },
  live: (name: string) => Map<string, string>,
  changes: ElementUpdate[],
): { deltas: SetDelta[]; staged: Map<string, Map<string, string | null>> } {
  const staged = new Map<string, Map<string, string | null>>();
  changes.forEach((c, i) => {
    const f = `changes[${i}]`;
    const isMap = 'map' in c;
    const name = isMap ? c.map : c.set;
    const at = look.sets.get(name);
    const s = at === undefined ? undefined : t.sets[at]!;
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
    let st = staged.get(name);
    if (!st) {
      st = new Map();
      staged.set(name, st);
    }
    const changed = st;
    (c.delete ?? []).forEach((e, j) => {
      changed.set(canon(`${f}.delete[${j}]`, e), null);
    });
    (c.add ?? []).forEach((e, j) => {
      if (typeof e === 'string') {
        const v = canon(`${f}.add[${j}]`, e);
        changed.set(v, v);
        return;
      }
      const key = canon(`${f}.add[${j}].key`, e.key);
      const v = e.verdict;
      if ((v.kind === 'jump' || v.kind === 'goto') && !look.regular.has(v.chain)) {
        throw new NftError(
          'NFT_ERR_INVALID',
          `${f}.add[${j}].verdict.chain: ${JSON.stringify(v.chain)} is not a regular chain of the table`,
        );
      }
      changed.set(key, `${key} : ${verdictText(v)}`);
    });
  });
  const deltas: SetDelta[] = [];
  // In the model's set order, like diffModels.
  for (const [name, changed] of [...staged].sort((a, b) => look.sets.get(a[0])! - look.sets.get(b[0])!)) {
    const have = live(name);
    const add: string[] = [];
    const del: string[] = [];
    for (const [k, v] of changed) {
      const old = have.get(k);
      if (old === v || (old === undefined && v === null)) continue;
      if (old !== undefined) del.push(old);
      if (v !== null) add.push(v);
    }
    if (add.length || del.length) deltas.push({ set: name, add, delete: del });
  }
  return { deltas, staged };
}

type PhaseClock = ReturnType<typeof phaseClock>;

/** Splits a sync's time into SyncResult's phases: lap(p) adds the time since the last lap to p. */
function phaseClock() {
  const phases = { check: 0, plan: 0, apply: 0, readBack: 0 };
  let last = performance.now();
  const round = (ms: number) => Math.round(ms * 10) / 10;
  return {
    lap(p: keyof typeof phases) {
      const t = performance.now();
      phases[p] += t - last;
      last = t;
    },
    /** The phases, the time since the last lap counted as `apply` (an element delta's transaction). */
    done() {
      this.lap('apply');
      return {
        check: round(phases.check),
        plan: round(phases.plan),
        apply: round(phases.apply),
        readBack: round(phases.readBack),
      };
    },
  };
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
