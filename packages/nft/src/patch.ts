// The incremental transaction between two valid models of the same table: only the chains, sets,
// maps and elements that differ, as steps (planPatch) that become one `nft -f -` script
// (renderPlan) or one nf_tables netlink batch (nfnl-patch.ts): one kernel transaction, whole or not
// at all. Chains whose rules changed are flushed and refilled; chains, sets and maps only in the
// new model are added, those only in the old one deleted; the elements of the others change by
// their difference. A change this does not express (a chain's hook, priority, policy or comment, a
// set's type, flags or comment) returns null: the caller applies the full program instead.
import { FAMILY, type Rule } from './model.js';
import { chainSpec, elementsLine, renderRule, setSpec, type ValidTable } from './render.js';

type ValidChain = ValidTable['chains'][number];

/** Whether a chain of the new model holds the same rules as the old one (by identity first). */
function sameRules(o: ValidChain, c: ValidChain): boolean {
  return (
    o.rules === c.rules ||
    (o.rules.length === c.rules.length && JSON.stringify(o.rules) === JSON.stringify(c.rules))
  );
}

type ValidSet = ValidTable['sets'][number];

/**
 * The incremental transaction as steps, in the order they must run: new chains and sets exist
 * before anything refers to them; map elements and rules referring to what goes away are gone
 * before it is deleted (a map going away is deleted before the chains its elements jump to).
 * renderPlan() writes it as `nft -f` text; nfnl.ts encodes it as a netlink batch.
 */
export interface PatchPlan {
  table: string;
  addChains: ValidChain[];
  addSets: ValidSet[];
  delElements: { set: ValidSet; elements: string[] }[];
  /** Chains emptied: the ones rewritten (refilled by `rules`) and the ones going away. */
  flush: string[];
  deleteSets: ValidSet[];
  deleteChains: string[];
  addElements: { set: ValidSet; elements: string[] }[];
  rules: { chain: string; rule: Rule }[];
  /** Chains whose rules the patch writes (added, or flushed and refilled). */
  written: string[];
}

/** A plan of no steps for `table` (planPatch fills it; tests build plans from it). */
export function emptyPlan(table: string): PatchPlan {
  return {
    table,
    addChains: [],
    addSets: [],
    delElements: [],
    flush: [],
    deleteSets: [],
    deleteChains: [],
    addElements: [],
    rules: [],
    written: [],
  };
}

/** The steps turning the kernel's `from` into `to` (pure); null when only a full apply will do. */
export function planPatch(from: ValidTable, to: ValidTable): PatchPlan | null {
  if (from.name !== to.name) return null;
  const oldChains = new Map(from.chains.map((c) => [c.name, c]));
  const newChains = new Set(to.chains.map((c) => c.name));
  const oldSets = new Map(from.sets.map((s) => [s.name, s]));
  const newSets = new Set(to.sets.map((s) => s.name));
  const plan = emptyPlan(to.name);
  for (const c of to.chains) {
    const o = oldChains.get(c.name);
    if (o && chainSpec(o) !== chainSpec(c)) return null;
    if (o && sameRules(o, c)) continue;
    if (o) plan.flush.push(c.name);
    else plan.addChains.push(c);
    plan.written.push(c.name);
    for (const rule of c.rules) plan.rules.push({ chain: c.name, rule });
  }
  for (const c of from.chains) {
    if (newChains.has(c.name)) continue;
    // Flushed first: a chain going away may jump to another going away.
    plan.flush.push(c.name);
    plan.deleteChains.push(c.name);
  }
  for (const s of to.sets) {
    const o = oldSets.get(s.name);
    if (o && (o.kind !== s.kind || setSpec(o) !== setSpec(s))) return null;
    if (!o) {
      plan.addSets.push(s);
      if (s.elements.length) plan.addElements.push({ set: s, elements: s.elements });
      continue;
    }
    if (o.elements === s.elements) continue;
    const had = new Set(o.elements);
    const want = new Set(s.elements);
    const del = o.elements.filter((e) => !want.has(e));
    const add = s.elements.filter((e) => !had.has(e));
    if (del.length) plan.delElements.push({ set: s, elements: del });
    if (add.length) plan.addElements.push({ set: s, elements: add });
  }
  for (const s of from.sets) if (!newSets.has(s.name)) plan.deleteSets.push(s);
  return plan;
}

/** The plan as an `nft -f` script ('' when it changes nothing). */
export function renderPlan(p: PatchPlan): string {
  const fam = `${FAMILY} ${p.table}`;
  const out = [
    ...p.addChains.map((c) => `add chain ${fam} ${c.name}${chainSpec(c)}`),
    ...p.addSets.map((s) => `add ${s.kind} ${fam} ${s.name} ${setSpec(s)}`),
    ...p.delElements.map((d) => elementsLine('delete', fam, d.set, d.elements)),
    ...p.flush.map((name) => `flush chain ${fam} ${name}`),
    ...p.deleteSets.map((s) => `delete ${s.kind} ${fam} ${s.name}`),
    ...p.deleteChains.map((name) => `delete chain ${fam} ${name}`),
    ...p.addElements.map((a) => elementsLine('add', fam, a.set, a.elements)),
    ...p.rules.map((r) => `add rule ${fam} ${r.chain} ${renderRule(r.rule)}`),
  ];
  return out.length ? `${out.join('\n')}\n` : '';
}

/** The script turning the kernel's `from` into `to` (pure); '' when equal, null when only a full apply will do. */
export function renderPatch(from: ValidTable, to: ValidTable): string | null {
  const plan = planPatch(from, to);
  return plan && renderPlan(plan);
}
