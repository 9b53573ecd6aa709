// The HTTP(S) front: routing of Kubernetes API paths, bearer-token auth, the verbs, watch streams,
// discovery. Objects live in the Store; per-type rules are in objects.ts.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { ApiError, causes, errors, type StatusCause, successStatus } from './errors.js';
import { nameSuffix, now, prepareCreate, prepareUpdate } from './objects.js';
import { openApiV2 } from './openapi.js';
import { type Json, jsonPatch, mergePatch } from './patch.js';
import {
  apiVersionOf,
  builtinTypes,
  type ResourceType,
  supportedFields,
  typeFromCrd,
  typeKey,
} from './resources.js';
import {
  type FieldRequirement,
  type LabelRequirement,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
} from './selectors.js';
import { allocateService, type ServiceNetwork } from './service-alloc.js';
import type { KObject, Store, StoreEvent } from './store.js';
import { MERGE_KEYS, strategicMergePatch } from './strategic.js';
import { toTable, wantsTable } from './table.js';
import { ADMIN_USER, TokenIssuer, type UserInfo } from './tokens.js';

export interface LoggerLike {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: object): LoggerLike;
}

const noop = () => {};
export const silentLogger: LoggerLike = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
};

export interface ServerCoreOptions {
  token: string;
  store: Store;
  logger: LoggerLike;
  bookmarkIntervalMs: number;
  /**
   * `interval`: a BOOKMARK every bookmarkIntervalMs. `before-timeout`: one BOOKMARK 2 s before the
   * watch's timeoutSeconds deadline and none without a timeout, as kube-apiserver 1.20's watch cache
   * sends them (later releases add one about every minute).
   */
  bookmarkMode?: 'interval' | 'before-timeout';
  maxBodyBytes: number;
  /** Where Services get their cluster IPs and node ports. */
  serviceNetwork: ServiceNetwork;
  /** Static bearer tokens (kube-apiserver's --token-auth-file): token → user. */
  staticTokens?: Map<string, UserInfo>;
}

/** Requests one user made since the server started (GET /debug/podnet/requests). */
export interface RequestCount {
  /** Every authenticated request, watches included. */
  requests: number;
  /** Of those, watch requests (each one a long-lived stream). */
  watches: number;
}

const PROTECTED_NAMESPACES = new Set(['default', 'kube-system', 'kube-public']);

interface Target {
  type: ResourceType;
  version: string;
  namespace?: string;
  name?: string;
  subresource?: string;
  watch: boolean;
}

/** The API itself, independent of the listening socket. */
export class ApiCore {
  private readonly types = new Map<string, ResourceType>(); // typeKey → type
  private readonly routes = new Map<string, ResourceType>(); // group/version/plural → type
  /** Open watch streams, with the type each one watches. */
  readonly watches = new Map<ServerResponse, string>();
  private readonly log: LoggerLike;
  private readonly expectedAuth: Buffer;
  /** Service account tokens: TokenRequest and their authentication. */
  readonly tokens: TokenIssuer;
  /** Requests per authenticated user (a Map increment per request; users are few and fixed). */
  readonly requestCounts = new Map<string, RequestCount>();

  constructor(private readonly o: ServerCoreOptions) {
    this.log = o.logger;
    this.expectedAuth = Buffer.from(`Bearer ${o.token}`);
    this.tokens = new TokenIssuer(o.store);
    for (const t of builtinTypes()) this.register(t);
    for (const crd of o.store.list(typeKey('apiextensions.k8s.io', 'customresourcedefinitions')))
      this.registerCrd(crd);
    for (const ns of ['default', 'kube-system', 'kube-public'])
      if (!o.store.get('namespaces', undefined, ns)) {
        const t = this.types.get('namespaces')!;
        o.store.commit('ADDED', 'namespaces', prepareCreate(t, 'v1', undefined, { metadata: { name: ns } }));
      }
    // Like a real server's watch cache, the history starts now: older resourceVersions are 410 Gone.
    o.store.compacted = o.store.revision;
  }

