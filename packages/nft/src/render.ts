// The pure renderer: a validated model (and, when known, what the kernel holds) to the text of
// one `nft -f` transaction. Nothing here runs a program or reads the kernel.
//
// A full sync flushes and recreates everything podnet owns, knftables' way: `add table` (so the
// first run works) then `flush table`, set and map contents flushed and re-added, chains and sets
// the model no longer has (or whose spec changed) deleted, every rule added again. The kernel
// applies the file as one batch, so no packet sees half of it and a refused file changes nothing.
// An element sync adds and deletes only the elements that differ: no rule is rewritten.

import { elementResult, IFNAME_RE, typeParts, verdictText } from './elements.js';
import { NftError } from './errors.js';
import {
  type Action,
  type BaseType,
  type Chain,
  DEFAULT_TABLE,
  FAMILY,
  type KeyField,
  type Match,
  NAMED_PRIORITIES,
  type Rule,
  type SetType,
  type Table,
  type Verdict,
} from './model.js';
import type { Observed } from './observed.js';

/** Names: a letter, then letters, digits, `_` or `-`; at most 64 characters. */
export const NAME_RE = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
/**
 * Words nft's parser reads as keywords where a name is expected (nft 1.0 does not accept quoted
 * names there). Not exhaustive: a name nft still refuses fails the transaction as NFT_ERR_APPLY.
 */
// biome-ignore format: one list of words
const RESERVED = new Set([
  'fwd', 'dup', 'counter', 'comment', 'accept', 'drop', 'return', 'jump', 'goto', 'continue',
  'queue', 'reject', 'log', 'limit', 'meta', 'ct', 'ip', 'ip6', 'inet', 'tcp', 'udp', 'sctp',
  'table', 'chain', 'set', 'map', 'rule', 'element', 'flags', 'type', 'hook', 'priority',
  'policy', 'masquerade', 'snat', 'dnat', 'redirect', 'vmap', 'th', 'quota', 'flush', 'add',
  'delete', 'list', 'insert', 'replace', 'create', 'define', 'include', 'elements', 'interval',
]);
const COMMENT_MAX = 128;
const COMMENT_RE = /^[^"\\\n\r\t\u0000-\u001f]*$/;

/** A model checked and normalised: the table named, elements canonical and deduplicated. */
export interface ValidTable {
  name: string;
  chains: Chain[];
  sets: {
    name: string;
    kind: 'set' | 'map';
    type: SetType;
    interval: boolean;
    comment?: string;
    elements: string[];
  }[];
}

function bad(field: string, value: unknown, why: string): never {
  throw new NftError('NFT_ERR_INVALID', `${field}: ${JSON.stringify(value)} ${why}`);
}

function checkName(field: string, name: unknown): void {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    bad(field, name, 'is not a name (a letter, then letters, digits, _ or -; at most 64)');
  }
  if (RESERVED.has(name.toLowerCase())) bad(field, name, 'is an nft keyword');
}

function checkComment(field: string, c: unknown): void {
  if (c === undefined) return;
  if (typeof c !== 'string' || c.length > COMMENT_MAX || !COMMENT_RE.test(c)) {
    bad(
      field,
      c,
      `is not a comment (at most ${COMMENT_MAX} characters, no quotes, backslashes or control characters)`,
    );
  }
}

/** Overlapping prefixes in an interval set are refused by nft; say which two. */
function checkOverlap(field: string, type: SetType, elements: string[]): void {
  if (type !== 'ipv4_addr' && type !== 'ipv6_addr') return;
  const width = type === 'ipv4_addr' ? 32n : 128n;
  const spans = elements.map((e) => {
    const [a, l] = e.split('/');
    const start = startOf(type, a!);
    const len = l === undefined ? width : BigInt(l);
    return { e, start, end: start + (1n << (width - len)) - 1n };
  });
  spans.sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : 0));
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]!.start <= spans[i - 1]!.end) bad(field, spans[i]!.e, `overlaps ${spans[i - 1]!.e}`);
  }
}

/**
 * Canonical forms (of valid elements) and address values by element text, shared by every
 * validate() call (both pure functions of the text): a model rebuilt after a change looks most of its elements up. Emptied at
 * MEMO_LIMIT entries.
 */
const MEMO_LIMIT = 200_000;
const canonMemo = new Map<string, string>();
const startMemo = new Map<string, bigint>();

