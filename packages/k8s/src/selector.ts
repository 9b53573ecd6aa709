// Label selectors as Kubernetes writes them (`zone=a,rack!=r1,tier in (x,y),!draining`), plus `all()`
// and the empty string, both of which select everything. Used by IPPool.nodeSelector and the
// BGPPeer node/peer selectors. Pure: parse once, match many times.

export type Requirement =
  | { type: 'equals'; key: string; value: string }
  | { type: 'notEquals'; key: string; value: string }
  | { type: 'in'; key: string; values: string[] }
  | { type: 'notIn'; key: string; values: string[] }
  | { type: 'exists'; key: string }
  | { type: 'notExists'; key: string };

export interface Selector {
  source: string;
  requirements: Requirement[];
}

const KEY_RE = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE_RE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

export class SelectorError extends Error {
  readonly code = 'K8S_ERR_SELECTOR';
  constructor(
    readonly selector: string,
    detail: string,
  ) {
    super(`invalid selector ${JSON.stringify(selector)}: ${detail}`);
    this.name = 'SelectorError';
  }
}

/** Splits on commas that are not inside parentheses. */
function splitTerms(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((t) => t.trim());
}

function checkKey(source: string, key: string): string {
  if (!KEY_RE.test(key)) throw new SelectorError(source, `bad label key ${JSON.stringify(key)}`);
  return key;
}

function checkValue(source: string, value: string): string {
  if (value.length > 63 || !VALUE_RE.test(value))
    throw new SelectorError(source, `bad label value ${JSON.stringify(value)}`);
  return value;
}

/** Parses a selector; throws SelectorError naming the bad part. */
export function parseSelector(source: string): Selector {
  const s = source.trim();
  if (s === '' || s === 'all()') return { source, requirements: [] };
  const requirements: Requirement[] = [];
  for (const term of splitTerms(s)) {
    if (term === '') throw new SelectorError(source, 'empty term');
    const notExists = /^!\s*(\S+)$/.exec(term);
    const equality = /^(\S+?)\s*(==|!=|=)\s*(\S*)$/.exec(term);
    const set = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(term);
    if (notExists) {
      requirements.push({ type: 'notExists', key: checkKey(source, notExists[1]!) });
    } else if (equality) {
      const key = checkKey(source, equality[1]!);
      const value = checkValue(source, equality[3]!);
      requirements.push(
        equality[2] === '!=' ? { type: 'notEquals', key, value } : { type: 'equals', key, value },
      );
    } else if (set) {
      const key = checkKey(source, set[1]!);
      const values = set[3]!.split(',').map((v) => checkValue(source, v.trim()));
      requirements.push(set[2] === 'in' ? { type: 'in', key, values } : { type: 'notIn', key, values });
    } else if (/^\S+$/.test(term)) {
      requirements.push({ type: 'exists', key: checkKey(source, term) });
    } else {
      throw new SelectorError(source, `cannot parse term ${JSON.stringify(term)}`);
    }
  }
  return { source, requirements };
}

export function matchesSelector(sel: Selector, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return sel.requirements.every((r): boolean => {
    const has = Object.hasOwn(l, r.key);
    const v = l[r.key];
    switch (r.type) {
      case 'equals':
        return has && v === r.value;
      case 'notEquals':
        return !has || v !== r.value;
      case 'in':
        return has && r.values.includes(v!);
      case 'notIn':
        return !has || !r.values.includes(v!);
      case 'exists':
        return has;
      case 'notExists':
        return !has;
      default:
        return false;
    }
  });
}

/** Whether `text` parses as a selector (for schema validation). */
export function selectorProblem(text: string): string | undefined {
  try {
    parseSelector(text);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
