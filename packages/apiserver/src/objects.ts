// What kube-apiserver's per-type strategies do on create and update, for the types we serve:
// system metadata, status handling, defaults and validation. Pure functions over plain objects.
import { randomBytes, randomUUID } from 'node:crypto';
import { validateEndpointSlice } from './endpointslices.js';
import { causes, errors, type StatusCause } from './errors.js';
import { validateNetworkPolicy } from './networkpolicy.js';
import { deepEqual, type Json } from './patch.js';
import type { ResourceType } from './resources.js';
import { applyStructuralSchema } from './schema.js';
import { validateService } from './services.js';
import type { KObject, ObjectMeta } from './store.js';

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

export const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** `generateName` suffix: five characters from the alphabet kube-apiserver uses (no vowels, no look-alikes). */
export function nameSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  const bytes = randomBytes(5);
  let s = '';
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return s;
}

function validateName(t: ResourceType, name: string, out: StatusCause[]): void {
  const label = t.plural === 'namespaces';
  const ok = label
    ? DNS1123_LABEL.test(name) && name.length <= 63
    : DNS1123_SUBDOMAIN.test(name) && name.length <= 253;
  if (!ok)
    out.push(
      causes.invalid(
        'metadata.name',
        name,
        label
          ? "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (at most 63 characters)"
          : "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (at most 253 characters)",
      ),
    );
}

function validateMeta(meta: ObjectMeta, out: StatusCause[]): void {
  for (const [field, map, checkValues] of [
    ['metadata.labels', meta.labels, true],
    ['metadata.annotations', meta.annotations, false],
  ] as const) {
    if (map === undefined || map === null) continue;
    if (!isObject(map)) {
      out.push(causes.typeInvalid(field, map, 'object'));
      continue;
    }
    for (const [k, v] of Object.entries(map)) {
      if (!LABEL_KEY.test(k))
        out.push(
          causes.invalid(
            field,
            k,
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
          ),
        );
      if (typeof v !== 'string') out.push(causes.typeInvalid(`${field}.${k}`, v, 'string'));
      else if (checkValues && (!LABEL_VALUE.test(v) || v.length > 63))
        out.push(
          causes.invalid(
            `${field}`,
            v,
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)",
          ),
        );
    }
  }
}

/**
 * Type-specific defaulting and validation, shared by create and update (`old`: the stored object;
 * `statusOnly`: a write to the status subresource).
 */
function typeRules(
  t: ResourceType,
  obj: KObject,
  version: string,
  out: StatusCause[],
  old?: KObject,
  statusOnly = false,
): KObject {
  if (!t.builtin) {
    const schema = t.schemas.get(version) ?? t.schemas.get(t.storageVersion);
    if (schema !== undefined) return applyStructuralSchema(obj, schema, out) as KObject;
    return obj;
  }
  switch (t.plural) {
    case 'pods': {
      const spec = obj.spec;
      if (!isObject(spec)) out.push(causes.required('spec'));
      else if (!Array.isArray(spec.containers) || spec.containers.length === 0)
        out.push(causes.required('spec.containers'));
      else
        spec.containers.forEach((c: unknown, i: number) => {
          if (!isObject(c) || typeof c.name !== 'string' || c.name === '')
            out.push(causes.required(`spec.containers[${i}].name`));
          if (!isObject(c) || typeof c.image !== 'string' || c.image === '')
            out.push(causes.required(`spec.containers[${i}].image`));
        });
      return obj;
    }
    case 'secrets': {
      const next: KObject = { ...obj };
      next.type ??= 'Opaque';
      const data: Record<string, unknown> = isObject(next.data) ? { ...next.data } : {};
      if (next.data !== undefined && next.data !== null && !isObject(next.data))
        out.push(causes.typeInvalid('data', next.data, 'object'));
      for (const [k, v] of Object.entries(data))
        if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v))
          out.push(causes.invalid(`data[${k}]`, v, 'must be base64-encoded'));
      if (isObject(next.stringData)) {
        for (const [k, v] of Object.entries(next.stringData))
          data[k] = Buffer.from(String(v)).toString('base64');
      }
      delete next.stringData;
      if (Object.keys(data).length > 0) next.data = data;
      return next;
    }
    case 'customresourcedefinitions':
      validateCrd(obj, out);
      return obj;
    case 'leases':
      validateLease(obj, out);
      return obj;
    case 'events':
      validateEvent(obj, out);
      return obj;
    case 'networkpolicies':
      return validateNetworkPolicy(obj, out);
    case 'services':
      return validateService(obj, out, old, statusOnly);
    case 'endpointslices':
      return validateEndpointSlice(obj, out, old);
    default:
      return obj;
  }
}