function startOf(type: SetType, addr: string): bigint {
  const key = `${type} ${addr}`;
  let v = startMemo.get(key);
  if (v === undefined) {
    const r = elementResult(type, addr, false);
    v = r.ok ? addrValue(r.value, type) : 0n;
    if (startMemo.size >= MEMO_LIMIT) startMemo.clear();
    startMemo.set(key, v);
  }
  return v;
}

function addrValue(text: string, type: SetType): bigint {
  if (type === 'ipv4_addr') return text.split('.').reduce((acc, o) => (acc << 8n) + BigInt(o), 0n);
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) + BigInt(`0x${g || '0'}`), 0n);
}

/**
 * A frozen `elements` array cannot change, so its elements are checked (canonical form, overlaps)
 * once per type and interval flag: a model rebuilt with the unchanged sets' arrays costs the
 * changed sets only, and the checked array is the same object each time (renderPatch() then skips
 * the set without comparing elements).
 */
const checkedElements = new WeakMap<
  readonly string[],
  { type: SetType; interval: boolean; elements: string[] }
>();

/** The sets, maps and chains a chain's rules refer to (field: relative to the chain). */
interface RuleRefs {
  sets: { field: string; set: string; kind: 'set' | 'map'; types: readonly SetType[] }[];
  verdicts: { field: string; verdict: Verdict }[];
}

/**
 * A frozen `rules` array is taken as unchanging (its rules too): its own checks run once, and only
 * what it refers to is checked against each table (the policy's chains are rebuilt only when they
 * change, so a model of thousands of rules costs the changed chains).
 */
const checkedRules = new WeakMap<readonly Rule[], RuleRefs>();

/** The checks of a chain's rules that need nothing but the rules (`at`: the chain's field). */
function checkRules(at: string, rules: readonly Rule[]): RuleRefs {
  const refs: RuleRefs = { sets: [], verdicts: [] };
  const addrType = (field: string): SetType[] => [field.startsWith('ip6') ? 'ipv6_addr' : 'ipv4_addr'];
  rules.forEach((r, j) => {
    const rf = `rules[${j}]`;
    const f = `${at}.${rf}`;
    checkComment(`${f}.comment`, r.comment);
    if (!r.match?.length && !r.action && !r.counter) bad(f, r, 'does nothing (no match, counter or action)');
    (r.match ?? []).forEach((m, k) => {
      const mf = `${f}.match[${k}]`;
      const ref = (field: string, set: string, kind: 'set' | 'map', types: SetType[]) =>
        refs.sets.push({ field: `${rf}.match[${k}].${field}`, set, kind, types });
      if (m.kind === 'addr') ref('set', m.set, 'set', addrType(m.field));
      if (m.kind === 'ifset') ref('set', m.set, 'set', ['ifname']);
      if (m.kind === 'concat') {
        if (!Array.isArray(m.fields) || m.fields.length < 2 || m.fields.length > 3)
          bad(`${mf}.fields`, m.fields, 'is not 2 or 3 fields');
        m.fields.forEach((x, n) => {
          if (!(x in FIELD_TYPE))
            bad(`${mf}.fields[${n}]`, x, `is not one of ${Object.keys(FIELD_TYPE).join(', ')}`);
        });
        ref('set', m.set, 'set', [m.fields.map((x) => FIELD_TYPE[x]).join(' . ') as SetType]);
      }
      if (m.kind === 'ifname') {
        const stem = m.name.endsWith('*') ? m.name.slice(0, -1) : m.name;
        if (!IFNAME_RE.test(stem))
          bad(`${mf}.name`, m.name, 'is not an interface name or prefix* (1-15 of A-Z a-z 0-9 _ . -)');
      }
      if (
        m.kind === 'l4' &&
        typeof m.dport === 'number' &&
        !(Number.isInteger(m.dport) && m.dport >= 1 && m.dport <= 65535)
      ) {
        bad(`${mf}.dport`, m.dport, 'is not a port 1..65535');
      }
      if (m.kind === 'l4' && typeof m.dport === 'object' && 'set' in m.dport)
        refs.sets.push({
          field: `${rf}.match[${k}].dport.set`,
          set: m.dport.set,
          kind: 'set',
          types: ['inet_service'],
        });
      if (m.kind === 'l4' && typeof m.dport === 'object' && 'range' in m.dport) {
        const [from, to] = m.dport.range;
        const port = (p: number) => Number.isInteger(p) && p >= 1 && p <= 65535;
        if (!port(from) || !port(to) || from > to)
          bad(`${mf}.dport.range`, m.dport.range, 'is not a port range from..to within 1..65535');
      }
      if (m.kind === 'ct' && m.states.length === 0) bad(`${mf}.states`, m.states, 'is empty');
    });
    const a = r.action;
    if (a && a.kind === 'vmap') {
      const t: SetType[] =
        a.field === 'th dport'
          ? ['inet_service']
          : a.field.endsWith('ifname')
            ? ['ifname']
            : addrType(a.field);
      refs.sets.push({ field: `${rf}.action.map`, set: a.map, kind: 'map', types: t });
    } else if (a && a.kind !== 'masquerade') {
      refs.verdicts.push({ field: `${rf}.action`, verdict: a });
    }
  });
  return refs;
}

