// What podnet says about the objects it reads: a `Ready` condition per IPPool and BGPPeer, and the
// problems of a Node's podnet annotations. Pure functions of the objects; the elected status writer
// (status-writer.ts) and the node reporter (node-events.ts) write the results.
import { poolInfo, selectPools } from '@podnet/ipam';
import {
  type BGPPeer,
  formatProblem,
  type InvalidObject,
  type IPPool,
  nodeAnnotationsSchema,
  type SchemaError,
} from '@podnet/k8s';
import { conflictMessage } from './netfilter.js';

export interface ReadyCondition {
  status: 'True' | 'False';
  /** CamelCase, as Kubernetes reasons are: Valid, InvalidSpec, Overlap. */
  reason: string;
  /** Names the field and the value when status is False. */
  message: string;
}

export const REASON = {
  valid: 'Valid',
  invalid: 'InvalidSpec',
  overlap: 'Overlap',
  conflict: 'ConflictingFields',
} as const;

function nameOf(raw: unknown): string {
  return String((raw as { metadata?: { name?: unknown } } | null)?.metadata?.name ?? '');
}

/** The reason an object failed its schema, naming each field and its value. */
export function invalidMessage(err: SchemaError | Error): string {
  const problems = (err as SchemaError).problems;
  return problems?.length ? problems.map(formatProblem).join('; ') : err.message;
}

/**
 * Ready per IPPool name: invalid (schema) → InvalidSpec; valid but overlapping an older pool →
 * Overlap (the pool is set aside by IPAM); isolated together with natOutgoing → ConflictingFields
 * (the pool is used, and treated as isolated); otherwise True. `invalid` wins over an older valid
 * version of the same pool still held by the informer.
 */
export function poolConditions(valid: IPPool[], invalid: InvalidObject[]): Map<string, ReadyCondition> {
  const out = new Map<string, ReadyCondition>();
  for (const bad of invalid)
    out.set(nameOf(bad.raw), { status: 'False', reason: REASON.invalid, message: invalidMessage(bad.error) });
  const infos = [];
  for (const p of valid) {
    if (out.has(p.metadata.name)) continue;
    try {
      infos.push(poolInfo(p));
    } catch (err) {
      out.set(p.metadata.name, { status: 'False', reason: REASON.invalid, message: (err as Error).message });
    }
  }
  const { valid: used, setAside } = selectPools(infos);
  for (const s of setAside)
    out.set(s.pool.name, { status: 'False', reason: REASON.overlap, message: `${s.message}; set aside` });
  const byName = new Map(valid.map((p) => [p.metadata.name, p]));
  for (const p of used) {
    const spec = byName.get(p.name)?.spec;
    if (spec?.isolated && spec.natOutgoing) {
      out.set(p.name, { status: 'False', reason: REASON.conflict, message: conflictMessage() });
      continue;
    }
    out.set(p.name, {
      status: 'True',
      reason: REASON.valid,
      message: p.disabled ? 'valid; disabled: no new allocations' : 'valid; in use',
    });
  }
  return out;
}

/**
 * The pools podnet uses: the valid ones minus each pool set aside for overlapping an older one, the
 * same choice IPAM makes, so no setting of a set-aside pool (disableBGPExport…) reaches routing.
 */
export function usablePools(valid: IPPool[]): IPPool[] {
  const infos = valid.flatMap((p) => {
    try {
      return [poolInfo(p)];
    } catch {
      return [];
    }
  });
  const keep = new Set(selectPools(infos).valid.map((p) => p.name));
  return valid.filter((p) => keep.has(p.metadata.name));
}

/**
 * Ready per name for objects that are usable when their spec is valid (BGPPeer, BGPConfiguration):
 * InvalidSpec naming the fields, else True (a peer's session is another matter).
 */
export function specConditions(
  valid: { metadata: { name: string } }[],
  invalid: InvalidObject[],
): Map<string, ReadyCondition> {
  const out = new Map<string, ReadyCondition>();
  for (const bad of invalid)
    out.set(nameOf(bad.raw), { status: 'False', reason: REASON.invalid, message: invalidMessage(bad.error) });
  for (const p of valid)
    if (!out.has(p.metadata.name))
      out.set(p.metadata.name, { status: 'True', reason: REASON.valid, message: 'valid; spec accepted' });
  return out;
}

export const peerConditions = (valid: BGPPeer[], invalid: InvalidObject[]) => specConditions(valid, invalid);

/** The problems of a Node's podnet.io/* annotations: `annotation <key>: <why, with the value>`. */
export function nodeAnnotationProblems(annotations: Record<string, string> | undefined): string[] {
  const r = nodeAnnotationsSchema.safeParse(annotations ?? {});
  if (r.success) return [];
  return r.error.issues.map((i) => `annotation ${i.path.map(String).join('.')}: ${i.message}`).sort();
}