/** RFC 3339 with exactly six fractional digits: metav1.MicroTime, as kube-apiserver parses it. */
const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;

/** coordination.k8s.io/v1 Lease: kube-apiserver's ValidateLeaseSpec. */
function validateLease(obj: KObject, out: StatusCause[]): void {
  const spec = obj.spec;
  if (spec === undefined || spec === null) return;
  if (!isObject(spec)) {
    out.push(causes.typeInvalid('spec', spec, 'object'));
    return;
  }
  const d = spec.leaseDurationSeconds;
  if (d !== undefined && d !== null) {
    if (!Number.isInteger(d)) out.push(causes.typeInvalid('spec.leaseDurationSeconds', d, 'integer'));
    else if ((d as number) <= 0)
      out.push(causes.invalid('spec.leaseDurationSeconds', d, 'must be greater than 0'));
  }
  const n = spec.leaseTransitions;
  if (n !== undefined && n !== null) {
    if (!Number.isInteger(n)) out.push(causes.typeInvalid('spec.leaseTransitions', n, 'integer'));
    else if ((n as number) < 0)
      out.push(causes.invalid('spec.leaseTransitions', n, 'must be greater than or equal to 0'));
  }
  const h = spec.holderIdentity;
  if (h !== undefined && h !== null && typeof h !== 'string')
    out.push(causes.typeInvalid('spec.holderIdentity', h, 'string'));
  for (const k of ['acquireTime', 'renewTime'] as const) {
    const v = spec[k];
    if (v !== undefined && v !== null && (typeof v !== 'string' || !MICRO_TIME.test(v)))
      out.push(
        causes.invalid(`spec.${k}`, v, 'must be RFC 3339 with microseconds (2006-01-02T15:04:05.000000Z)'),
      );
  }
}

/**
 * core/v1 Event as kube-apiserver validates one without eventTime: the event's namespace is the
 * involved object's, and for a cluster-scoped object (no namespace) it is "default" (or empty).
 */
function validateEvent(obj: KObject, out: StatusCause[]): void {
  const io = obj.involvedObject;
  if (!isObject(io)) {
    out.push(causes.required('involvedObject'));
    return;
  }
  const ns = obj.metadata.namespace ?? '';
  const ioNs = typeof io.namespace === 'string' ? io.namespace : '';
  if (ioNs === '' ? ns !== '' && ns !== 'default' : ns !== ioNs)
    out.push(causes.invalid('involvedObject.namespace', ioNs, 'does not match event.namespace'));
}

