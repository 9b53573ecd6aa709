// Typed access to the Kubernetes API over @kubernetes/client-node 2.x.
//
// `loadKubeConfig` finds the cluster (explicit file, $KUBECONFIG, the in-cluster service account,
// then ~/.kube/config). `KubeClient.resource(IPPOOL)` gives a small typed client per resource whose
// reads are validated by the zod schema and whose writes are compare-and-swap on resourceVersion.
// Every API failure is a K8sError with a stable code.

import { createHash } from 'node:crypto';
import type { Agent as HttpAgent } from 'node:http';
import { createRequire } from 'node:module';
import type {
  ApiextensionsV1Api,
  CoreV1Api,
  CoreV1Event,
  CustomObjectsApi,
  KubeConfig,
  V1Node,
  V1Pod,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { K8S_ERR, K8sError, type SchemaError } from './errors.js';
import { type ResourceDef, safeValidate, validate } from './resources.js';
import type { ObjectMeta } from './schemas.js';
import { HttpStatusError, loadKubeTarget, type RequestOptions, Transport, targetAuth } from './transport.js';

type ClientNode = typeof import('@kubernetes/client-node');
let clientNode: ClientNode | undefined;
/**
 * @kubernetes/client-node in full (every generated API and model, ~80 MB of RSS), loaded on first
 * use only: by a kubeconfig the light transport does not serve, or by a caller of `kc`, `core`,
 * `custom` or `extensions`.
 */
export function fullClientNode(): ClientNode {
  clientNode ??= createRequire(import.meta.url)('@kubernetes/client-node') as ClientNode;
  return clientNode;
}

/** Whether @kubernetes/client-node has been loaded in full in this process. */
export function clientNodeLoaded(): boolean {
  return clientNode !== undefined;
}

export interface LoadKubeConfigOptions {
  /** A kubeconfig file; wins over $KUBECONFIG and the in-cluster account. */
  kubeconfigPath?: string;
}

/** Loads a kubeconfig: the given file, else $KUBECONFIG, else in-cluster, else ~/.kube/config. */
export function loadKubeConfig(opts: LoadKubeConfigOptions = {}): KubeConfig {
  const kc = new (fullClientNode().KubeConfig)();
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

/** client-node's ApiException, recognised without loading client-node. */
function isApiException(err: unknown): boolean {
  const e = err as { code?: unknown; body?: unknown; headers?: unknown } | null;
  return typeof e === 'object' && e !== null && typeof e.code === 'number' && 'body' in e && 'headers' in e;
}

/** Maps anything client-node throws onto a K8sError with a stable code. */
export function toK8sError(err: unknown, what: string): K8sError {
  if (err instanceof K8sError) return err;
  if (err instanceof HttpStatusError || isApiException(err)) {
    const e = err as { code: number; body: unknown; message: string };
    const status = statusOf(e.body);
    const msg = `${what}: ${status.message ?? e.message}`;
    switch (e.code) {
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
        return new K8sError(K8S_ERR.INVALID, msg, e.code, { cause: err });
      case 401:
        return new K8sError(K8S_ERR.UNAUTHORIZED, msg, 401, { cause: err });
      case 403:
        return new K8sError(K8S_ERR.FORBIDDEN, msg, 403, { cause: err });
      default:
        return new K8sError(K8S_ERR.SERVER, `${msg} (HTTP ${e.code})`, e.code, { cause: err });
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

/** The Content-Type of a JSON merge patch (RFC 7386). */
export const MERGE_PATCH = 'application/merge-patch+json';

/** One JSON request to the API server (KubeClient.request). */
export type Send = (method: string, path: string, o?: RequestOptions) => Promise<unknown>;

/** Typed get/list/create/replace/patch/delete for one custom resource. */
export class ResourceClient<S extends z.ZodType> {
  constructor(
    readonly def: ResourceDef<S>,
    private readonly send: Send,
    private readonly stats: ClientStats,
  ) {}

  /** The collection's or the object's URL path. */
  private path(namespace: string | undefined, name?: string, sub = ''): string {
    const { group, version, plural } = this.def;
    if (this.def.namespaced && !namespace) {
      throw new K8sError(K8S_ERR.INVALID, `${this.def.kind} is namespaced: metadata.namespace is required`);
    }
    const ns = this.def.namespaced ? `/namespaces/${encodeURIComponent(namespace!)}` : '';
    return `/apis/${group}/${version}${ns}/${plural}${name === undefined ? '' : `/${encodeURIComponent(name)}`}${sub}`;
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
    const path = this.path(namespace, name);
    const raw = await this.call(this.what('get', name), false, () => this.send('GET', path));
    return validate(this.def, raw);
  }

  /** Lists objects; invalid ones are returned apart in `invalid`, not thrown. */
  async list(opts: ListOptions = {}): Promise<ListResult<z.infer<S>>> {
    const { group, version, plural } = this.def;
    const path = opts.namespace
      ? `/apis/${group}/${version}/namespaces/${encodeURIComponent(opts.namespace)}/${plural}`
      : `/apis/${group}/${version}/${plural}`;
    const query = { labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector };
    const raw = (await this.call(this.what('list'), false, () => this.send('GET', path, { query }))) as {
      items?: unknown[];
      metadata?: { resourceVersion?: string };
    };
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
    const path = this.path(body.metadata.namespace);
    const raw = await this.call(this.what('create', body.metadata.name), true, () =>
      this.send('POST', path, { body }),
    );
    return validate(this.def, raw);
  }

  /**
   * Replaces the object. With metadata.resourceVersion set this is a compare-and-swap: CONFLICT
   * when someone else wrote it first.
   */
  async replace(obj: z.input<S>): Promise<z.infer<S>> {
    const body = this.outgoing(obj);
    const name = body.metadata.name;
    const path = this.path(body.metadata.namespace, name);
    const raw = await this.call(this.what('replace', name), true, () => this.send('PUT', path, { body }));
    return validate(this.def, raw);
  }

  /** Writes the status subresource (resources with statusSubresource). */
  async replaceStatus(obj: z.input<S>): Promise<z.infer<S>> {
    const body = this.outgoing(obj);
    const name = body.metadata.name;
    const path = this.path(body.metadata.namespace, name, '/status');
    const raw = await this.call(this.what('replace status of', name), true, () =>
      this.send('PUT', path, { body }),
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
    const path = this.path(opts.namespace, name, '/status');
    const body = {
      ...(opts.resourceVersion ? { metadata: { resourceVersion: opts.resourceVersion } } : {}),
      status,
    };
    await this.call(this.what('patch status of', name), true, () =>
      this.send('PATCH', path, { body, contentType: MERGE_PATCH }),
    );
  }

  /** JSON merge patch (RFC 7386). Include metadata.resourceVersion in the patch for CAS. */
  async patch(name: string, patch: Record<string, unknown>, namespace?: string): Promise<z.infer<S>> {
    const path = this.path(namespace, name);
    const raw = await this.call(this.what('patch', name), true, () =>
      this.send('PATCH', path, { body: patch, contentType: MERGE_PATCH }),
    );
    return validate(this.def, raw);
  }

  /** Deletes; with `resourceVersion` only if unchanged since (CONFLICT otherwise). */
  async delete(name: string, opts: { namespace?: string; resourceVersion?: string } = {}): Promise<void> {
    const path = this.path(opts.namespace, name);
    const body = opts.resourceVersion
      ? { preconditions: { resourceVersion: opts.resourceVersion } }
      : undefined;
    await this.call(this.what('delete', name), true, () => this.send('DELETE', path, body ? { body } : {}));
  }

  private outgoing(obj: z.input<S>): KubeObject {
    const v = validate(this.def, obj) as KubeObject;
    return { ...v, apiVersion: `${this.def.group}/${this.def.version}`, kind: this.def.kind };
  }
}

export interface KubeClientOptions extends LoadKubeConfigOptions {
  /** A loaded KubeConfig: requests then authenticate through it (client-node loaded in full). */
  kubeConfig?: KubeConfig;
  logger?: Logger;
  /**
   * false: authenticate every request through client-node's KubeConfig (loaded in full) even when
   * the kubeconfig is one the light reader serves. Default true.
   */
  directRequests?: boolean;
}

/**
 * One connection to the API server: typed resource clients plus the core objects podnet reads.
 * Requests go over pooled keep-alive connections (transport.ts). `kc`, `core`, `custom` and
 * `extensions` (client-node's KubeConfig and generated APIs) load client-node in full on first use.
 */
export class KubeClient {
  readonly stats: ClientStats = { reads: 0, writes: 0, conflicts: 0 };
  private readonly clients = new Map<ResourceDef, ResourceClient<z.ZodType>>();
  private connections: { close(): Promise<void> } | undefined;
  private readonly transport: Transport;
  private readonly kubeconfigPath: string | undefined;
  private loaded: KubeConfig | undefined;
  private apis: { core?: CoreV1Api; custom?: CustomObjectsApi; extensions?: ApiextensionsV1Api } = {};

  constructor(opts: KubeClientOptions = {}) {
    this.kubeconfigPath = opts.kubeconfigPath;
    let target: ReturnType<typeof loadKubeTarget>;
    if (!opts.kubeConfig && opts.directRequests !== false) {
      try {
        target = loadKubeTarget(opts.kubeconfigPath);
      } catch {
        target = undefined; // loadKubeConfig below reports it with client-node's message
      }
    }
    if (opts.kubeConfig) this.loaded = opts.kubeConfig;
    if (target) {
      this.transport = new Transport(target.cluster.server, targetAuth(target));
    } else {
      const kc = this.kc;
      const server = kc.getCurrentCluster()!.server;
      this.transport = new Transport(server, async () => {
        const o: { headers?: Record<string, string>; agent?: HttpAgent } = {};
        await kc.applyToHTTPSOptions(o as never);
        return { headers: o.headers ?? {}, agent: o.agent! };
      });
    }
  }

  /** client-node's KubeConfig for the same kubeconfig (loads client-node in full). */
  get kc(): KubeConfig {
    if (!this.loaded) this.loaded = loadKubeConfig({ kubeconfigPath: this.kubeconfigPath });
    if (!this.connections) this.connections = reuseConnections(this.loaded);
    return this.loaded;
  }

  get core(): CoreV1Api {
    this.apis.core ??= this.kc.makeApiClient(fullClientNode().CoreV1Api);
    return this.apis.core;
  }

  get custom(): CustomObjectsApi {
    this.apis.custom ??= this.kc.makeApiClient(fullClientNode().CustomObjectsApi);
    return this.apis.custom;
  }

  get extensions(): ApiextensionsV1Api {
    this.apis.extensions ??= this.kc.makeApiClient(fullClientNode().ApiextensionsV1Api);
    return this.apis.extensions;
  }

  /** One JSON request over the pooled connections; failures are HttpStatusError (see toK8sError). */
  readonly request: Send = (method, path, o) => this.transport.request(method, path, o);

  /** Opens a streaming GET (a watch); the caller reads and ends the response. */
  open(path: string, o: RequestOptions): ReturnType<Transport['open']> {
    return this.transport.open('GET', path, o);
  }

  /** Closes the pooled connections (watches end too). */
  async close(): Promise<void> {
    this.transport.close();
    await this.connections?.close();
  }

  resource<S extends z.ZodType>(def: ResourceDef<S>): ResourceClient<S> {
    let c = this.clients.get(def as ResourceDef);
    if (!c) {
      c = new ResourceClient(def as ResourceDef, this.request, this.stats);
      this.clients.set(def as ResourceDef, c);
    }
    return c as unknown as ResourceClient<S>;
  }

  async getNode(name: string): Promise<V1Node> {
    this.stats.reads++;
    try {
      return (await this.request('GET', `/api/v1/nodes/${encodeURIComponent(name)}`)) as V1Node;
    } catch (err) {
      throw toK8sError(err, `get Node ${JSON.stringify(name)}`);
    }
  }

  async listNodes(opts: { labelSelector?: string } = {}): Promise<V1Node[]> {
    this.stats.reads++;
    try {
      const r = (await this.request('GET', '/api/v1/nodes', { query: { ...opts } })) as { items?: V1Node[] };
      return r.items ?? [];
    } catch (err) {
      throw toK8sError(err, 'list Node');
    }
  }

  /** Merge-patches a Node's annotations (null removes one). */
  async annotateNode(name: string, annotations: Record<string, string | null>): Promise<V1Node> {
    this.stats.writes++;
    try {
      return (await this.request('PATCH', `/api/v1/nodes/${encodeURIComponent(name)}`, {
        body: { metadata: { annotations } },
        contentType: MERGE_PATCH,
      })) as V1Node;
    } catch (err) {
      throw toK8sError(err, `annotate Node ${JSON.stringify(name)}`);
    }
  }

  /** Creates a core/v1 Event (namespace `default` for a cluster-scoped object). */
  async createEvent(event: CoreV1Event): Promise<void> {
    this.stats.writes++;
    const namespace = event.metadata?.namespace ?? 'default';
    try {
      await this.request('POST', `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`, {
        body: { apiVersion: 'v1', kind: 'Event', ...event },
      });
    } catch (err) {
      throw toK8sError(err, `create Event for ${event.involvedObject.kind} ${event.involvedObject.name}`);
    }
  }

  async listPods(opts: ListOptions = {}): Promise<V1Pod[]> {
    this.stats.reads++;
    const query = { labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector };
    try {
      const path = opts.namespace
        ? `/api/v1/namespaces/${encodeURIComponent(opts.namespace)}/pods`
        : '/api/v1/pods';
      const r = (await this.request('GET', path, { query })) as { items?: V1Pod[] };
      return r.items ?? [];
    } catch (err) {
      throw toK8sError(err, 'list Pod');
    }
  }

  /** The pod, or undefined when it does not exist. */
  async findPod(namespace: string, name: string): Promise<V1Pod | undefined> {
    this.stats.reads++;
    try {
      return (await this.request(
        'GET',
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`,
      )) as V1Pod;
    } catch (err) {
      const e = toK8sError(err, `get Pod ${namespace}/${name}`);
      if (e.code === K8S_ERR.NOT_FOUND) return undefined;
      throw e;
    }
  }
}
