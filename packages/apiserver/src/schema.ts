// Structural OpenAPI v3 schemas of custom resources, applied the way kube-apiserver does on every
// write: unknown fields pruned (unless x-kubernetes-preserve-unknown-fields), defaults filled in,
// then types, required fields, enums, bounds and patterns validated. CEL rules are not evaluated.
import { causes, type StatusCause } from './errors.js';

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  nullable?: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const patterns = new Map<string, RegExp | null>();
function regex(p: string): RegExp | null {
  let r = patterns.get(p);
  if (r === undefined) {
    try {
      r = new RegExp(p, 'u');
    } catch {
      r = null;
    }
    patterns.set(p, r);
  }
  return r;
}

function typeOk(v: unknown, s: Schema): boolean {
  if (s['x-kubernetes-int-or-string']) return typeof v === 'string' || Number.isInteger(v);
  switch (s.type) {
    case 'object':
      return isObject(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    default:
      return true;
  }
}

const sub = (path: string, key: string) => (path ? `${path}.${key}` : key);

function walk(v: unknown, s: Schema, path: string, out: StatusCause[]): unknown {
  if (v === null) {
    if (s.nullable) return null;
    if (s.default !== undefined) return structuredClone(s.default);
    if (!s.type) return v;
    out.push(causes.typeInvalid(path, v, s.type));
    return v;
  }
  if (!typeOk(v, s)) {
    out.push(causes.typeInvalid(path, v, s.type ?? 'int-or-string'));
    return v;
  }
  if (s.enum && !s.enum.some((e) => e === v)) out.push(causes.unsupported(path, v, s.enum));
  if (typeof v === 'string') {
    if (s.minLength !== undefined && v.length < s.minLength)
      out.push(causes.invalid(path, v, `${path} in body should be at least ${s.minLength} chars long`));
    if (s.maxLength !== undefined && v.length > s.maxLength)
      out.push(causes.invalid(path, v, `${path} in body may not be longer than ${s.maxLength}`));
    if (s.pattern !== undefined) {
      const r = regex(s.pattern);
      if (r && !r.test(v)) out.push(causes.invalid(path, v, `${path} in body should match '${s.pattern}'`));
    }
    return v;
  }
  if (typeof v === 'number') {
    if (s.minimum !== undefined && (s.exclusiveMinimum ? v <= s.minimum : v < s.minimum))
      out.push(causes.invalid(path, v, `${path} in body should be greater than or equal to ${s.minimum}`));
    if (s.maximum !== undefined && (s.exclusiveMaximum ? v >= s.maximum : v > s.maximum))
      out.push(causes.invalid(path, v, `${path} in body should be less than or equal to ${s.maximum}`));
    return v;
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems)
      out.push(causes.invalid(path, v.length, `${path} in body should have at least ${s.minItems} items`));
    if (s.maxItems !== undefined && v.length > s.maxItems)
      out.push(causes.invalid(path, v.length, `${path} in body should have at most ${s.maxItems} items`));
    const items = s.items;
    return items ? v.map((x, i) => walk(x, items, `${path}[${i}]`, out)) : v;
  }
  if (isObject(v)) return walkObject(v, s, path, out, false);
  return v;
}

function walkObject(
  v: Record<string, unknown>,
  s: Schema,
  path: string,
  out: StatusCause[],
  root: boolean,
): Record<string, unknown> {
  const props = s.properties ?? {};
  const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
  const extra = s.additionalProperties;
  const res: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (root && (k === 'apiVersion' || k === 'kind' || k === 'metadata')) {
      res[k] = x;
      continue;
    }
    const ps = props[k];
    if (ps) res[k] = walk(x, ps, sub(path, k), out);
    else if (isObject(extra)) res[k] = walk(x, extra, sub(path, k), out);
    else if (preserve || extra === true || (s.properties === undefined && !s.type)) res[k] = x;
    // else: pruned
  }
  for (const [k, ps] of Object.entries(props)) {
    if (res[k] === undefined && ps.default !== undefined)
      res[k] = walk(structuredClone(ps.default), ps, sub(path, k), out);
  }
  for (const k of s.required ?? []) if (res[k] === undefined) out.push(causes.required(sub(path, k)));
  return res;
}

/** Prunes, defaults and validates a custom resource against its version's openAPIV3Schema. */
export function applyStructuralSchema(
  obj: Record<string, unknown>,
  schema: unknown,
  out: StatusCause[],
): Record<string, unknown> {
  if (!isObject(schema)) return obj;
  return walkObject(obj, schema as Schema, '', out, true);
}