function validateCrd(obj: KObject, out: StatusCause[]): void {
  const spec = obj.spec;
  if (!isObject(spec)) {
    out.push(causes.required('spec'));
    return;
  }
  if (typeof spec.group !== 'string' || !spec.group.includes('.') || !DNS1123_SUBDOMAIN.test(spec.group))
    out.push(causes.invalid('spec.group', spec.group, 'should be a domain with at least one dot'));
  else if (/(^|\.)(k8s\.io|kubernetes\.io)$/.test(spec.group))
    out.push(
      causes.invalid(
        'spec.group',
        spec.group,
        'groups under k8s.io and kubernetes.io are reserved for the Kubernetes project',
      ),
    );
  if (spec.scope !== 'Cluster' && spec.scope !== 'Namespaced')
    out.push(causes.unsupported('spec.scope', spec.scope, ['Cluster', 'Namespaced']));
  const names = spec.names;
  if (!isObject(names)) out.push(causes.required('spec.names'));
  else {
    if (typeof names.plural !== 'string' || !DNS1123_LABEL.test(names.plural))
      out.push(causes.invalid('spec.names.plural', names.plural, 'must be a DNS-1123 label'));
    if (typeof names.kind !== 'string' || names.kind === '') out.push(causes.required('spec.names.kind'));
    if (
      typeof names.plural === 'string' &&
      typeof spec.group === 'string' &&
      obj.metadata.name !== `${names.plural}.${spec.group}`
    )
      out.push(
        causes.invalid('metadata.name', obj.metadata.name, `must be spec.names.plural+"."+spec.group`),
      );
  }
  if (!Array.isArray(spec.versions) || spec.versions.length === 0) out.push(causes.required('spec.versions'));
  else {
    const storage = spec.versions.filter((v: unknown) => isObject(v) && v.storage === true).length;
    if (storage !== 1)
      out.push(
        causes.invalid(
          'spec.versions',
          `${storage} storage versions`,
          'must have exactly one version marked as storage version',
        ),
      );
    spec.versions.forEach((v: unknown, i: number) => {
      if (!isObject(v) || typeof v.name !== 'string' || v.name === '')
        out.push(causes.required(`spec.versions[${i}].name`));
      else if (!isObject(v.schema) || !isObject(v.schema.openAPIV3Schema))
        out.push(causes.required(`spec.versions[${i}].schema.openAPIV3Schema`));
    });
  }
}

function invalidIfAny(t: ResourceType, name: string, found: StatusCause[]): void {
  if (found.length > 0) throw errors.invalid(t.kind, t.group, name, found);
}

