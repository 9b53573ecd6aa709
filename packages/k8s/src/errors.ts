// Typed errors of the datastore layer. Every error has a stable `code`; API errors keep the HTTP
// status and the Status message from the server.
import type { z } from 'zod';

export const K8S_ERR = {
  CONFLICT: 'K8S_ERR_CONFLICT',
  NOT_FOUND: 'K8S_ERR_NOT_FOUND',
  ALREADY_EXISTS: 'K8S_ERR_ALREADY_EXISTS',
  INVALID: 'K8S_ERR_INVALID',
  GONE: 'K8S_ERR_GONE',
  FORBIDDEN: 'K8S_ERR_FORBIDDEN',
  UNAUTHORIZED: 'K8S_ERR_UNAUTHORIZED',
  UNREACHABLE: 'K8S_ERR_UNREACHABLE',
  SERVER: 'K8S_ERR_SERVER',
  SCHEMA: 'K8S_ERR_SCHEMA',
  CONFIG: 'K8S_ERR_CONFIG',
} as const;
export type K8sErrorCode = (typeof K8S_ERR)[keyof typeof K8S_ERR];

export class K8sError extends Error {
  constructor(
    readonly code: K8sErrorCode,
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'K8sError';
  }
}

export function isK8sError(err: unknown, code?: K8sErrorCode): err is K8sError {
  return err instanceof K8sError && (code === undefined || err.code === code);
}

export interface SchemaProblem {
  /** Dotted path of the field, e.g. `spec.importFilters.0.le`. */
  path: string;
  message: string;
  /** The value found at that path, when there is one. */
  value?: unknown;
}

/** An object that does not match its schema; `problems` name every failing field. */
export class SchemaError extends K8sError {
  constructor(
    readonly kind: string,
    readonly objectName: string | undefined,
    readonly problems: SchemaProblem[],
  ) {
    const what = objectName ? `${kind} ${JSON.stringify(objectName)}` : kind;
    super(K8S_ERR.SCHEMA, `invalid ${what}: ${problems.map(formatProblem).join('; ')}`);
    this.name = 'SchemaError';
  }
}

/** `spec.cidr: "10.0.0.1/16" is not a valid network CIDR …`: the field, the problem and the value. */
export function formatProblem(p: SchemaProblem): string {
  const shown =
    p.value === undefined || p.message.includes(JSON.stringify(p.value)) ? '' : ` (got ${short(p.value)})`;
  return `${p.path || '(root)'}: ${p.message}${shown}`;
}

function short(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function valueAt(obj: unknown, path: PropertyKey[]): unknown {
  let cur = obj;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

export function problemsOf(error: z.ZodError, input: unknown): SchemaProblem[] {
  return error.issues.map((i) => ({
    path: i.path.map(String).join('.'),
    message: i.message,
    value: valueAt(input, i.path),
  }));
}
