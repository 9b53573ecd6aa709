// Strategic merge patch for the built-in types we serve: a JSON merge patch in which some lists merge
// element by element (by a merge key, or as a set of primitives) instead of being replaced, plus the
// `$patch`, `$deleteFromPrimitiveList/…`, `$setElementOrder/…` and `$retainKeys` directives.
// Merge keys come from the Kubernetes API types' patchMergeKey/patchStrategy tags.
import type { Json } from './patch.js';

/** Field path (dotted, list indices dropped) → merge key, or '' for a set of primitives. */
type MergeKeys = Readonly<Record<string, string>>;

const meta: MergeKeys = { 'metadata.ownerReferences': 'uid', 'metadata.finalizers': '' };
const containerKeys = (base: string): MergeKeys => ({
  [base]: 'name',
  [`${base}.ports`]: 'containerPort',
  [`${base}.env`]: 'name',
  [`${base}.volumeMounts`]: 'mountPath',
  [`${base}.volumeDevices`]: 'devicePath',
});

export const MERGE_KEYS: Readonly<Record<string, MergeKeys>> = {
  pods: {
    ...meta,
    ...containerKeys('spec.containers'),
    ...containerKeys('spec.initContainers'),
    ...containerKeys('spec.ephemeralContainers'),
    'spec.volumes': 'name',
    'spec.imagePullSecrets': 'name',
    'spec.hostAliases': 'ip',
    'spec.resourceClaims': 'name',
    'status.conditions': 'type',
    'status.podIPs': 'ip',
    'status.hostIPs': 'ip',
  },
  nodes: { ...meta, 'spec.podCIDRs': '', 'status.conditions': 'type', 'status.addresses': 'type' },
  namespaces: { ...meta, 'status.conditions': 'type' },
  secrets: meta,
  configmaps: meta,
  events: meta,
  customresourcedefinitions: meta,
  // NetworkPolicy's rule, peer and port lists have no merge key: a patch replaces them whole.
  networkpolicies: meta,
  services: { ...meta, 'spec.ports': 'port', 'status.conditions': 'type' },
  // EndpointSlice's endpoints and ports are atomic lists.
  endpointslices: meta,
  // What `kubectl apply` patches when deploy/ changes (RBAC rules and subjects are atomic lists).
  daemonsets: {
    ...meta,
    ...containerKeys('spec.template.spec.containers'),
    ...containerKeys('spec.template.spec.initContainers'),
    'spec.template.spec.volumes': 'name',
    'spec.template.spec.imagePullSecrets': 'name',
    'spec.template.spec.hostAliases': 'ip',
    'status.conditions': 'type',
  },
  serviceaccounts: { ...meta, secrets: 'name' },
  clusterroles: meta,
  clusterrolebindings: meta,
  roles: meta,
  rolebindings: meta,
};

const isObject = (v: unknown): v is Record<string, Json> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function stripDirectives(v: Json): Json {
  if (!isObject(v)) return v;
  const out: Record<string, Json> = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = stripDirectives(x);
  return out;
}

function mergeList(
  target: Json | undefined,
  patch: Json[],
  key: string,
  path: string,
  keys: MergeKeys,
): Json[] {
  const out: Json[] = Array.isArray(target) ? [...target] : [];
  if (key === '') {
    for (const x of patch) if (!out.some((y) => y === x)) out.push(x);
    return out;
  }
  for (const el of patch) {
    if (!isObject(el)) {
      out.push(el);
      continue;
    }
    const i = out.findIndex((x) => isObject(x) && x[key] === el[key]);
    if (el.$patch === 'delete') {
      if (i >= 0) out.splice(i, 1);
    } else if (i >= 0) {
      out[i] = strategicMergePatch(out[i], el, keys, path);
    } else {
      out.push(stripDirectives(el));
    }
  }
  return out;
}

export function strategicMergePatch(target: Json | undefined, patch: Json, keys: MergeKeys, path = ''): Json {
  if (!isObject(patch)) return patch;
  if (patch.$patch === 'replace') return stripDirectives(patch);
  const out: Record<string, Json> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const cur = out[field];
      if (Array.isArray(cur) && Array.isArray(v)) out[field] = cur.filter((x) => !v.includes(x));
      continue;
    }
    const p = path ? `${path}.${k}` : k;
    if (v === null) delete out[k];
    else if (Array.isArray(v) && keys[p] !== undefined) out[k] = mergeList(out[k], v, keys[p]!, p, keys);
    else if (isObject(v)) out[k] = strategicMergePatch(out[k], v, keys, p);
    else out[k] = v;
  }
  return out;
}