/**
 * Checks the whole model; throws NFT_ERR_INVALID naming the field and the value. A set whose
 * `elements` array is frozen is checked on first sight only (see checkedElements), and so are the
 * rules of a frozen `rules` array (see checkedRules).
 */
export function validate(table: Table): ValidTable {
  const name = table.name ?? DEFAULT_TABLE;
  checkName('table.name', name);
  const sets: ValidTable['sets'] = [];
  const setTypes = new Map<string, { kind: 'set' | 'map'; type: SetType }>();
  const baseTypes: BaseType[] = ['ipv4_addr', 'ipv6_addr', 'inet_service', 'ifname'];
  const typeOk = (t: unknown) =>
    typeof t === 'string' &&
    t.split(' . ').length <= 3 &&
    t.split(' . ').every((p) => baseTypes.includes(p as BaseType));
  const addSet = (
    kind: 'set' | 'map',
    i: number,
    s: { name: string; type: SetType; interval?: boolean; comment?: string },
  ) => {
    const f = `${kind}s[${i}]`;
    checkName(`${f}.name`, s.name);
    if (setTypes.has(s.name)) bad(`${f}.name`, s.name, 'is used by another set or map');
    if (!typeOk(s.type)) {
      bad(
        `${f}.type`,
        s.type,
        `is not one of ${baseTypes.join(', ')} or a concatenation of 2-3 of them (a . b)`,
      );
    }
    if (s.interval && s.type !== 'ipv4_addr' && s.type !== 'ipv6_addr') {
      bad(`${f}.interval`, s.interval, `is only for address sets (type ${s.type})`);
    }
    checkComment(`${f}.comment`, s.comment);
    setTypes.set(s.name, { kind, type: s.type });
  };
  if (canonMemo.size >= MEMO_LIMIT) canonMemo.clear();
  const memo = new Map<string, string>();
  // The field's name is built only for an error (elements can be many).
  const canon = (field: () => string, type: SetType, interval: boolean, e: string) => {
    const key = `${interval ? 'i' : '-'} ${type} ${e}`;
    const hit = canonMemo.get(key);
    if (hit !== undefined) return hit;
    const r = elementResult(type, e, interval, memo);
    if (!r.ok) bad(field(), e, `is not a ${type} element: ${r.reason}`);
    canonMemo.set(key, r.value);
    return r.value;
  };
  (table.sets ?? []).forEach((s, i) => {
    addSet('set', i, s);
    const interval = s.interval ?? false;
    const hit = Object.isFrozen(s.elements) ? checkedElements.get(s.elements) : undefined;
    let elements: string[];
    if (hit && hit.type === s.type && hit.interval === interval) elements = hit.elements;
    else {
      elements = [
        ...new Set(s.elements.map((e, j) => canon(() => `sets[${i}].elements[${j}]`, s.type, interval, e))),
      ];
      if (interval) checkOverlap(`sets[${i}].elements`, s.type, elements);
      if (Object.isFrozen(s.elements)) checkedElements.set(s.elements, { type: s.type, interval, elements });
    }
    sets.push({ name: s.name, kind: 'set', type: s.type, interval, comment: s.comment, elements });
  });
  const chainNames = new Map<string, Chain>();
  table.chains.forEach((c, i) => {
    checkName(`chains[${i}].name`, c.name);
    if (chainNames.has(c.name)) bad(`chains[${i}].name`, c.name, 'is used by another chain');
    checkComment(`chains[${i}].comment`, c.comment);
    if (c.base) {
      const p = c.base.priority;
      if (
        typeof p === 'number' ? !Number.isInteger(p) || Math.abs(p) > 2 ** 31 - 1 : !(p in NAMED_PRIORITIES)
      ) {
        bad(
          `chains[${i}].base.priority`,
          p,
          `is not an integer or one of ${Object.keys(NAMED_PRIORITIES).join(', ')}`,
        );
      }
    }
    chainNames.set(c.name, c);
  });
  const checkVerdict = (field: () => string, v: Verdict) => {
    if (v.kind === 'jump' || v.kind === 'goto') {
      const target = chainNames.get(v.chain);
      if (!target) bad(`${field()}.chain`, v.chain, 'is not a chain of the table');
      if (target.base)
        bad(`${field()}.chain`, v.chain, 'is a base chain (jump and goto need a regular chain)');
    }
  };
  (table.maps ?? []).forEach((m, i) => {
    addSet('map', i, m);
    const interval = m.interval ?? false;
    const byKey = new Map<string, string>();
    m.elements.forEach((el, j) => {
      const key = canon(() => `maps[${i}].elements[${j}].key`, m.type, interval, el.key);
      checkVerdict(() => `maps[${i}].elements[${j}].verdict`, el.verdict);
      if (byKey.has(key)) bad(`maps[${i}].elements[${j}].key`, el.key, 'appears twice');
      byKey.set(key, verdictText(el.verdict));
    });
    if (interval) checkOverlap(`maps[${i}].elements`, m.type, [...byKey.keys()]);
    sets.push({
      name: m.name,
      kind: 'map',
      type: m.type,
      interval,
      comment: m.comment,
      elements: [...byKey].map(([k, v]) => `${k} : ${v}`),
    });
  });
  const wantSet = (field: () => string, set: string, kind: 'set' | 'map', types: readonly SetType[]) => {
    const s = setTypes.get(set);
    if (!s || s.kind !== kind) bad(field(), set, `is not a ${kind} of the table`);
    if (!types.includes(s.type)) bad(field(), set, `is a ${kind} of ${s.type}, not ${types.join(' or ')}`);
  };
  table.chains.forEach((c, i) => {
    const frozen = Object.isFrozen(c.rules);
    let refs = frozen ? checkedRules.get(c.rules) : undefined;
    if (!refs) {
      refs = checkRules(`chains[${i}]`, c.rules);
      if (frozen) checkedRules.set(c.rules, refs);
    }
    // What the rules refer to is checked against this table every time (the field built on error only).
    for (const r of refs.sets) wantSet(() => `chains[${i}].${r.field}`, r.set, r.kind, r.types);
    for (const r of refs.verdicts) checkVerdict(() => `chains[${i}].${r.field}`, r.verdict);
  });
  return { name, chains: table.chains, sets };
}

