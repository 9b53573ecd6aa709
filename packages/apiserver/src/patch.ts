// Patch documents: JSON merge patch (RFC 7386) and JSON Patch (RFC 6902). Pure functions over JSON values.
import { errors } from './errors.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const isObject = (v: unknown): v is Record<string, Json> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 7386: objects merge recursively, `null` deletes, anything else replaces. */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return patch;
  const out: Record<string, Json> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export type JsonPatchOp =
  | { op: 'add'; path: string; value: Json }
  | { op: 'remove'; path: string }
  | { op: 'replace'; path: string; value: Json }
  | { op: 'move'; from: string; path: string }
  | { op: 'copy'; from: string; path: string }
  | { op: 'test'; path: string; value: Json };

/** RFC 6901 pointer to its unescaped reference tokens. */
function parsePointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw errors.badRequest(`json patch: invalid pointer "${p}": must start with "/"`);
  return p
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function deepEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as Json[];
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i]));
  }
  const ao = a as Record<string, Json>;
  const bo = b as Record<string, Json>;
  const ak = Object.keys(ao);
  if (ak.length !== Object.keys(bo).length) return false;
  return ak.every((k) => Object.hasOwn(bo, k) && deepEqual(ao[k], bo[k]));
}

function get(doc: Json, tokens: string[], path: string): Json {
  let cur: Json = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) {
      const i = Number(t);
      if (!/^\d+$/.test(t) || i >= cur.length)
        throw errors.unprocessable(`json patch: path "${path}" not found`);
      cur = cur[i]!;
    } else if (isObject(cur) && Object.hasOwn(cur, t)) {
      cur = cur[t]!;
    } else {
      throw errors.unprocessable(`json patch: path "${path}" not found`);
    }
  }
  return cur;
}

/** Returns the parent container and last token; the parent must exist. */
function parentOf(doc: Json, tokens: string[], path: string): { parent: Json; last: string } {
  if (tokens.length === 0) throw errors.unprocessable(`json patch: cannot operate on the whole document`);
  return { parent: get(doc, tokens.slice(0, -1), path), last: tokens[tokens.length - 1]! };
}

function add(doc: Json, path: string, value: Json): void {
  const { parent, last } = parentOf(doc, parsePointer(path), path);
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (!(last === '-' || /^\d+$/.test(last)) || i > parent.length)
      throw errors.unprocessable(`json patch: invalid array index in "${path}"`);
    parent.splice(i, 0, value);
  } else if (isObject(parent)) {
    parent[last] = value;
  } else {
    throw errors.unprocessable(`json patch: parent of "${path}" is not a container`);
  }
}

function remove(doc: Json, path: string): Json {
  const { parent, last } = parentOf(doc, parsePointer(path), path);
  if (Array.isArray(parent)) {
    const i = Number(last);
    if (!/^\d+$/.test(last) || i >= parent.length)
      throw errors.unprocessable(`json patch: path "${path}" not found`);
    return parent.splice(i, 1)[0]!;
  }
  if (isObject(parent) && Object.hasOwn(parent, last)) {
    const v = parent[last]!;
    delete parent[last];
    return v;
  }
  throw errors.unprocessable(`json patch: path "${path}" not found`);
}

/** RFC 6902, applied atomically to a copy of `doc`. Throws a 422/400 ApiError on failure. */
export function jsonPatch(doc: Json, ops: unknown): Json {
  if (!Array.isArray(ops)) throw errors.badRequest('json patch: the body must be an array of operations');
  const root: { doc: Json } = { doc: structuredClone(doc) };
  for (const [idx, raw] of ops.entries()) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string')
      throw errors.badRequest(`json patch: operation ${idx} needs "op" and "path" strings`);
    const op = raw as unknown as JsonPatchOp;
    parsePointer(op.path); // validates before the path is rebased below
    if (typeof raw.from === 'string') parsePointer(raw.from);
    // Wrap the document so that "" (the whole document) has a parent.
    const wrapped: Json = { r: root.doc };
    const at = (p: string) => `/r${p}`;
    switch (op.op) {
      case 'add':
        add(wrapped, at(op.path), structuredClone(op.value));
        break;
      case 'remove':
        remove(wrapped, at(op.path));
        break;
      case 'replace':
        remove(wrapped, at(op.path));
        add(wrapped, at(op.path), structuredClone(op.value));
        break;
      case 'move': {
        if (typeof op.from !== 'string') throw errors.badRequest(`json patch: operation ${idx} needs "from"`);
        const v = remove(wrapped, at(op.from));
        add(wrapped, at(op.path), v);
        break;
      }
      case 'copy': {
        if (typeof op.from !== 'string') throw errors.badRequest(`json patch: operation ${idx} needs "from"`);
        add(wrapped, at(op.path), structuredClone(get(wrapped, parsePointer(at(op.from)), op.from)));
        break;
      }
      case 'test':
        if (!deepEqual(get(wrapped, parsePointer(at(op.path)), op.path), op.value))
          throw errors.unprocessable(`json patch: test operation failed at "${op.path}"`);
        break;
      default:
        throw errors.badRequest(`json patch: unknown op "${(raw as { op: string }).op}"`);
    }
    root.doc = (wrapped as Record<string, Json>).r!;
  }
  return root.doc;
}

export { deepEqual };
