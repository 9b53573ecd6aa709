// Typed access to the Kubernetes API over @kubernetes/client-node 2.x.
//
// `loadKubeConfig` finds the cluster (explicit file, $KUBECONFIG, the in-cluster service account,
// then ~/.kube/config). `KubeClient.resource(IPPOOL)` gives a small typed client per resource whose
// reads are validated by the zod schema and whose writes are compare-and-swap on resourceVersion.
// Every API failure is a K8sError with a stable code.

import { createHash } from 'node:crypto';
import {
  ApiException,
  ApiextensionsV1Api,
  CoreV1Api,
  type CoreV1Event,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { K8S_ERR, K8sError, type SchemaError } from './errors.js';
import { type ResourceDef, safeValidate, validate } from './resources.js';
import type { ObjectMeta } from './schemas.js';

export interface LoadKubeConfigOptions {
  /** A kubeconfig file; wins over $KUBECONFIG and the in-cluster account. */
  kubeconfigPath?: string;
}

/** Loads a kubeconfig: the given file, else $KUBECONFIG, else in-cluster, else ~/.kube/config. */
export function loadKubeConfig(opts: LoadKubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (opts.kubeconfigPath) kc.loadFromFile(opts.kubeconfigPath);
    else if (!process.env.KUBECONFIG && process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else kc.loadFromDefault();
  } catch (err) {
    throw new K8sError(
      K8S_ERR.CONFIG,
      `cannot load kubeconfig ${opts.kubeconfigPath ?? process.env.KUBECONFIG ?? '(default)'}: ${(err as Error).message}`,
      undefined,
      { cause: err },
    );
  }
  if (!kc.getCurrentCluster()) {
    throw new K8sError(
      K8S_ERR.CONFIG,
      `kubeconfig ${opts.kubeconfigPath ?? process.env.KUBECONFIG ?? '(default)'} names no current cluster`,
    );
  }
  return kc;
}

type DispatcherFactory = (cluster: unknown, agentOptions: Record<string, unknown>) => unknown;
type Dispatch = (opts: Record<string, unknown>, handler: unknown) => boolean;
interface ComposableDispatcher {
  compose?: (interceptor: (dispatch: Dispatch) => Dispatch) => unknown;
}

/**
 * undici closes the connection after any request that carries a body with a method that does not
 * expect one (DELETE), unless the request says `reset: false`. Our deletes carry DeleteOptions
 * (the resourceVersion precondition), and both kube-apiserver and podnet-apiserver read that body,
 * so the connection stays usable: keep it.
 */
export function keepAliveOnDelete(dispatch: Dispatch): Dispatch {
  return (opts, handler) =>
    dispatch(opts.method === 'DELETE' && opts.reset == null ? { ...opts, reset: false } : opts, handler);
}

/** A short digest of the TLS material, so the cache key is cheap to build on every request. */
function digest(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string' || Buffer.isBuffer(v)) return createHash('sha256').update(v).digest('base64url');
  return createHash('sha256').update(JSON.stringify(v)).digest('base64url');
}

/**
 * client-node 2.0 builds a new undici Agent, hence a new TCP+TLS connection, for every request.
 * This keeps one per (server, TLS material) so requests reuse pooled keep-alive connections; the
 * headers (bearer tokens, which may rotate) are still applied per request by client-node. DELETEs
 * with a body keep their connection too (keepAliveOnDelete).
 */
function reuseConnections(kc: KubeConfig): { close(): Promise<void> } {
  const target = kc as unknown as { createDispatcher?: DispatcherFactory };
  const original = target.createDispatcher?.bind(kc);
  const cache = new Map<string, { agent: unknown; dispatcher: unknown }>();
  if (original) {
    target.createDispatcher = (cluster, agentOptions) => {
      const c = cluster as { server?: string; proxyUrl?: string } | null;
      const tlsKeys = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'];
      const key = [c?.server, c?.proxyUrl, ...tlsKeys.map((k) => digest(agentOptions[k]))].join('\n');
      let e = cache.get(key);
      if (!e) {
        const agent = original(cluster, agentOptions);
        const compose = (agent as ComposableDispatcher | undefined)?.compose;
        e = { agent, dispatcher: compose ? compose.call(agent, keepAliveOnDelete) : agent };
        cache.set(key, e);
      }
      return e.dispatcher;
    };
  }
  return {
    async close() {
      for (const e of cache.values())
        await (e.agent as { close?: () => Promise<void> } | undefined)?.close?.();
      cache.clear();
    },
  };
}

/**
 * Sends one JSON request for a resource client: resolves with the parsed body of a 2xx response and
 * throws ApiException (mapped by toK8sError like client-node's own) for any other status.
 */
export type DirectTransport = (
  method: string,
  path: string,
  body: unknown,
  fallback: () => Promise<unknown>,
) => Promise<unknown>;

interface RawDispatcher {
  request(opts: {
    origin: string;
    path: string;
    method: string;
    headers: Record<string, string>;
    body?: string;
  }): Promise<{ statusCode: number; headers: Record<string, unknown>; body: { text(): Promise<string> } }>;
}

/**
 * The hot verbs (get, create, replace, delete of custom resources) go straight to the pooled undici
 * dispatcher with client-node's own authentication (headers and TLS from the kubeconfig, applied per
 * request so rotating tokens keep working). It skips client-node's fetch, web streams and
 * ObjectSerializer, which cost about twice the client CPU of the request itself. Undefined when the
 * kubeconfig gives no dispatcher to use (no TLS settings): client-node sends the request then.
 */
function directTransport(kc: KubeConfig): DirectTransport | undefined {
  const server = kc.getCurrentCluster()?.server;
  if (!server) return undefined;
  const url = new URL(server);
  const prefix = url.pathname.replace(/\/+$/, '');
  const auth = kc as unknown as {
    applySecurityAuthentication(ctx: {
      setHeaderParam(k: string, v: string): void;
      setDispatcher(d: unknown): void;
    }): Promise<void>;
  };
  if (typeof auth.applySecurityAuthentication !== 'function') return undefined;
  return async (method, path, body, fallback) => {
    const headers: Record<string, string> = { accept: 'application/json' };
    let dispatcher: RawDispatcher | undefined;
    await auth.applySecurityAuthentication({
      setHeaderParam: (k, v) => {
        headers[k.toLowerCase()] = v;
      },
      setDispatcher: (d) => {
        dispatcher = d as RawDispatcher;
      },
    });
    if (!dispatcher || typeof dispatcher.request !== 'function') return fallback();
    const text = body === undefined ? undefined : JSON.stringify(body);
    if (text !== undefined) headers['content-type'] = 'application/json';
    const r = await dispatcher.request({
      origin: url.origin,
      path: prefix + path,
      method,
      headers,
      ...(text !== undefined ? { body: text } : {}),
    });
    const out = await r.body.text();
    if (r.statusCode < 200 || r.statusCode > 299)
      throw new ApiException(
        r.statusCode,
        `HTTP-Code: ${r.statusCode}`,
        out,
        r.headers as Record<string, string>,
      );
    return out ? JSON.parse(out) : {};
  };
}

/** Request counters, shared by every resource client of one KubeClient (benchmarks, metrics). */
export interface ClientStats {
  reads: number;
  writes: number;
  conflicts: number;
}

interface StatusBody {
  reason?: string;
  message?: string;
  code?: number;
}

function statusOf(body: unknown): StatusBody {
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as StatusBody;
    } catch {
      return { message: body };
    }
  }
  return (body ?? {}) as StatusBody;
}