const q = (s: string) => `"${s}"`;

/** The key type of each field a match or a map can key on. */
const FIELD_TYPE: Record<KeyField, BaseType> = {
  'ip saddr': 'ipv4_addr',
  'ip daddr': 'ipv4_addr',
  'ip6 saddr': 'ipv6_addr',
  'ip6 daddr': 'ipv6_addr',
  iifname: 'ifname',
  oifname: 'ifname',
  'th dport': 'inet_service',
};

function renderMatch(m: Match): string {
  const not = 'negate' in m && m.negate ? '!= ' : '';
  switch (m.kind) {
    case 'addr':
      return `${m.field} ${not}@${m.set}`;
    case 'ifname':
      return `${m.field} ${not}${q(m.name)}`;
    case 'ifset':
      return `${m.field} ${not}@${m.set}`;
    case 'concat':
      return `${m.fields.join(' . ')} ${not}@${m.set}`;
    case 'l4':
      if (m.dport === undefined) return `meta l4proto ${m.proto}`;
      if (typeof m.dport === 'number') return `${m.proto} dport ${m.dport}`;
      if ('range' in m.dport) return `${m.proto} dport ${m.dport.range[0]}-${m.dport.range[1]}`;
      return `${m.proto} dport @${m.dport.set}`;
    case 'ct':
      return `ct state ${m.states.join(',')}`;
  }
}

function renderAction(a: Action): string {
  if (a.kind === 'masquerade') return a.fullyRandom ? 'masquerade fully-random' : 'masquerade';
  if (a.kind === 'vmap') return `${a.field} vmap @${a.map}`;
  return verdictText(a);
}

