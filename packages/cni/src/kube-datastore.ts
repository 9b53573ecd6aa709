// The Datastore over the Kubernetes API: @podnet/ipam on an HTTP object store (kube-store.ts) for
// addresses, and MiniKube for the pod annotation and STATUS. IPAM and datastore failures become
// CNI codes: unreachable, CAS conflicts or a busy handle → 11, pools exhausted or none for the node
// → 100, anything else → 101.
import { IPAM_ERR, Ipam, IpamError, type IpamOptions } from '@podnet/ipam';
import { K8S_ERR, K8sError, matchesSelector, parseSelector } from '@podnet/k8s';
import type { PluginConfig } from './config.js';
import {
  type AllocateRequest,
  type Allocation,
  ANNOTATION_POD_IP,
  ANNOTATION_POD_IPS,
  type Datastore,
  type DatastoreStatus,
} from './datastore.js';
import type { PodRef } from './env.js';
import { CniError, CniErrorCode } from './errors.js';
import { KubeHttpError, loadKubeTarget, MiniKube } from './kube.js';
import { httpIpamStore } from './kube-store.js';
import type { Log } from './plugin.js';

function unreachable(err: unknown): CniError | undefined {
  for (let e: unknown = err, i = 0; e && i < 8; e = (e as { cause?: unknown }).cause, i++) {
    if (e instanceof CniError && e.code === CniErrorCode.TryAgainLater) return e;
    if (e instanceof K8sError && e.code === K8S_ERR.UNREACHABLE) {
      return new CniError(CniErrorCode.TryAgainLater, e.message, undefined, { cause: err });
    }
  }
  return undefined;
}

/** Maps an IPAM or datastore failure onto a CNI error. */
export function toCniIpamError(err: unknown, what: string): CniError {
  if (err instanceof CniError) return err;
  const down = unreachable(err);
  if (down)
    return new CniError(CniErrorCode.TryAgainLater, `${what}: ${down.message}`, undefined, { cause: err });
  if (err instanceof IpamError) {
    if (err.code === IPAM_ERR.POOL_EXHAUSTED || err.code === IPAM_ERR.NO_POOL_FOR_NODE) {
      return new CniError(CniErrorCode.IpamExhausted, `${what}: ${err.message}`, err.code, { cause: err });
    }
    // Both pass: too many compare-and-swap conflicts, or another ADD for the same container still
    // holds the handle. The runtime should retry.
    if (err.code === IPAM_ERR.TOO_MANY_CONFLICTS || err.code === IPAM_ERR.HANDLE_BUSY) {
      return new CniError(CniErrorCode.TryAgainLater, `${what}: ${err.message}`, err.code, { cause: err });
    }
    return new CniError(CniErrorCode.IpamFailure, `${what}: ${err.message}`, err.code, { cause: err });
  }
  return new CniError(
    CniErrorCode.IpamFailure,
    `${what}: ${(err as Error)?.message ?? String(err)}`,
    undefined,
    {
      cause: err,
    },
  );
}

export class KubeDatastore implements Datastore {
  private readonly store;
  /** The IPAM instance (its pool and block caches) this datastore allocates with. */
  readonly ipam: Ipam;

  constructor(
    private readonly kube: MiniKube,
    private readonly log: Log,
  ) {
    this.store = httpIpamStore(kube);
    // ipam logs through the plugin's logger (the same lazily created pino, same level).
    this.ipam = new Ipam({
      datastore: this.store,
      logger: log as unknown as NonNullable<IpamOptions['logger']>,
    });
  }

  async allocate(req: AllocateRequest): Promise<Allocation> {
    const pools = [...req.ipv4Pools, ...req.ipv6Pools];
    try {
      const r = await this.ipam.allocate({
        handle: req.handle,
        node: req.node,
        ipv4: req.ipv4,
        ipv6: req.ipv6,
        attrs: req.attrs,
        ...(pools.length > 0 ? { pools } : {}),
      });
      return { ipv4: r.ipv4?.address, ipv6: r.ipv6?.address };
    } catch (err) {
      throw toCniIpamError(err, `allocating for ${req.handle} on node ${req.node}`);
    }
  }

  async releaseByHandle(handle: string): Promise<void> {
    try {
      const released = await this.ipam.releaseByHandle(handle);
      this.log.debug({ handle, released: released.map((r) => r.address) }, 'released');
    } catch (err) {
      if (err instanceof IpamError && err.code === IPAM_ERR.NOT_ALLOCATED) return;
      if (err instanceof K8sError && err.code === K8S_ERR.NOT_FOUND) return;
      throw toCniIpamError(err, `releasing ${handle}`);
    }
  }

  async annotatePod(pod: PodRef, ips: string[]): Promise<void> {
    const path = `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}`;
    const patch = {
      metadata: { annotations: { [ANNOTATION_POD_IP]: ips[0] ?? '', [ANNOTATION_POD_IPS]: ips.join(',') } },
    };
    try {
      await this.kube.request('PATCH', path, patch, 'application/merge-patch+json');
    } catch (err) {
      if (err instanceof KubeHttpError && err.status === 404) {
        this.log.warn({ pod: `${pod.namespace}/${pod.name}` }, 'pod not found: not annotated');
        return;
      }
      if (err instanceof CniError) throw err;
      throw new CniError(
        CniErrorCode.DatastoreFailure,
        `annotating pod ${pod.namespace}/${pod.name}: ${(err as Error).message}`,
      );
    }
  }

  async listHandles(node: string, prefix: string): Promise<string[]> {
    try {
      const blocks = await this.store.blocks.list();
      const out = new Set<string>();
      for (const b of blocks.items) {
        for (const a of b.spec.attributes) {
          if (a.handleID.startsWith(prefix) && a.secondary?.node === node) out.add(a.handleID);
        }
      }
      return [...out];
    } catch (err) {
      throw toCniIpamError(err, 'listing allocations');
    }
  }

  async status(node: string): Promise<DatastoreStatus> {
    let pools: Awaited<ReturnType<typeof this.store.pools.list>>;
    let labels: Record<string, string> | undefined;
    try {
      pools = await this.store.pools.list();
      labels = await this.store.nodeLabels(node);
    } catch (err) {
      return { reachable: false, usablePool: false, detail: (err as Error).message };
    }
    const usable = pools.items.filter(
      (p) => !p.spec.disabled && matchesSelector(parseSelector(p.spec.nodeSelector ?? 'all()'), labels ?? {}),
    );
    if (usable.length === 0) {
      return { reachable: true, usablePool: false, detail: `no enabled IPPool selects node ${node}` };
    }
    return {
      reachable: true,
      usablePool: true,
      detail: `pools ${usable.map((p) => p.metadata.name).join(', ')}`,
    };
  }

  stats(): { requests: number; ms: number; calls: string[] } {
    const { requests, ms, calls } = this.kube.stats;
    return { requests, ms: Math.round(ms), calls: [...calls] };
  }

  async close(): Promise<void> {
    this.kube.close();
  }
}

export async function openKubeDatastore(cfg: PluginConfig, log: Log): Promise<Datastore> {
  const kube = new MiniKube(
    loadKubeTarget(cfg.kubeconfig, process.env, cfg.cacheDir),
    cfg.datastoreTimeoutMs,
  );
  return new KubeDatastore(kube, log);
}
