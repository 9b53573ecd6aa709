// Label and field selectors, parsed once per request into matchers.
// Label selector grammar (k8s.io/apimachinery labels): comma-separated requirements
//   key | !key | key=v | key==v | key!=v | key in (a,b) | key notin (a,b) | key>n | key<n
// Field selectors: comma-separated `path=v`, `path==v`, `path!=v` over a per-resource set of fields.
import { errors } from './errors.js';

export type LabelRequirement =
  | { type: 'exists'; key: string }
  | { type: 'notExists'; key: string }
  | { type: 'equals'; key: string; value: string }
  | { type: 'notEquals'; key: string; value: string }
  | { type: 'in'; key: string; values: string[] }
  | { type: 'notIn'; key: string; values: string[] }
  | { type: 'gt'; key: string; value: number }
  | { type: 'lt'; key: string; value: number };

export type Labels = Readonly<Record<string, string>> | undefined;

/** Splits on commas that are not inside parentheses. */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}

const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

function bad(selector: string, why: string): never {
  throw errors.badRequest(`unable to parse requirement: ${why} (labelSelector "${selector}")`);
}

function checkKey(sel: string, key: string): string {
  if (!KEY.test(key) || key.length > 316) bad(sel, `invalid label key "${key}"`);
  return key;
}

function checkValue(sel: string, value: string): string {
  if (!VALUE.test(value) || value.length > 63) bad(sel, `invalid label value "${value}"`);
  return value;
}

export function parseLabelSelector(selector: string): LabelRequirement[] {
  const out: LabelRequirement[] = [];
  if (selector.trim() === '') return out;
  for (const raw of splitTopLevel(selector)) {
    const part = raw.trim();
    if (part === '') bad(selector, 'empty requirement');
    const setOp = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(part);
    const cmp = setOp ? null : /^([^!=<>\s]+)\s*(==|!=|=|>|<)\s*(\S*)$/.exec(part);
    const not = setOp || cmp ? null : /^!\s*(\S+)$/.exec(part);
    if (setOp) {
      const key = checkKey(selector, setOp[1]!);
      const values = setOp[3]!
        .split(',')
        .map((v) => v.trim())
        .map((v) => checkValue(selector, v));
      out.push(setOp[2] === 'in' ? { type: 'in', key, values } : { type: 'notIn', key, values });
    } else if (cmp) {
      const key = checkKey(selector, cmp[1]!);
      const op = cmp[2]!;
      const v = cmp[3]!;
      if (op === '>' || op === '<') {
        if (!/^-?\d+$/.test(v))
          bad(selector, `for 'gt', 'lt' operators, exactly one integer value is required`);
        const n = Number(v);
        out.push(op === '>' ? { type: 'gt', key, value: n } : { type: 'lt', key, value: n });
      } else {
        const value = checkValue(selector, v);
        out.push(op === '!=' ? { type: 'notEquals', key, value } : { type: 'equals', key, value });
      }
    } else if (not) {
      out.push({ type: 'notExists', key: checkKey(selector, not[1]!) });
    } else if (/^\S+$/.test(part)) {
      out.push({ type: 'exists', key: checkKey(selector, part) });
    } else {
      bad(selector, `"${part}" is not a valid requirement`);
    }
  }
  return out;
}

export function matchesLabels(reqs: readonly LabelRequirement[], labels: Labels): boolean {
  for (const r of reqs) {
    const has = labels !== undefined && Object.hasOwn(labels, r.key);
    const v = has ? labels![r.key] : undefined;
    switch (r.type) {
      case 'exists':
        if (!has) return false;
        break;
      case 'notExists':
        if (has) return false;
        break;
      case 'equals':
        if (v !== r.value) return false;
        break;
      case 'notEquals':
        if (v === r.value) return false;
        break;
      case 'in':
        if (v === undefined || !r.values.includes(v)) return false;
        break;
      case 'notIn':
        if (v !== undefined && r.values.includes(v)) return false;
        break;
      case 'gt':
      case 'lt': {
        if (v === undefined || !/^-?\d+$/.test(v)) return false;
        const n = Number(v);
        if (r.type === 'gt' ? !(n > r.value) : !(n < r.value)) return false;
        break;
      }
    }
  }
  return true;
}

export type FieldRequirement = { type: 'equals' | 'notEquals'; field: string; value: string };

/** Parses a field selector, accepting only fields in `supported` (as kube-apiserver does). */
export function parseFieldSelector(selector: string, supported: ReadonlySet<string>): FieldRequirement[] {
  const out: FieldRequirement[] = [];
  if (selector.trim() === '') return out;
  for (const raw of selector.split(',')) {
    const part = raw.trim();
    const m = /^([^!=\s]+)\s*(==|!=|=)\s*(.*)$/.exec(part);
    if (!m) throw errors.badRequest(`invalid selector: '${selector}'; can't understand '${part}'`);
    const field = m[1]!;
    if (!supported.has(field)) throw errors.badRequest(`field label not supported: ${field}`);
    out.push({ type: m[2] === '!=' ? 'notEquals' : 'equals', field, value: m[3]!.trim() });
  }
  return out;
}

/** Reads a dotted path (`spec.nodeName`) out of an object, as the string a field selector compares. */
export function fieldValue(obj: unknown, path: string): string {
  let cur: unknown = obj;
  for (const seg of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return '';
    cur = (cur as Record<string, unknown>)[seg];
  }
  if (cur === undefined || cur === null) return '';
  return typeof cur === 'string' ? cur : String(cur);
}

export function matchesFields(reqs: readonly FieldRequirement[], obj: unknown): boolean {
  for (const r of reqs) {
    const v = fieldValue(obj, r.field);
    if (r.type === 'equals' ? v !== r.value : v === r.value) return false;
  }
  return true;
}