  private register(t: ResourceType): void {
    const key = typeKey(t.group, t.plural);
    const old = this.types.get(key);
    if (old) for (const v of old.versions) this.routes.delete(`${old.group}/${v}/${old.plural}`);
    this.types.set(key, t);
    for (const v of t.versions) this.routes.set(`${t.group}/${v}/${t.plural}`, t);
  }

  private unregister(group: string, plural: string): void {
    const key = typeKey(group, plural);
    const old = this.types.get(key);
    if (!old) return;
    for (const v of old.versions) this.routes.delete(`${old.group}/${v}/${old.plural}`);
    this.types.delete(key);
  }

  private registerCrd(crd: KObject): void {
    try {
      const t = typeFromCrd(crd as never);
      this.register(t);
      this.log.info(
        { crd: crd.metadata.name, versions: t.versions, scope: t.namespaced ? 'Namespaced' : 'Cluster' },
        'serving custom resource',
      );
    } catch (err) {
      this.log.warn({ crd: crd.metadata.name, err: String(err) }, 'cannot serve custom resource definition');
    }
  }

  // ---- HTTP entry ---------------------------------------------------------------------------------

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    try {
      await this.route(method, url, req, res);
    } catch (err) {
      const e =
        err instanceof ApiError
          ? err
          : errors.internal(`internal error: ${err instanceof Error ? err.message : String(err)}`, err);
      if (e.httpCode >= 500)
        this.log.error({ method, path: url.pathname, err: String(err) }, 'request failed');
      if (!res.headersSent) send(res, e.httpCode, e.toStatus());
      else res.destroy();
    }
    this.log.debug(
      {
        method,
        path: url.pathname,
        query: url.search,
        status: res.statusCode,
        ms: +(performance.now() - started).toFixed(2),
      },
      'request',
    );
  }

  /** The user a request's bearer token names: the admin token, a static token or a service account token. */
  private authenticate(req: IncomingMessage): UserInfo | undefined {
    const h = req.headers.authorization;
    if (typeof h !== 'string') return undefined;
    const got = Buffer.from(h);
    if (got.length === this.expectedAuth.length && timingSafeEqual(got, this.expectedAuth)) return ADMIN_USER;
    if (!h.startsWith('Bearer ')) return undefined;
    const token = h.slice(7).trim();
    return this.o.staticTokens?.get(token) ?? this.tokens.authenticate(token);
  }

  private count(user: UserInfo, watch: boolean): void {
    let c = this.requestCounts.get(user.username);
    if (!c) {
      c = { requests: 0, watches: 0 };
      this.requestCounts.set(user.username, c);
    }
    c.requests++;
    if (watch) c.watches++;
  }

  private async route(method: string, url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end('ok');
      return;
    }
    const user = this.authenticate(req);
    if (!user) throw errors.unauthorized();
    if (path === '/debug/podnet/requests') {
      if (method !== 'GET') throw errors.methodNotAllowed(method);
      return send(res, 200, { kind: 'RequestCounts', users: Object.fromEntries(this.requestCounts) });
    }
    const w = url.searchParams.get('watch');
    this.count(user, w === 'true' || w === '1' || path.includes('/watch/'));
    if (path === '/version') return send(res, 200, VERSION);
    if (path === '/openapi/v2') return openApiV2(req, res, VERSION.gitVersion);
    let segs: string[];
    try {
      segs = path.split('/').slice(1).map(decodeURIComponent);
    } catch {
      throw errors.badRequest(`malformed path: ${path}`);
    }
    if (segs[0] === 'api') {
      if (segs.length === 1)
        return send(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
      if (segs[1] !== 'v1') throw errors.pathNotFound();
      if (segs.length === 2) return send(res, 200, this.resourceList('', 'v1'));
      return this.resource(method, this.target('', 'v1', segs.slice(2)), url.searchParams, req, res);
    }
    if (segs[0] === 'apis') {
      if (segs.length === 1)
        return send(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: this.groups() });
      const group = segs[1]!;
      const g = this.groups().find((x) => x.name === group);
      if (!g) throw errors.pathNotFound();
      if (segs.length === 2) return send(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...g });
      const version = segs[2]!;
      if (!g.versions.some((v) => v.version === version)) throw errors.pathNotFound();
      if (segs.length === 3) return send(res, 200, this.resourceList(group, version));
      return this.resource(method, this.target(group, version, segs.slice(3)), url.searchParams, req, res);
    }
    throw errors.pathNotFound();
  }

  private target(group: string, version: string, rest: string[]): Target {
    let watch = false;
    if (rest[0] === 'watch') {
      watch = true;
      rest = rest.slice(1);
    }
    const lookup = (plural: string | undefined) =>
      plural === undefined ? undefined : this.routes.get(`${group}/${version}/${plural}`);
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const t = lookup(rest[2]);
      if (t?.namespaced) {
        if (rest.length > 5) throw errors.pathNotFound();
        const tg: Target = { type: t, version, namespace: rest[1]!, watch };
        if (rest[3] !== undefined) tg.name = rest[3];
        if (rest[4] !== undefined) tg.subresource = rest[4];
        return tg;
      }
    }
    const t = lookup(rest[0]);
    if (!t || rest.length > 3) throw errors.pathNotFound();
    if (t.namespaced && rest.length > 1) throw errors.pathNotFound();
    const tg: Target = { type: t, version, watch };
    if (rest[1] !== undefined) tg.name = rest[1];
    if (rest[2] !== undefined) tg.subresource = rest[2];
    return tg;
  }

  // ---- discovery -----------------------------------------------------------------------------------

  private groups() {
    const byGroup = new Map<string, Set<string>>();
    const preferred = new Map<string, string>();
    for (const t of this.types.values()) {
      if (!t.group) continue;
      const set = byGroup.get(t.group) ?? new Set();
      for (const v of t.versions) set.add(v);
      byGroup.set(t.group, set);
      if (!preferred.has(t.group) && t.versions[0]) preferred.set(t.group, t.versions[0]);
    }
    return [...byGroup.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, vs]) => {
        const versions = [...vs].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
        const pv = preferred.get(name)!;
        return { name, versions, preferredVersion: { groupVersion: `${name}/${pv}`, version: pv } };
      });
  }

  private resourceList(group: string, version: string) {
    const resources: object[] = [];
    for (const t of this.types.values()) {
      if (t.group !== group || !t.versions.includes(version)) continue;
      resources.push({
        name: t.plural,
        singularName: t.singular,
        namespaced: t.namespaced,
        kind: t.kind,
        verbs: t.verbs,
        ...(t.shortNames.length ? { shortNames: t.shortNames } : {}),
        ...(t.categories.length ? { categories: t.categories } : {}),
      });
      if (t.builtin && t.plural === 'serviceaccounts')
        resources.push({
          name: 'serviceaccounts/token',
          singularName: '',
          namespaced: true,
          group: 'authentication.k8s.io',
          version: 'v1',
          kind: 'TokenRequest',
          verbs: ['create'],
        });
      if (t.hasStatus)
        resources.push({
          name: `${t.plural}/status`,
          singularName: '',
          namespaced: t.namespaced,
          kind: t.kind,
          verbs: ['get', 'patch', 'update'],
        });
    }
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: apiVersionOf(group, version),
      resources,
    };
  }

  // ---- resources -----------------------------------------------------------------------------------

  private ref(t: ResourceType) {
    return { group: t.group, resource: t.plural };
  }

  private present(t: ResourceType, version: string, o: KObject): KObject {
    return { ...o, apiVersion: apiVersionOf(t.group, version), kind: t.kind };
  }

  private requireNamespace(ns: string | undefined): void {
    if (ns !== undefined && !this.o.store.get('namespaces', undefined, ns))
      throw errors.notFound({ group: '', resource: 'namespaces' }, ns);
  }

  private async resource(
    method: string,
    tg: Target,
    q: URLSearchParams,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const { type: t, version } = tg;
    if (tg.subresource === 'token' && t.builtin && t.plural === 'serviceaccounts' && tg.name !== undefined) {
      if (method !== 'POST') throw errors.methodNotAllowed(method);
      const body = await readJson(req, this.o.maxBodyBytes);
      return send(res, 201, this.tokens.request(tg.namespace!, tg.name, body));
    }
    if (tg.subresource === 'binding' && t.builtin && t.plural === 'pods' && tg.name !== undefined) {
      if (method !== 'POST') throw errors.methodNotAllowed(method);
      return send(res, 201, this.bind(tg.namespace!, tg.name, await readJson(req, this.o.maxBodyBytes)));
    }
    if (tg.subresource !== undefined && !(tg.subresource === 'status' && t.hasStatus))
      throw errors.pathNotFound();
    const isWatch = tg.watch || q.get('watch') === 'true' || q.get('watch') === '1';
    const dryRun = q.get('dryRun') === 'All';
    if (tg.name === undefined) {
      switch (method) {
        case 'GET':
          if (isWatch) return this.watch(tg, q, req, res);
          return send(res, 200, this.table(tg, req, this.list(tg, q)));
        case 'POST': {
          if (tg.namespace !== undefined) this.requireNamespace(tg.namespace);
          const body = await readJson(req, this.o.maxBodyBytes);
          const key = typeKey(t.group, t.plural);
          const obj = this.allocate(t, prepareCreate(t, version, tg.namespace, body));
          const generated = !(body as { metadata?: { name?: string } }).metadata?.name;
          let name = obj.metadata.name!;
          if (this.o.store.get(key, tg.namespace, name)) {
            if (!generated) throw errors.alreadyExists(this.ref(t), name);
            // generateName collided: retry a few suffixes, as kube-apiserver's retry does
            const gen = obj.metadata.generateName ?? '';
            for (let i = 0; i < 8 && this.o.store.get(key, tg.namespace, name); i++)
              name = `${gen}${nameSuffix()}`;
            if (this.o.store.get(key, tg.namespace, name)) throw errors.alreadyExists(this.ref(t), name);
            obj.metadata.name = name;
          }
          if (dryRun) return send(res, 201, this.present(t, version, obj));
          const stored = this.o.store.commit('ADDED', key, obj);
          if (t.plural === 'customresourcedefinitions') this.registerCrd(stored);
          return send(res, 201, this.present(t, version, stored));
        }
        case 'DELETE':
          return send(res, 200, this.deleteCollection(tg, q, dryRun));
        default:
          throw errors.methodNotAllowed(method);
      }
    }
    const key = typeKey(t.group, t.plural);
    const name = tg.name;
    if (tg.namespace !== undefined && method !== 'GET') this.requireNamespace(tg.namespace);
    const existing = this.o.store.get(key, tg.namespace, name);
    switch (method) {
      case 'GET':
        if (isWatch) return this.watch({ ...tg, name }, q, req, res);
        if (!existing) throw errors.notFound(this.ref(t), name);
        return send(
          res,
          200,
          this.table(tg, req, {
            metadata: { resourceVersion: existing.metadata.resourceVersion },
            items: [this.present(t, version, existing)],
            one: this.present(t, version, existing),
          }),
        );
      case 'PUT': {
        const body = await readJson(req, this.o.maxBodyBytes);
        if (!existing) throw errors.notFound(this.ref(t), name);
        const opts =
          tg.subresource === 'status'
            ? { subresource: 'status' as const, unconditional: false }
            : { unconditional: false };
        const next = this.allocate(t, prepareUpdate(t, version, existing, body, opts), existing);
        return send(res, 200, this.present(t, version, this.write(t, key, existing, next, dryRun)));
      }
      case 'PATCH': {
        const body = await readJson(req, this.o.maxBodyBytes);
        if (!existing) throw errors.notFound(this.ref(t), name);
        const ctype = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
        const current = this.present(t, version, existing) as unknown as Json;
        let patched: Json;
        if (ctype === 'application/merge-patch+json') patched = mergePatch(current, body as Json);
        else if (ctype === 'application/strategic-merge-patch+json') {
          // as on kube-apiserver: custom resources have no patch strategies to follow
          if (!t.builtin) throw errors.unsupportedMediaType(ctype);
          patched = strategicMergePatch(current, body as Json, MERGE_KEYS[t.plural] ?? {});
        } else if (ctype === 'application/json-patch+json') patched = jsonPatch(current, body);
        else throw errors.unsupportedMediaType(ctype);
        const opts =
          tg.subresource === 'status'
            ? { subresource: 'status' as const, unconditional: true }
            : { unconditional: true };
        const next = this.allocate(t, prepareUpdate(t, version, existing, patched, opts), existing);
        return send(res, 200, this.present(t, version, this.write(t, key, existing, next, dryRun)));
      }
      case 'DELETE': {
        const body =
          req.headers['content-length'] === '0' ? undefined : await readJson(req, this.o.maxBodyBytes, true);
        if (!existing) throw errors.notFound(this.ref(t), name);
        const pre = (body as { preconditions?: { resourceVersion?: string; uid?: string } } | undefined)
          ?.preconditions;
        if (pre?.resourceVersion && pre.resourceVersion !== existing.metadata.resourceVersion)
          throw errors.conflict(
            this.ref(t),
            name,
            `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${existing.metadata.resourceVersion}`,
          );
        if (pre?.uid && pre.uid !== existing.metadata.uid)
          throw errors.conflict(
            this.ref(t),
            name,
            `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${existing.metadata.uid}`,
          );
        if (t.plural === 'namespaces' && PROTECTED_NAMESPACES.has(name))
          throw new ApiError(
            'APISERVER_ERR_FORBIDDEN' as never,
            403,
            'Forbidden',
            `namespaces "${name}" is forbidden: this namespace may not be deleted`,
            { name, kind: 'namespaces' },
          );
        if (hasFinalizers(existing)) {
          // deletion waits for the finalizers: mark it, the last finalizer's removal deletes it
          if (existing.metadata.deletionTimestamp || dryRun)
            return send(res, 200, this.present(t, version, existing));
          const marked: KObject = {
            ...existing,
            metadata: { ...existing.metadata, deletionTimestamp: now(), deletionGracePeriodSeconds: 0 },
          };
          return send(
            res,
            200,
            this.present(t, version, this.o.store.commit('MODIFIED', key, marked, existing)),
          );
        }
        const deleted = dryRun ? existing : this.remove(t, key, existing);
        if (t.plural === 'pods') return send(res, 200, this.present(t, version, deleted));
        return send(
          res,
          200,
          successStatus({ name, group: t.group, kind: t.plural, uid: existing.metadata.uid! }),
        );
      }
      default:
        throw errors.methodNotAllowed(method);
    }
  }

  /** pods/binding: what the scheduler does to put a pod on a node (spec.nodeName is otherwise immutable). */
  private bind(namespace: string, name: string, body: unknown) {
    const ref = { group: '', resource: 'pods' };
    const target = (body as { target?: { name?: unknown } } | undefined)?.target;
    if (typeof target?.name !== 'string' || target.name === '')
      throw errors.invalid('Binding', '', name, [causes.required('target.name')]);
    const existing = this.o.store.get('pods', namespace, name);
    if (!existing) throw errors.notFound(ref, name);
    const spec = (existing.spec ?? {}) as { nodeName?: string };
    if (spec.nodeName)
      throw errors.conflict(ref, name, `pod ${name} is already assigned to node "${spec.nodeName}"`);
    this.o.store.commit(
      'MODIFIED',
      'pods',
      { ...existing, spec: { ...spec, nodeName: target.name } },
      existing,
    );
    return { ...successStatus(), code: 201 };
  }

  /** A Service's cluster IPs and node ports, as its REST storage allocates them after validation. */
  private allocate(t: ResourceType, obj: KObject, existing?: KObject): KObject {
    if (!t.builtin || t.plural !== 'services' || obj === existing) return obj;
    const found: StatusCause[] = [];
    const next = allocateService(obj, this.o.store.list('services'), this.o.serviceNetwork, found, existing);
    if (found.length > 0) throw errors.invalid(t.kind, t.group, obj.metadata.name!, found);
    return next;
  }

  private write(t: ResourceType, key: string, existing: KObject, next: KObject, dryRun: boolean): KObject {
    if (next === existing || dryRun) return next;
    if (existing.metadata.deletionTimestamp) {
      const before = new Set(finalizersOf(existing));
      const added = finalizersOf(next).filter((f) => !before.has(f));
      if (added.length > 0)
        throw errors.invalid(t.kind, t.group, existing.metadata.name!, [
          causes.forbidden(
            'metadata.finalizers',
            `no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`,
          ),
        ]);
      if (!hasFinalizers(next))
        return this.remove(t, key, this.o.store.commit('MODIFIED', key, next, existing));
    }
    const stored = this.o.store.commit('MODIFIED', key, next, existing);
    if (t.plural === 'customresourcedefinitions') this.registerCrd(stored);
    return stored;
  }

  /** Deletes an object and what it owns: a namespace's objects, a CRD's custom resources. */
  private remove(t: ResourceType, key: string, existing: KObject): KObject {
    const store = this.o.store;
    if (t.plural === 'namespaces') {
      const ns = existing.metadata.name!;
      for (const other of this.types.values()) {
        if (!other.namespaced) continue;
        const k = typeKey(other.group, other.plural);
        for (const o of store.list(k, ns)) store.commit('DELETED', k, o, o);
      }
    }
    if (t.plural === 'customresourcedefinitions') {
      const spec = (existing.spec ?? {}) as { group?: string; names?: { plural?: string } };
      if (spec.group && spec.names?.plural) {
        const k = typeKey(spec.group, spec.names.plural);
        for (const o of store.list(k)) store.commit('DELETED', k, o, o);
        this.unregister(spec.group, spec.names.plural);
        this.endWatches(k);
        store.dropTable(k);
      }
    }
    return store.commit('DELETED', key, existing, existing);
  }

  private selectors(
    t: ResourceType,
    q: URLSearchParams,
  ): { labels: LabelRequirement[]; fields: FieldRequirement[] } {
    return {
      labels: parseLabelSelector(q.get('labelSelector') ?? ''),
      fields: parseFieldSelector(q.get('fieldSelector') ?? '', supportedFields(t)),
    };
  }

  private list(tg: Target, q: URLSearchParams) {
    const { type: t, version } = tg;
    const { labels, fields } = this.selectors(t, q);
    listResourceVersion(q, this.o.store.revision);
    const limit = Number(q.get('limit') ?? 0);
    if (!Number.isInteger(limit) || limit < 0)
      throw errors.badRequest(`limit: invalid value "${q.get('limit')}"`);
    const cont = q.get('continue');
    let after: string | undefined;
    let rv = String(this.o.store.revision);
    if (cont) {
      try {
        const c = JSON.parse(Buffer.from(cont, 'base64url').toString()) as { rv: string; after: string };
        after = c.after;
        rv = c.rv;
      } catch {
        throw errors.badRequest(`continue key is not valid: ${cont}`);
      }
    }
    const all = this.o.store.list(typeKey(t.group, t.plural), tg.namespace);
    const items: KObject[] = [];
    let next: string | undefined;
    let remaining = 0;
    for (const o of all) {
      const k = `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
      if (after !== undefined && k <= after) continue;
      if (!matchesLabels(labels, o.metadata.labels) || !matchesFields(fields, o)) continue;
      if (limit > 0 && items.length >= limit) {
        remaining++;
        continue;
      }
      items.push(t.builtin ? stripTypeMeta(o) : this.present(t, version, o));
      if (limit > 0 && items.length === limit) next = k;
    }
    const metadata: Record<string, unknown> = { resourceVersion: rv };
    if (remaining > 0 && next !== undefined) {
      metadata.continue = Buffer.from(JSON.stringify({ rv, after: next })).toString('base64url');
      metadata.remainingItemCount = remaining;
    }
    return { kind: t.listKind, apiVersion: apiVersionOf(t.group, version), metadata, items };
  }

  /**
   * A custom resource's list (or object) as a Table when kubectl asks for one (server-side
   * printing); otherwise `one` (a GET of one object) or the list as it is.
   */
  private table(
    tg: Target,
    req: IncomingMessage,
    r: { metadata: Record<string, unknown>; items: KObject[]; one?: KObject },
  ): object {
    const cols = tg.type.printerColumns?.get(tg.version);
    if (!cols || !wantsTable(req.headers.accept)) return r.one ?? r;
    return toTable(cols, r.items, String(r.metadata.resourceVersion ?? this.o.store.revision));
  }

  private deleteCollection(tg: Target, q: URLSearchParams, dryRun: boolean) {
    const { type: t, version } = tg;
    const { labels, fields } = this.selectors(t, q);
    const key = typeKey(t.group, t.plural);
    const items: KObject[] = [];
    for (const o of this.o.store.list(key, tg.namespace)) {
      if (!matchesLabels(labels, o.metadata.labels) || !matchesFields(fields, o)) continue;
      if (t.plural === 'namespaces' && PROTECTED_NAMESPACES.has(o.metadata.name!)) continue;
      items.push(this.present(t, version, dryRun ? o : this.remove(t, key, o)));
    }
    return {
      kind: t.listKind,
      apiVersion: apiVersionOf(t.group, version),
      metadata: { resourceVersion: String(this.o.store.revision) },
      items,
    };
  }

  // ---- watch ---------------------------------------------------------------------------------------

  private watch(tg: Target, q: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
    const { type: t, version } = tg;
    const store = this.o.store;
    const { labels, fields } = this.selectors(t, q);
    if (tg.name !== undefined) fields.push({ type: 'equals', field: 'metadata.name', value: tg.name });
    const rvParam = q.get('resourceVersion') ?? '';
    if (rvParam !== '' && !/^\d+$/.test(rvParam))
      throw errors.badRequest(`resourceVersion: Invalid value: "${rvParam}": must be a non-negative integer`);
    const timeoutSeconds = Number(q.get('timeoutSeconds') ?? 0);
    const bookmarks = q.get('allowWatchBookmarks') === 'true';
    const sendInitial = q.get('sendInitialEvents') === 'true';
    const key = typeKey(t.group, t.plural);
    const apiVersion = apiVersionOf(t.group, version);
    const matches = (o: KObject | undefined) =>
      o !== undefined &&
      (tg.namespace === undefined || o.metadata.namespace === tg.namespace) &&
      matchesLabels(labels, o.metadata.labels) &&
      matchesFields(fields, o);

    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache, private',
      'Transfer-Encoding': 'chunked',
    });
    res.flushHeaders();
    this.watches.set(res, key);
    const write = (type: string, object: unknown) => {
      if (res.writableEnded || res.destroyed) return;
      res.write(`${JSON.stringify({ type, object })}\n`);
      if (res.writableLength > 64 * 1024 * 1024) {
        this.log.warn({ resource: key }, 'watch client too slow; closing its stream');
        res.destroy();
      }
    };
    // A watch from a resourceVersion not yet reached starts there, as kube-apiserver's does.
    const startRev = /^\d+$/.test(rvParam) && rvParam !== '0' ? Number(rvParam) : 0;
    const emit = (ev: StoreEvent) => {
      if (ev.rev <= startRev) return;
      const now = matches(ev.obj);
      let type: string | undefined;
      if (ev.type === 'ADDED') type = now ? 'ADDED' : undefined;
      else if (ev.type === 'DELETED') type = matches(ev.prev ?? ev.obj) ? 'DELETED' : undefined;
      else {
        const before = matches(ev.prev);
        type = before && now ? 'MODIFIED' : now ? 'ADDED' : before ? 'DELETED' : undefined;
      }
      if (type) write(type, { ...ev.obj, apiVersion, kind: t.kind });
    };
    const bookmark = (annotations?: Record<string, string>) =>
      write('BOOKMARK', {
        kind: t.kind,
        apiVersion,
        metadata: { resourceVersion: String(store.revision), ...(annotations ? { annotations } : {}) },
      });

    let cleanup = () => {};
    const finish = () => {
      cleanup();
      this.watches.delete(res);
      if (!res.writableEnded) res.end();
    };
    if (rvParam === '' || rvParam === '0' || sendInitial) {
      for (const o of store.list(key, tg.namespace))
        if (matches(o)) write('ADDED', { ...o, apiVersion, kind: t.kind });
      if (sendInitial && bookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });
    } else {
      const rv = Number(rvParam);
      const backlog = store.eventsSince(key, rv);
      if (!backlog) {
        write('ERROR', errors.gone(`too old resource version: ${rv} (${store.compacted + 1})`).toStatus());
        finish();
        return;
      }
      for (const ev of backlog) emit(ev);
    }
    const unwatch = store.addWatcher({ typeKey: key, deliver: emit });
    const timers: NodeJS.Timeout[] = [];
    if (bookmarks && this.o.bookmarkMode === 'before-timeout') {
      if (timeoutSeconds > 0)
        timers.push(setTimeout(() => bookmark(), Math.max(0, timeoutSeconds * 1000 - 2000)));
    } else if (bookmarks) timers.push(setInterval(() => bookmark(), this.o.bookmarkIntervalMs));
    if (timeoutSeconds > 0) timers.push(setTimeout(finish, timeoutSeconds * 1000));
    cleanup = () => {
      unwatch();
      for (const tm of timers) clearTimeout(tm);
    };
    res.on('close', finish);
    req.on('close', () => {
      if (!res.writableEnded) finish();
    });
  }

  /** Ends every open watch stream (on shutdown). */
  endWatches(typeKeyFilter?: string): void {
    for (const [res, k] of this.watches) {
      if (typeKeyFilter !== undefined && k !== typeKeyFilter) continue;
      res.end();
      this.watches.delete(res);
    }
  }
}

function finalizersOf(o: KObject): string[] {
  const f = o.metadata.finalizers;
  return Array.isArray(f) ? f.map(String) : [];
}

const hasFinalizers = (o: KObject) => finalizersOf(o).length > 0;

function stripTypeMeta(o: KObject): KObject {
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return rest as KObject;
}

const VERSION = {
  major: '1',
  minor: '33',
  gitVersion: 'v1.33.0-podnet',
  gitCommit: 'podnet',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'n/a',
  compiler: 'podnet',
  platform: 'linux/amd64',
};

function send(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage, limit: number, optional = false): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limit) throw errors.tooLarge(limit);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') {
    if (optional) return undefined;
    throw errors.badRequest('the request body is empty');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw errors.badRequest(`the request body is not valid JSON: ${(err as Error).message}`);
  }
}

export interface Listener {
  server: Server;
  sockets: Set<Socket>;
  address: AddressInfo;
}

/** Starts listening; resolves once bound. */
export async function listen(
  core: ApiCore,
  opts: { host: string; port: number; tls?: { key: string; cert: string } },
): Promise<Listener> {
  const handler = (req: IncomingMessage, res: ServerResponse) => void core.handle(req, res);
  const server: Server = opts.tls
    ? createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }, handler)
    : createHttpServer(handler);
  // client-node 2.x opens a new connection (a new undici Agent) for every request and never reuses
  // it, so idle connections are closed soon rather than piling up.
  server.keepAliveTimeout = 5_000;
  const sockets = new Set<Socket>();
  server.on(opts.tls ? 'secureConnection' : 'connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, sockets, address: server.address() as AddressInfo };
}

export const generateToken = () => randomBytes(24).toString('base64url');

/**
 * Checks a list's resourceVersion and resourceVersionMatch as kube-apiserver does. This server
 * keeps no history, so every accepted form is answered from the current state, which satisfies
 * them all: `0` (any version, what informers send first), a version with NotOlderThan (or no
 * match: the legacy meaning is the same), and Exact of the current version.
 */
function listResourceVersion(q: URLSearchParams, revision: number): void {
  const rv = q.get('resourceVersion') ?? '';
  const match = q.get('resourceVersionMatch') ?? '';
  if (rv !== '' && !/^\d+$/.test(rv))
    throw errors.badRequest(`resourceVersion: Invalid value: "${rv}": must be a non-negative integer`);
  if (match === '') return;
  if (match !== 'NotOlderThan' && match !== 'Exact')
    throw errors.badRequest(
      `resourceVersionMatch: Unsupported value: "${match}": supported values: "Exact", "NotOlderThan"`,
    );
  if (rv === '')
    throw errors.badRequest(
      'resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided',
    );
  if (match === 'Exact' && rv === '0')
    throw errors.badRequest(
      'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
    );
  if (match === 'Exact' && Number(rv) !== revision)
    throw errors.gone(
      `The resourceVersion for the provided list is too old (${rv}); this server holds ${revision} only.`,
    );
}