/** One rule's statement text (what follows `add rule inet <table> <chain>`). */
export function renderRule(r: Rule): string {
  const parts = (r.match ?? []).map(renderMatch);
  if (r.counter) parts.push('counter');
  if (r.action) parts.push(renderAction(r.action));
  if (r.comment !== undefined) parts.push(`comment ${q(r.comment)}`);
  return parts.join(' ');
}

export function chainSpec(c: Chain): string {
  const parts: string[] = [];
  if (c.base) {
    parts.push(`type ${c.base.type} hook ${c.base.hook} priority ${c.base.priority};`);
    parts.push(`policy ${c.base.policy ?? 'accept'};`);
  }
  if (c.comment !== undefined) parts.push(`comment ${q(c.comment)};`);
  return parts.length ? ` { ${parts.join(' ')} }` : '';
}

function elementText(type: SetType, e: string): string {
  if (type === 'ifname') return q(e);
  if (!type.includes(' . ')) return e;
  const types = typeParts(type);
  // The usual shape (only the first field an ifname) without splitting the element.
  if (types[0] === 'ifname' && !types.includes('ifname', 1)) return `"${e.replace(' . ', '" . ')}`;
  return e
    .split(' . ')
    .map((p, i) => (types[i] === 'ifname' ? q(p) : p))
    .join(' . ');
}

function mapElementText(type: SetType, e: string): string {
  const [k, v] = e.split(' : ');
  return `${elementText(type, k!)} : ${v}`;
}

export function elementsLine(
  op: 'add' | 'delete',
  fam: string,
  s: ValidTable['sets'][number],
  elems: string[],
) {
  const text = elems.map((e) => (s.kind === 'map' ? mapElementText(s.type, e) : elementText(s.type, e)));
  return `${op} element ${fam} ${s.name} { ${text.join(', ')} }`;
}

export function setSpec(s: ValidTable['sets'][number]): string {
  const parts = [s.kind === 'map' ? `type ${s.type} : verdict;` : `type ${s.type};`];
  if (s.interval) parts.push('flags interval;');
  if (s.comment !== undefined) parts.push(`comment ${q(s.comment)};`);
  return `{ ${parts.join(' ')} }`;
}

const priorityNumber = (p: number | string) =>
  typeof p === 'number' ? p : NAMED_PRIORITIES[p as keyof typeof NAMED_PRIORITIES];

/** Whether the kernel's chain has the model's spec (else it is deleted and added again). */
function sameChain(c: Chain, o: Observed['chains'] extends Map<string, infer V> ? V : never): boolean {
  // nft's JSON listing leaves chain comments out (1.0.6 does): a chain listed without one is not
  // drift for that (the rules are compared one by one elsewhere).
  if (o.comment !== undefined && c.comment !== o.comment) return false;
  if (!c.base || !o.base) return !c.base && !o.base;
  return (
    c.base.type === o.base.type &&
    c.base.hook === o.base.hook &&
    priorityNumber(c.base.priority) === o.base.priority &&
    (c.base.policy ?? 'accept') === o.base.policy
  );
}

function sameSet(
  s: ValidTable['sets'][number],
  o: Observed['sets'] extends Map<string, infer V> ? V : never,
) {
  return s.kind === o.kind && s.type === o.type && s.interval === o.interval && s.comment === o.comment;
}

/**
 * The full transaction: everything podnet owns flushed and recreated. `observed` (what the kernel
 * holds now, if known) names the chains and sets to delete; without it nothing is deleted.
 */
export function renderFull(t: ValidTable, observed?: Observed | null): string {
  const fam = `${FAMILY} ${t.name}`;
  const out = [`add table ${fam}`, `flush table ${fam}`];
  const wantChains = new Map(t.chains.map((c) => [c.name, c]));
  const wantSets = new Map(t.sets.map((s) => [s.name, s]));
  if (observed) {
    // Contents first (a map element may jump to a chain deleted below), then stale objects.
    for (const [name, o] of observed.sets) {
      const s = wantSets.get(name);
      if (s && sameSet(s, o)) out.push(`flush ${o.kind} ${fam} ${name}`);
    }
    for (const [name, o] of observed.sets) {
      const s = wantSets.get(name);
      if (!s || !sameSet(s, o)) out.push(`delete ${o.kind} ${fam} ${name}`);
    }
    for (const [name, o] of observed.chains) {
      const c = wantChains.get(name);
      if (!c || !sameChain(c, o)) out.push(`delete chain ${fam} ${name}`);
    }
  }
  for (const c of t.chains) out.push(`add chain ${fam} ${c.name}${chainSpec(c)}`);
  for (const s of t.sets) {
    out.push(`add ${s.kind} ${fam} ${s.name} ${setSpec(s)}`);
    if (!observed) out.push(`flush ${s.kind} ${fam} ${s.name}`);
    if (s.elements.length) out.push(elementsLine('add', fam, s, s.elements));
  }
  for (const c of t.chains) for (const r of c.rules) out.push(`add rule ${fam} ${c.name} ${renderRule(r)}`);
  return `${out.join('\n')}\n`;
}