/** Maps anything client-node throws onto a K8sError with a stable code. */
export function toK8sError(err: unknown, what: string): K8sError {
  if (err instanceof K8sError) return err;
  if (err instanceof ApiException) {
    const status = statusOf(err.body);
    const msg = `${what}: ${status.message ?? err.message}`;
    switch (err.code) {
      case 404:
        return new K8sError(K8S_ERR.NOT_FOUND, msg, 404, { cause: err });
      case 409:
        return new K8sError(
          status.reason === 'AlreadyExists' ? K8S_ERR.ALREADY_EXISTS : K8S_ERR.CONFLICT,
          msg,
          409,
          { cause: err },
        );
      case 410:
        return new K8sError(K8S_ERR.GONE, msg, 410, { cause: err });
      case 400:
      case 422:
        return new K8sError(K8S_ERR.INVALID, msg, err.code, { cause: err });
      case 401:
        return new K8sError(K8S_ERR.UNAUTHORIZED, msg, 401, { cause: err });
      case 403:
        return new K8sError(K8S_ERR.FORBIDDEN, msg, 403, { cause: err });
      default:
        return new K8sError(K8S_ERR.SERVER, `${msg} (HTTP ${err.code})`, err.code, { cause: err });
    }
  }
  const e = err as Error & { cause?: { code?: string; message?: string }; code?: string };
  const detail = e?.cause?.code ?? e?.code ?? e?.cause?.message ?? e?.message ?? String(err);
  return new K8sError(K8S_ERR.UNREACHABLE, `${what}: API server unreachable (${detail})`, undefined, {
    cause: err,
  });
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  namespace?: string;
}

