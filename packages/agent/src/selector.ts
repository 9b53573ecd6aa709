// Label selectors as used by IPPool.nodeSelector and BGPPeer.nodeSelector/peerSelector.
// Accepts the Calico-style expression language (`all()`, `has(k)`, `!has(k)`, `k == 'v'`,
// `k != 'v'`, `k in {'a','b'}`, `k not in {...}`, `&&`, `||`, `!`, parentheses) and the Kubernetes
// set-based form (`k=v,k2!=v2,k3`). An empty selector matches everything.
import { AgentError } from './errors.js';

export type Labels = Record<string, string>;
export type Selector = (labels: Labels) => boolean;

const cache = new Map<string, Selector>();

type Tok = { t: 'id' | 'str' | 'op'; v: string };

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const two = src.slice(i, i + 2);
    if (['==', '!=', '&&', '||'].includes(two)) {
      out.push({ t: 'op', v: two });
      i += 2;
      continue;
    }
    if ('()!{},'.includes(c)) {
      out.push({ t: 'op', v: c });
      i++;
      continue;
    }
    if (c === '"' || c === "'") {
      const end = src.indexOf(c, i + 1);
      if (end < 0) throw new Error(`unterminated string at offset ${i}`);
      out.push({ t: 'str', v: src.slice(i + 1, end) });
      i = end + 1;
      continue;
    }
    const m = /^[A-Za-z0-9_./-]+/.exec(src.slice(i));
    if (!m) throw new Error(`unexpected ${JSON.stringify(c)} at offset ${i}`);
    out.push({ t: 'id', v: m[0] });
    i += m[0].length;
  }
  return out;
}

function parseExpression(src: string): Selector {
  const toks = tokenize(src);
  let p = 0;
  const peek = () => toks[p];
  const take = (v?: string) => {
    const t = toks[p];
    if (!t || (v !== undefined && t.v !== v)) throw new Error(`expected ${v ?? 'a token'} at token ${p + 1}`);
    p++;
    return t;
  };
  const valueSet = (): Set<string> => {
    take('{');
    const vals = new Set<string>();
    while (peek()?.v !== '}') {
      vals.add(take().v);
      if (peek()?.v === ',') take(',');
    }
    take('}');
    return vals;
  };
  const term = (): Selector => {
    const t = peek();
    if (!t) throw new Error('unexpected end of selector');
    if (t.v === '!') {
      take();
      const inner = term();
      return (l) => !inner(l);
    }
    if (t.v === '(') {
      take();
      const inner = or();
      take(')');
      return inner;
    }
    const key = take().v;
    if (key === 'all' && peek()?.v === '(') {
      take('(');
      take(')');
      return () => true;
    }
    if (key === 'has' && peek()?.v === '(') {
      take('(');
      const k = take().v;
      take(')');
      return (l) => k in l;
    }
    const op = take();
    if (op.v === '==') {
      const v = take().v;
      return (l) => l[key] === v;
    }
    if (op.v === '!=') {
      const v = take().v;
      return (l) => l[key] !== v;
    }
    if (op.v === 'in') {
      const vals = valueSet();
      return (l) => l[key] !== undefined && vals.has(l[key]);
    }
    if (op.v === 'not' && peek()?.v === 'in') {
      take('in');
      const vals = valueSet();
      return (l) => l[key] === undefined || !vals.has(l[key]);
    }
    throw new Error(`unknown operator ${JSON.stringify(op.v)} after ${key}`);
  };
  const and = (): Selector => {
    let left = term();
    while (peek()?.v === '&&') {
      take();
      const right = term();
      const l0 = left;
      left = (l) => l0(l) && right(l);
    }
    return left;
  };
  const or = (): Selector => {
    let left = and();
    while (peek()?.v === '||') {
      take();
      const right = and();
      const l0 = left;
      left = (l) => l0(l) || right(l);
    }
    return left;
  };
  const sel = or();
  if (p !== toks.length) throw new Error(`unexpected ${JSON.stringify(toks[p]!.v)} at token ${p + 1}`);
  return sel;
}

function parseKubernetes(src: string): Selector {
  const reqs = src.split(',').map((r) => r.trim());
  const tests: Selector[] = reqs.map((r) => {
    let m = /^([A-Za-z0-9_./-]+)\s*!=\s*([A-Za-z0-9_.-]*)$/.exec(r);
    if (m) {
      const [, k, v] = m;
      return (l) => l[k!] !== v;
    }
    m = /^([A-Za-z0-9_./-]+)\s*==?\s*([A-Za-z0-9_.-]*)$/.exec(r);
    if (m) {
      const [, k, v] = m;
      return (l) => l[k!] === v;
    }
    m = /^(!?)([A-Za-z0-9_./-]+)$/.exec(r);
    if (m) {
      const [, neg, k] = m;
      return (l) => k! in l !== (neg === '!');
    }
    throw new Error(`cannot parse requirement ${JSON.stringify(r)}`);
  });
  return (l) => tests.every((t) => t(l));
}

/** Compiles a selector; throws AGENT_ERR_SELECTOR naming the selector and the problem. */
export function compileSelector(src: string | undefined): Selector {
  const s = (src ?? '').trim();
  if (s === '') return () => true;
  const hit = cache.get(s);
  if (hit) return hit;
  let sel: Selector;
  try {
    const calico = /==|\(|&&|\|\||\bin\b|'|"/.test(s);
    sel = calico ? parseExpression(s) : parseKubernetes(s);
  } catch (err) {
    throw new AgentError('AGENT_ERR_SELECTOR', `selector ${JSON.stringify(s)}: ${(err as Error).message}`);
  }
  cache.set(s, sel);
  return sel;
}