/** Ids of the frozen rules arrays seen (see structureKey). */
const rulesIds = new WeakMap<readonly Rule[], number>();
let nextRulesId = 1;

/** The structure of the model without set contents: equal keys need no rule rewrite. */
export function structureKey(t: ValidTable): string {
  // The model's own structure as JSON (the chains with their rules, the sets' specs): equal JSON,
  // equal rendering. Cheaper than rendering the text for large tables. A frozen rules array (taken
  // as unchanging, see checkedRules) stands as an id of that array, so a table of thousands of
  // policy rules costs a line per chain.
  const chains = t.chains.map((c) => {
    if (!Object.isFrozen(c.rules)) return c;
    let id = rulesIds.get(c.rules);
    if (id === undefined) {
      id = nextRulesId++;
      rulesIds.set(c.rules, id);
    }
    return { ...c, rules: `#${id}` };
  });
  return JSON.stringify([
    t.name,
    chains,
    t.sets.map((s) => [s.name, s.kind, s.type, s.interval, s.comment ?? null]),
  ]);
}

export interface SetDelta {
  set: string;
  add: string[];
  delete: string[];
}

export interface Drift {
  /** Differences in chains, rule counts, sets' specs: repaired by a full sync. */
  structural: string[];
  /** Sets whose elements differ: repaired by an element sync. */
  elements: SetDelta[];
}

/** Compares the model with what the kernel holds (pure). */
export function compare(t: ValidTable, observed: Observed | null): Drift {
  if (!observed) return { structural: [`table ${FAMILY} ${t.name} is missing`], elements: [] };
  const structural: string[] = [];
  const elements: SetDelta[] = [];
  for (const c of t.chains) {
    const o = observed.chains.get(c.name);
    if (!o) structural.push(`chain ${c.name} is missing`);
    else {
      if (!sameChain(c, o))
        structural.push(`chain ${c.name} has a different type, hook, priority, policy or comment`);
      if (o.rules !== c.rules.length)
        structural.push(`chain ${c.name} has ${o.rules} rules, want ${c.rules.length}`);
    }
  }
  for (const name of observed.chains.keys()) {
    if (!t.chains.some((c) => c.name === name)) structural.push(`chain ${name} is not in the model`);
  }
  for (const s of t.sets) {
    const o = observed.sets.get(s.name);
    if (!o) structural.push(`${s.kind} ${s.name} is missing`);
    else if (!sameSet(s, o)) structural.push(`${s.kind} ${s.name} has a different type, flags or comment`);
    else {
      const have = new Set(o.elements);
      const want = new Set(s.elements);
      const add = s.elements.filter((e) => !have.has(e));
      const del = o.elements.filter((e) => !want.has(e));
      if (add.length || del.length) elements.push({ set: s.name, add, delete: del });
    }
  }
  for (const [name, o] of observed.sets) {
    if (!t.sets.some((s) => s.name === name)) structural.push(`${o.kind} ${name} is not in the model`);
  }
  return { structural, elements };
}

/** The element-only transaction for `deltas` (deletes first, so a map key can change verdict). */
export function renderElements(
  t: ValidTable,
  deltas: SetDelta[],
  setOf: (name: string) => ValidTable['sets'][number] = (name) => t.sets.find((x) => x.name === name)!,
): string {
  const fam = `${FAMILY} ${t.name}`;
  const out: string[] = [];
  for (const d of deltas) {
    const s = setOf(d.set);
    if (d.delete.length) out.push(elementsLine('delete', fam, s, d.delete));
  }
  for (const d of deltas) {
    const s = setOf(d.set);
    if (d.add.length) out.push(elementsLine('add', fam, s, d.add));
  }
  return out.length ? `${out.join('\n')}\n` : '';
}