export interface ListResult<T> {
  items: T[];
  /** The list's resourceVersion, where a watch resumes. */
  resourceVersion: string;
  /** Objects that failed validation: skipped, never fatal. */
  invalid: { name: string; error: SchemaError }[];
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Typed get/list/create/replace/patch/delete for one custom resource. */
export class ResourceClient<S extends z.ZodType> {
  constructor(
    readonly def: ResourceDef<S>,
    private readonly api: CustomObjectsApi,
    private readonly stats: ClientStats,
    private readonly direct?: DirectTransport,
  ) {}

  /** The object's URL path, for the direct transport. */
  private path(namespace: string | undefined, name?: string): string {
    const { group, version, plural } = this.def;
    const ns = this.def.namespaced ? `/namespaces/${encodeURIComponent(namespace!)}` : '';
    return `/apis/${group}/${version}${ns}/${plural}${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
  }

  private base(namespace?: string) {
    const { group, version, plural } = this.def;
    if (this.def.namespaced && !namespace) {
      throw new K8sError(K8S_ERR.INVALID, `${this.def.kind} is namespaced: metadata.namespace is required`);
    }
    return { group, version, plural, namespace: namespace ?? '' };
  }

  private what(verb: string, name?: string) {
    return `${verb} ${this.def.kind}${name ? ` ${JSON.stringify(name)}` : ''}`;
  }

  private async call<R>(what: string, write: boolean, fn: () => Promise<R>): Promise<R> {
    if (write) this.stats.writes++;
    else this.stats.reads++;
    try {
      return await fn();
    } catch (err) {
      const e = toK8sError(err, what);
      if (e.code === K8S_ERR.CONFLICT) this.stats.conflicts++;
      throw e;
    }
  }

  async get(name: string, namespace?: string): Promise<z.infer<S>> {
    const b = this.base(namespace);
    const raw = await this.call(this.what('get', name), false, () => {
      const viaClientNode = () =>
        this.def.namespaced
          ? this.api.getNamespacedCustomObject({ ...b, name })
          : this.api.getClusterCustomObject({ ...b, name });
      return this.direct
        ? this.direct('GET', this.path(namespace, name), undefined, viaClientNode)
        : viaClientNode();
    });
    return validate(this.def, raw);
  }

  /** Lists objects; invalid ones are returned apart in `invalid`, not thrown. */
  async list(opts: ListOptions = {}): Promise<ListResult<z.infer<S>>> {
    const { group, version, plural } = this.def;
    const q = { labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector };
    const raw = (await this.call(this.what('list'), false, () =>
      opts.namespace
        ? this.api.listNamespacedCustomObject({ group, version, plural, namespace: opts.namespace, ...q })
        : this.api.listClusterCustomObject({ group, version, plural, ...q }),
    )) as { items?: unknown[]; metadata?: { resourceVersion?: string } };
    const out: ListResult<z.infer<S>> = {
      items: [],
      resourceVersion: raw.metadata?.resourceVersion ?? '',
      invalid: [],
    };
    for (const item of raw.items ?? []) {
      const r = safeValidate(this.def, item);
      if (r.ok) out.items.push(r.value);
      else out.invalid.push({ name: String((item as KubeObject)?.metadata?.name ?? '?'), error: r.error });
    }
    return out;
  }

  /** Creates the object (validated first); ALREADY_EXISTS when the name is taken. */
  async create(obj: z.input<S>): Promise<z.infer<S>> {
    const body = this.outgoing(obj);
    const b = this.base(body.metadata.namespace);
    const raw = await this.call(this.what('create', body.metadata.name), true, () => {
      const viaClientNode = () =>
        this.def.namespaced
          ? this.api.createNamespacedCustomObject({ ...b, body })
          : this.api.createClusterCustomObject({ ...b, body });
      return this.direct
        ? this.direct('POST', this.path(body.metadata.namespace), body, viaClientNode)
        : viaClientNode();
    });
    return validate(this.def, raw);
  }

  /**
   * Replaces the object. With metadata.resourceVersion set this is a compare-and-swap: CONFLICT
   * when someone else wrote it first.
   */
  async replace(obj: z.input<S>): Promise<z.infer<S>> {
    const body = this.outgoing(obj);
    const b = this.base(body.metadata.namespace);
    const name = body.metadata.name;
    const raw = await this.call(this.what('replace', name), true, () => {
      const viaClientNode = () =>
        this.def.namespaced
          ? this.api.replaceNamespacedCustomObject({ ...b, name, body })
          : this.api.replaceClusterCustomObject({ ...b, name, body });
      return this.direct
        ? this.direct('PUT', this.path(body.metadata.namespace, name), body, viaClientNode)
        : viaClientNode();
    });
    return validate(this.def, raw);
  }

  /** Writes the status subresource (resources with statusSubresource). */
  async replaceStatus(obj: z.input<S>): Promise<z.infer<S>> {
    const body = this.outgoing(obj);
    const b = this.base(body.metadata.namespace);
    const name = body.metadata.name;
    const raw = await this.call(this.what('replace status of', name), true, () =>
      this.def.namespaced
        ? this.api.replaceNamespacedCustomObjectStatus({ ...b, name, body })
        : this.api.replaceClusterCustomObjectStatus({ ...b, name, body }),
    );
    return validate(this.def, raw);
  }

  /**
   * Merge-patches the status subresource with `status`, as a compare-and-swap when resourceVersion
   * is given. Works on objects that fail the schema too (their conditions say why): the answer is
   * not validated.
   */
  async patchStatus(
    name: string,
    status: Record<string, unknown>,
    opts: { resourceVersion?: string; namespace?: string } = {},
  ): Promise<void> {
    const b = this.base(opts.namespace);
    const body = {
      ...(opts.resourceVersion ? { metadata: { resourceVersion: opts.resourceVersion } } : {}),
      status,
    };
    await this.call(this.what('patch status of', name), true, () =>
      this.def.namespaced
        ? this.api.patchNamespacedCustomObjectStatus({ ...b, name, body }, mergePatch)
        : this.api.patchClusterCustomObjectStatus({ ...b, name, body }, mergePatch),
    );
  }

  /** JSON merge patch (RFC 7386). Include metadata.resourceVersion in the patch for CAS. */
  async patch(name: string, patch: Record<string, unknown>, namespace?: string): Promise<z.infer<S>> {
    const b = this.base(namespace);
    const raw = await this.call(this.what('patch', name), true, () =>
      this.def.namespaced
        ? this.api.patchNamespacedCustomObject({ ...b, name, body: patch }, mergePatch)
        : this.api.patchClusterCustomObject({ ...b, name, body: patch }, mergePatch),
    );
    return validate(this.def, raw);
  }

  /** Deletes; with `resourceVersion` only if unchanged since (CONFLICT otherwise). */
  async delete(name: string, opts: { namespace?: string; resourceVersion?: string } = {}): Promise<void> {
    const b = this.base(opts.namespace);
    const body = opts.resourceVersion
      ? { preconditions: { resourceVersion: opts.resourceVersion } }
      : undefined;
    await this.call(this.what('delete', name), true, () => {
      const viaClientNode = () =>
        this.def.namespaced
          ? this.api.deleteNamespacedCustomObject({ ...b, name, body })
          : this.api.deleteClusterCustomObject({ ...b, name, body });
      return this.direct
        ? this.direct('DELETE', this.path(opts.namespace, name), body, viaClientNode)
        : viaClientNode();
    });
  }

  private outgoing(obj: z.input<S>): KubeObject {
    const v = validate(this.def, obj) as KubeObject;
    return { ...v, apiVersion: `${this.def.group}/${this.def.version}`, kind: this.def.kind };
  }
}

export interface KubeClientOptions extends LoadKubeConfigOptions {
  kubeConfig?: KubeConfig;
  logger?: Logger;
  /**
   * Send get/create/replace/delete of custom resources straight over the pooled connection
   * (client-node's authentication, not its fetch pipeline). Default true; false uses client-node
   * for every request.
   */
  directRequests?: boolean;
}

/** One connection to the API server: typed resource clients plus the core objects podnet reads. */
export class KubeClient {
  readonly kc: KubeConfig;
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  readonly extensions: ApiextensionsV1Api;
  readonly stats: ClientStats = { reads: 0, writes: 0, conflicts: 0 };
  private readonly clients = new Map<ResourceDef, ResourceClient<z.ZodType>>();
  private readonly connections: { close(): Promise<void> };
  private readonly direct: DirectTransport | undefined;

  constructor(opts: KubeClientOptions = {}) {
    this.kc = opts.kubeConfig ?? loadKubeConfig(opts);
    this.connections = reuseConnections(this.kc);
    this.direct = opts.directRequests === false ? undefined : directTransport(this.kc);
    this.custom = this.kc.makeApiClient(CustomObjectsApi);
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.extensions = this.kc.makeApiClient(ApiextensionsV1Api);
  }

  /** Closes the pooled connections (watches end too). */
  async close(): Promise<void> {
    await this.connections.close();
  }

  resource<S extends z.ZodType>(def: ResourceDef<S>): ResourceClient<S> {
    let c = this.clients.get(def as ResourceDef);
    if (!c) {
      c = new ResourceClient(def as ResourceDef, this.custom, this.stats, this.direct);
      this.clients.set(def as ResourceDef, c);
    }
    return c as unknown as ResourceClient<S>;
  }

  async getNode(name: string): Promise<V1Node> {
    this.stats.reads++;
    try {
      return await this.core.readNode({ name });
    } catch (err) {
      throw toK8sError(err, `get Node ${JSON.stringify(name)}`);
    }
  }

  async listNodes(opts: { labelSelector?: string } = {}): Promise<V1Node[]> {
    this.stats.reads++;
    try {
      return (await this.core.listNode(opts)).items;
    } catch (err) {
      throw toK8sError(err, 'list Node');
    }
  }

  /** Merge-patches a Node's annotations (null removes one). */
  async annotateNode(name: string, annotations: Record<string, string | null>): Promise<V1Node> {
    this.stats.writes++;
    try {
      return await this.core.patchNode({ name, body: { metadata: { annotations } } }, mergePatch);
    } catch (err) {
      throw toK8sError(err, `annotate Node ${JSON.stringify(name)}`);
    }
  }

  /** Creates a core/v1 Event (namespace `default` for a cluster-scoped object). */
  async createEvent(event: CoreV1Event): Promise<void> {
    this.stats.writes++;
    const namespace = event.metadata?.namespace ?? 'default';
    try {
      await this.core.createNamespacedEvent({ namespace, body: event });
    } catch (err) {
      throw toK8sError(err, `create Event for ${event.involvedObject.kind} ${event.involvedObject.name}`);
    }
  }

  async listPods(opts: ListOptions = {}): Promise<V1Pod[]> {
    this.stats.reads++;
    const q = { labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector };
    try {
      const r = opts.namespace
        ? await this.core.listNamespacedPod({ namespace: opts.namespace, ...q })
        : await this.core.listPodForAllNamespaces(q);
      return r.items;
    } catch (err) {
      throw toK8sError(err, 'list Pod');
    }
  }

  /** The pod, or undefined when it does not exist. */
  async findPod(namespace: string, name: string): Promise<V1Pod | undefined> {
    this.stats.reads++;
    try {
      return await this.core.readNamespacedPod({ namespace, name });
    } catch (err) {
      const e = toK8sError(err, `get Pod ${namespace}/${name}`);
      if (e.code === K8S_ERR.NOT_FOUND) return undefined;
      throw e;
    }
  }
}
