// Server-side printing (meta.k8s.io/v1 Table), as kube-apiserver does for custom resources: kubectl
// asks for `application/json;as=Table;…` and prints the columns it is given. A CRD's columns are
// Name and its version's additionalPrinterColumns (Name and Age when it has none); a date column
// shows the age of its timestamp. Core types are not converted (kubectl prints them itself).
import type { PrinterColumn } from './resources.js';
import type { KObject } from './store.js';

/** Does the request's Accept header ask for a Table (kubectl get)? */
export const wantsTable = (accept: string | undefined): boolean => !!accept && /;\s*as=Table\b/.test(accept);

/** A column's jsonPath (`.status.routes.ipv4.installed`, `.spec.x[0].y`) on `o`. */
export function readPath(o: unknown, path: string): unknown {
  let v: unknown = o;
  for (const part of path.replace(/^\./, '').split('.')) {
    if (part === '') continue;
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!m) return undefined;
    if (m[1]) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[m[1]] : undefined;
    for (const i of m[2]!.matchAll(/\[(\d+)\]/g)) v = Array.isArray(v) ? v[Number(i[1])] : undefined;
    if (v === undefined || v === null) return undefined;
  }
  return v;
}

/** kubectl's short age (`45s`, `3m20s`, `5h`, `2d3h`, `1y10d`). */
export function humanAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 0) return '<invalid>';
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 ? `${m}m${s % 60}s` : `${m}m`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 8) return h % 24 ? `${d}d${h % 24}h` : `${d}d`;
  if (d < 730) return `${d}d`;
  return `${Math.floor(d / 365)}y${d % 365}d`;
}

const AGE: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

function cell(c: PrinterColumn, o: KObject, now: number): unknown {
  const v = readPath(o, c.jsonPath);
  if (v === undefined) return null;
  if (c.type === 'date') {
    const t = Date.parse(String(v));
    return Number.isNaN(t) ? String(v) : humanAge(now - t);
  }
  if (c.type === 'string' && typeof v === 'object') return JSON.stringify(v);
  return v;
}

/** The Table of `objects` with a CRD version's printer columns. */
export function toTable(
  columns: PrinterColumn[],
  objects: KObject[],
  resourceVersion: string,
  now = Date.now(),
) {
  const cols = columns.length ? columns : [AGE];
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: [
      {
        name: 'Name',
        type: 'string',
        format: 'name',
        description: 'Name must be unique within a namespace.',
        priority: 0,
      },
      ...cols.map((c) => ({
        name: c.name,
        type: c.type,
        format: c.format ?? '',
        description: c.description ?? '',
        priority: c.priority ?? 0,
      })),
    ],
    rows: objects.map((o) => ({
      cells: [o.metadata.name, ...cols.map((c) => cell(c, o, now))],
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
    })),
  };
}