/** The object to store for a create, or a 400/422 ApiError. `name` is resolved (generateName applied). */
export function prepareCreate(
  t: ResourceType,
  version: string,
  namespace: string | undefined,
  body: unknown,
): KObject {
  if (!isObject(body)) throw errors.badRequest('the request body must be a JSON object');
  const meta: ObjectMeta = isObject(body.metadata) ? { ...(body.metadata as ObjectMeta) } : {};
  checkKind(t, version, body);
  const found: StatusCause[] = [];
  if (!meta.name) {
    if (typeof meta.generateName === 'string' && meta.generateName !== '')
      meta.name = `${meta.generateName}${nameSuffix()}`;
    else found.push(causes.required('metadata.name'));
  }
  if (t.namespaced) {
    if (meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== namespace)
      throw errors.badRequest(
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    meta.namespace = namespace;
  } else delete meta.namespace;
  const name = meta.name ?? '';
  if (name) validateName(t, name, found);
  validateMeta(meta, found);
  delete meta.resourceVersion;
  delete meta.deletionTimestamp;
  delete meta.deletionGracePeriodSeconds;
  delete meta.selfLink;
  meta.uid = randomUUID();
  meta.creationTimestamp = now();
  meta.generation = 1;
  let obj: KObject = { ...body, apiVersion: apiVersion(t, version), kind: t.kind, metadata: meta };
  if (t.hasStatus && !t.builtin) delete obj.status;
  if (t.builtin) obj = builtinCreateDefaults(t, obj);
  obj = typeRules(t, obj, version, found);
  invalidIfAny(t, name, found);
  return obj;
}

function builtinCreateDefaults(t: ResourceType, obj: KObject): KObject {
  switch (t.plural) {
    case 'pods':
      // like kube-apiserver: a pod's status is not settable on create, and its spec gets defaults
      return {
        ...obj,
        spec: podSpecDefaults(obj.spec),
        status: { phase: 'Pending', qosClass: 'BestEffort' },
      };
    case 'namespaces':
      return {
        ...obj,
        metadata: {
          ...obj.metadata,
          labels: { ...obj.metadata.labels, 'kubernetes.io/metadata.name': obj.metadata.name! },
        },
        spec: { finalizers: ['kubernetes'] },
        status: { phase: 'Active' },
      };
    case 'customresourcedefinitions': {
      const spec = isObject(obj.spec) ? obj.spec : {};
      const at = now();
      return {
        ...obj,
        status: {
          acceptedNames: spec.names ?? {},
          storedVersions: Array.isArray(spec.versions)
            ? spec.versions
                .filter((v: unknown) => isObject(v) && v.storage === true)
                .map((v: { name?: unknown }) => v.name)
            : [],
          conditions: [
            {
              type: 'NamesAccepted',
              status: 'True',
              reason: 'NoConflicts',
              message: 'no conflicts found',
              lastTransitionTime: at,
            },
            {
              type: 'Established',
              status: 'True',
              reason: 'InitialNamesAccepted',
              message: 'the initial names have been accepted',
              lastTransitionTime: at,
            },
          ],
        },
      };
    }
    default:
      return obj;
  }
}

function podSpecDefaults(spec: unknown): unknown {
  if (!isObject(spec)) return spec;
  const container = (c: unknown) => {
    if (!isObject(c)) return c;
    const image = typeof c.image === 'string' ? c.image : '';
    const tag = image.includes('@') ? 'digest' : (/:([^/:]+)$/.exec(image)?.[1] ?? 'latest');
    return {
      terminationMessagePath: '/dev/termination-log',
      terminationMessagePolicy: 'File',
      imagePullPolicy: tag === 'latest' ? 'Always' : 'IfNotPresent',
      ...c,
    };
  };
  return {
    restartPolicy: 'Always',
    terminationGracePeriodSeconds: 30,
    dnsPolicy: 'ClusterFirst',
    schedulerName: 'default-scheduler',
    ...spec,
    ...(Array.isArray(spec.containers) ? { containers: spec.containers.map(container) } : {}),
    ...(Array.isArray(spec.initContainers) ? { initContainers: spec.initContainers.map(container) } : {}),
  };
}

/** The parts of a pod spec an update may change (kube-apiserver's ValidatePodUpdate, simplified). */
function podSpecImmutablePart(spec: unknown): Json {
  if (!isObject(spec)) return (spec ?? null) as Json;
  const { activeDeadlineSeconds: _a, terminationGracePeriodSeconds: _t, tolerations: _tol, ...rest } = spec;
  const noImage = (cs: unknown) =>
    Array.isArray(cs) ? cs.map((c) => (isObject(c) ? { ...c, image: '' } : c)) : cs;
  return {
    ...rest,
    containers: noImage(rest.containers),
    initContainers: noImage(rest.initContainers),
  } as Json;
}

function apiVersion(t: ResourceType, version: string): string {
  return t.group ? `${t.group}/${version}` : version;
}

function checkKind(t: ResourceType, version: string, body: Record<string, unknown>): void {
  if (body.kind !== undefined && body.kind !== '' && body.kind !== t.kind)
    throw errors.badRequest(
      `the kind of the provided object (${String(body.kind)}) does not match the resource (${t.kind})`,
    );
  if (body.apiVersion !== undefined && body.apiVersion !== '' && body.apiVersion !== apiVersion(t, version))
    throw errors.badRequest(
      `the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersion(t, version)})`,
    );
}

const withoutMeta = (o: KObject, dropStatus: boolean) => {
  const { metadata: _m, ...rest } = o;
  if (dropStatus) delete rest.status;
  return rest as Json;
};

/**
 * The object to store for an update (PUT, or a patch's result) of `existing`; `existing` itself when
 * nothing changed. Throws 409 on a stale resourceVersion and 400/422 on bad input.
 */
export function prepareUpdate(
  t: ResourceType,
  version: string,
  existing: KObject,
  body: unknown,
  opts: { subresource?: 'status'; unconditional: boolean },
): KObject {
  if (!isObject(body)) throw errors.badRequest('the request body must be a JSON object');
  const name = existing.metadata.name!;
  checkKind(t, version, body);
  const inMeta: ObjectMeta = isObject(body.metadata) ? (body.metadata as ObjectMeta) : {};
  if (inMeta.name !== undefined && inMeta.name !== name)
    throw errors.badRequest(
      `the name of the object (${String(inMeta.name)}) does not match the name on the URL (${name})`,
    );
  if (t.namespaced && inMeta.namespace && inMeta.namespace !== existing.metadata.namespace)
    throw errors.badRequest(
      'the namespace of the provided object does not match the namespace sent on the request',
    );
  const rv = inMeta.resourceVersion;
  if (rv === undefined || rv === '') {
    if (!opts.unconditional && !t.builtin)
      throw errors.invalid(t.kind, t.group, name, [
        causes.invalid('metadata.resourceVersion', '0x0', 'must be specified for an update'),
      ]);
  } else if (rv !== existing.metadata.resourceVersion) {
    throw errors.conflict(
      { group: t.group, resource: t.plural },
      name,
      'the object has been modified; please apply your changes to the latest version and try again',
    );
  }
  if (inMeta.uid !== undefined && inMeta.uid !== existing.metadata.uid)
    throw errors.conflict(
      { group: t.group, resource: t.plural },
      name,
      `Precondition failed: UID in precondition: ${String(inMeta.uid)}, UID in object meta: ${existing.metadata.uid}`,
    );

  let next: KObject;
  if (opts.subresource === 'status') {
    next = { ...existing, metadata: { ...existing.metadata } };
    if (body.status === undefined) delete next.status;
    else next.status = body.status;
  } else {
    const found0: StatusCause[] = [];
    validateMeta(inMeta, found0);
    invalidIfAny(t, name, found0);
    const meta: ObjectMeta = {
      ...inMeta,
      name,
      uid: existing.metadata.uid!,
      creationTimestamp: existing.metadata.creationTimestamp!,
      generation: existing.metadata.generation ?? 1,
      resourceVersion: existing.metadata.resourceVersion!,
    };
    const spec = t.builtin && t.plural === 'pods' ? podSpecDefaults(body.spec) : body.spec;
    if (
      t.builtin &&
      t.plural === 'pods' &&
      !deepEqual(podSpecImmutablePart(spec), podSpecImmutablePart(existing.spec))
    )
      throw errors.invalid(t.kind, t.group, name, [
        causes.forbidden(
          'spec',
          'pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations) or `spec.terminationGracePeriodSeconds`',
        ),
      ]);
    if (t.namespaced) meta.namespace = existing.metadata.namespace!;
    else delete meta.namespace;
    if (existing.metadata.deletionTimestamp) meta.deletionTimestamp = existing.metadata.deletionTimestamp;
    else delete meta.deletionTimestamp;
    next = { ...body, apiVersion: apiVersion(t, version), kind: t.kind, metadata: meta };
    if (spec !== undefined) next.spec = spec;
    if (t.hasStatus) {
      if (existing.status === undefined) delete next.status;
      else next.status = existing.status;
    }
    if (t.plural === 'namespaces')
      next.metadata.labels = { ...next.metadata.labels, 'kubernetes.io/metadata.name': name };
  }
  const found: StatusCause[] = [];
  if (t.builtin && t.plural === 'customresourcedefinitions' && opts.subresource !== 'status') {
    const was = (existing.spec ?? {}) as Record<string, unknown>;
    const spec = isObject(next.spec) ? next.spec : {};
    for (const f of ['group', 'scope'] as const)
      if (spec[f] !== was[f]) found.push(causes.invalid(`spec.${f}`, spec[f], 'field is immutable'));
  }
  next = typeRules(t, next, version, found, existing, opts.subresource === 'status');
  invalidIfAny(t, name, found);
  const cmpExisting = { ...existing, apiVersion: next.apiVersion };
  if (deepEqual(next as unknown as Json, cmpExisting as unknown as Json)) return existing;
  if (!deepEqual(withoutMeta(next, t.hasStatus), withoutMeta(cmpExisting, t.hasStatus)))
    next.metadata.generation = (existing.metadata.generation ?? 1) + 1;
  return next;
}
