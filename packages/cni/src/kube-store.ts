// IPAM's datastore view (get/list/create/replace/delete with compare-and-swap on resourceVersion,
// plus node labels and pod existence) over MiniKube instead of @kubernetes/client-node. Objects
// are validated by the @podnet/k8s zod schemas on the way in and out, and HTTP failures become
// K8sErrors with the same codes KubeClient uses, so @podnet/ipam cannot tell the two apart.
import {
  BLOCKAFFINITY,
  IPAMBLOCK,
  IPAMHANDLE,
  IPPOOL,
  K8S_ERR,
  K8sError,
  type ResourceDef,
  type SchemaError,
  safeValidate,
  validate,
} from '@podnet/k8s';
import type { z } from 'zod';
import { CniError } from './errors.js';
import { KubeHttpError, type MiniKube } from './kube.js';

export interface HttpObjectStore<T, I> {
  get(name: string): Promise<T>;
  list(opts?: {
    labelSelector?: string;
  }): Promise<{ items: T[]; invalid: { name: string; error: SchemaError }[] }>;
  create(obj: I): Promise<T>;
  replace(obj: I): Promise<T>;
  delete(name: string, opts?: { resourceVersion?: string }): Promise<void>;
}

/** Maps a MiniKube failure onto the K8sError codes @podnet/ipam understands. */
export function toK8s(err: unknown, what: string): Error {
  if (err instanceof K8sError) return err;
  if (err instanceof KubeHttpError) {
    const code =
      err.status === 404
        ? K8S_ERR.NOT_FOUND
        : err.status === 409
          ? err.reason === 'AlreadyExists'
            ? K8S_ERR.ALREADY_EXISTS
            : K8S_ERR.CONFLICT
          : err.status === 410
            ? K8S_ERR.GONE
            : err.status === 401
              ? K8S_ERR.UNAUTHORIZED
              : err.status === 403
                ? K8S_ERR.FORBIDDEN
                : err.status === 400 || err.status === 422
                  ? K8S_ERR.INVALID
                  : K8S_ERR.SERVER;
    return new K8sError(code, `${what}: ${err.message}`, err.status, { cause: err });
  }
  if (err instanceof CniError)
    return new K8sError(K8S_ERR.UNREACHABLE, `${what}: ${err.message}`, undefined, { cause: err });
  return new K8sError(K8S_ERR.SERVER, `${what}: ${(err as Error)?.message ?? String(err)}`, undefined, {
    cause: err,
  });
}

// biome-ignore lint/suspicious/noExplicitAny: schemas with transforms have differing input types
function store<S extends z.ZodType<any, any>>(
  kube: MiniKube,
  def: ResourceDef<S>,
): HttpObjectStore<z.infer<S>, z.input<S>> {
  const base = `/apis/${def.group}/${def.version}/${def.plural}`;
  const outgoing = (obj: z.input<S>) => {
    const v = validate(def, obj) as { metadata: { name: string } };
    return { ...v, apiVersion: `${def.group}/${def.version}`, kind: def.kind };
  };
  const call = async <R>(what: string, fn: () => Promise<R>): Promise<R> => {
    try {
      return await fn();
    } catch (err) {
      throw toK8s(err, what);
    }
  };
  return {
    get: (name) =>
      call(`get ${def.kind} ${name}`, async () =>
        validate(def, await kube.request('GET', `${base}/${name}`)),
      ),
    list: (opts = {}) =>
      call(`list ${def.kind}`, async () => {
        const q = opts.labelSelector ? `?labelSelector=${encodeURIComponent(opts.labelSelector)}` : '';
        const raw = await kube.request<{ items?: unknown[] }>('GET', `${base}${q}`);
        const out = { items: [] as z.infer<S>[], invalid: [] as { name: string; error: SchemaError }[] };
        for (const item of raw.items ?? []) {
          const r = safeValidate(def, item);
          if (r.ok) out.items.push(r.value);
          else
            out.invalid.push({
              name: String((item as { metadata?: { name?: string } }).metadata?.name ?? '?'),
              error: r.error,
            });
        }
        return out;
      }),
    create: (obj) =>
      call(`create ${def.kind}`, async () => validate(def, await kube.request('POST', base, outgoing(obj)))),
    replace: (obj) => {
      const body = outgoing(obj);
      return call(`replace ${def.kind} ${body.metadata.name}`, async () =>
        validate(def, await kube.request('PUT', `${base}/${body.metadata.name}`, body)),
      );
    },
    delete: (name, opts = {}) =>
      call(`delete ${def.kind} ${name}`, async () => {
        const body = opts.resourceVersion
          ? {
              kind: 'DeleteOptions',
              apiVersion: 'v1',
              preconditions: { resourceVersion: opts.resourceVersion },
            }
          : undefined;
        await kube.request('DELETE', `${base}/${name}`, body);
      }),
  };
}

export function httpIpamStore(kube: MiniKube) {
  return {
    pools: store(kube, IPPOOL),
    blocks: store(kube, IPAMBLOCK),
    affinities: store(kube, BLOCKAFFINITY),
    handles: store(kube, IPAMHANDLE),
    async nodeLabels(node: string): Promise<Record<string, string> | undefined> {
      try {
        const n = await kube.request<{ metadata?: { labels?: Record<string, string> } }>(
          'GET',
          `/api/v1/nodes/${node}`,
        );
        return n.metadata?.labels ?? {};
      } catch (err) {
        if (err instanceof KubeHttpError && err.status === 404) return undefined;
        throw toK8s(err, `get Node ${node}`);
      }
    },
    async podExists(namespace: string, name: string): Promise<boolean> {
      try {
        await kube.request('GET', `/api/v1/namespaces/${namespace}/pods/${name}`);
        return true;
      } catch (err) {
        if (err instanceof KubeHttpError && err.status === 404) return false;
        throw toK8s(err, `get Pod ${namespace}/${name}`);
      }
    },
  };
}
