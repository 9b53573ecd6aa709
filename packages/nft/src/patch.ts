// The incremental transaction between two valid models of the same table: only the chains, sets,
// maps and elements that differ, as one `nft -f -` script (so one kernel transaction, whole or not
// at all). Chains whose rules changed are flushed and refilled; chains, sets and maps only in the
// new model are added, those only in the old one deleted; the elements of the others change by
// their difference. A change this does not express (a chain's hook, priority, policy or comment, a
// set's type, flags or comment) returns null: the caller applies the full program instead.
import { FAMILY } from './model.js';
import { chainSpec, elementsLine, renderRule, setSpec, type ValidTable } from './render.js';

type ValidChain = ValidTable['chains'][number];

/** Whether a chain of the new model holds the same rules as the old one (by identity first). */
function sameRules(o: ValidChain, c: ValidChain): boolean {
  return (
    o.rules === c.rules ||
    (o.rules.length === c.rules.length && JSON.stringify(o.rules) === JSON.stringify(c.rules))
  );
}

/** The chains renderPatch(from, to) writes: added or flushed and refilled, and deleted. */
export function patchedChains(from: ValidTable, to: ValidTable): { written: string[]; deleted: string[] } {
  const old = new Map(from.chains.map((c) => [c.name, c]));
  const kept = new Set(to.chains.map((c) => c.name));
  const written: string[] = [];
  for (const c of to.chains) {
    const o = old.get(c.name);
    if (!o || !sameRules(o, c)) written.push(c.name);
  }
  return { written, deleted: from.chains.filter((c) => !kept.has(c.name)).map((c) => c.name) };
}

/** The script turning the kernel's `from` into `to` (pure); '' when equal, null when only a full apply will do. */
export function renderPatch(from: ValidTable, to: ValidTable): string | null {
  if (from.name !== to.name) return null;
  const fam = `${FAMILY} ${to.name}`;
  const oldChains = new Map(from.chains.map((c) => [c.name, c]));
  const newChains = new Set(to.chains.map((c) => c.name));
  const oldSets = new Map(from.sets.map((s) => [s.name, s]));
  const newSets = new Set(to.sets.map((s) => s.name));

  const addChains: string[] = [];
  const flush: string[] = [];
  const rules: string[] = [];
  for (const c of to.chains) {
    const o = oldChains.get(c.name);
    if (o && chainSpec(o) !== chainSpec(c)) return null;
    if (o && sameRules(o, c)) continue;
    if (o) flush.push(`flush chain ${fam} ${c.name}`);
    else addChains.push(`add chain ${fam} ${c.name}${chainSpec(c)}`);
    for (const r of c.rules) rules.push(`add rule ${fam} ${c.name} ${renderRule(r)}`);
  }
  const deleteChains: string[] = [];
  for (const c of from.chains) {
    if (newChains.has(c.name)) continue;
    // Flushed first: a chain going away may jump to another going away.
    flush.push(`flush chain ${fam} ${c.name}`);
    deleteChains.push(`delete chain ${fam} ${c.name}`);
  }

  const addSets: string[] = [];
  const delElements: string[] = [];
  const addElements: string[] = [];
  for (const s of to.sets) {
    const o = oldSets.get(s.name);
    if (o && (o.kind !== s.kind || setSpec(o) !== setSpec(s))) return null;
    if (!o) {
      addSets.push(`add ${s.kind} ${fam} ${s.name} ${setSpec(s)}`);
      if (s.elements.length) addElements.push(elementsLine('add', fam, s, s.elements));
      continue;
    }
    if (o.elements === s.elements) continue;
    const had = new Set(o.elements);
    const want = new Set(s.elements);
    const del = o.elements.filter((e) => !want.has(e));
    const add = s.elements.filter((e) => !had.has(e));
    if (del.length) delElements.push(elementsLine('delete', fam, s, del));
    if (add.length) addElements.push(elementsLine('add', fam, s, add));
  }
  const deleteSets: string[] = [];
  for (const s of from.sets) if (!newSets.has(s.name)) deleteSets.push(`delete ${s.kind} ${fam} ${s.name}`);

  // New chains and sets exist before anything refers to them; map elements and rules referring to
  // what goes away are gone before it is deleted (a map going away is deleted before the chains
  // its elements jump to).
  const out = [
    ...addChains,
    ...addSets,
    ...delElements,
    ...flush,
    ...deleteSets,
    ...deleteChains,
    ...addElements,
    ...rules,
  ];
  return out.length ? `${out.join('\n')}\n` : '';
}
