// Cluster-wide watches of Services and EndpointSlices, kept as small projections (only the fields
// service-routes.ts reads), and the Events for what a Service asks that is not announced.
import {
  Informer,
  type InformerSource,
  isK8sError,
  K8S_ERR,
  type KubeClient,
  type Meta,
  rawList,
} from '@podnet/k8s';
import type { Logger } from 'pino';
import type { EventRecorder } from './events.js';
import {
  COMMUNITIES_ANNOTATION,
  type EndpointSliceView,
  LOCAL_PREFERENCE_ANNOTATION,
  type ServiceProblem,
  type ServiceView,
} from './service-routes.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

type Projected<T> = T & Required<Pick<Meta, 'metadata'>>;

interface RawService {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
  };
  spec?: {
    type?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    externalIPs?: string[];
    externalTrafficPolicy?: string;
  };
  status?: { loadBalancer?: { ingress?: { ip?: string }[] } };
}

interface RawSlice {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  addressType?: string;
  endpoints?: {
    nodeName?: string;
    /** discovery.k8s.io/v1beta1 (Kubernetes 1.20) names the node here. */
    topology?: Record<string, string>;
    conditions?: { ready?: boolean | null };
  }[];
}

/** The fields of a Service the agent keeps (the rest of the object is dropped on arrival). */
export function projectService(raw: RawService): ServiceView {
  const m = raw.metadata ?? {};
  const s = raw.spec ?? {};
  const annotations: Record<string, string> = {};
  for (const k of [COMMUNITIES_ANNOTATION, LOCAL_PREFERENCE_ANNOTATION]) {
    const v = m.annotations?.[k];
    if (v !== undefined) annotations[k] = v;
  }
  return {
    namespace: m.namespace ?? '',
    name: m.name ?? '',
    ...(m.uid ? { uid: m.uid } : {}),
    type: s.type ?? 'ClusterIP',
    clusterIPs: s.clusterIPs ?? (s.clusterIP ? [s.clusterIP] : []),
    externalIPs: s.externalIPs ?? [],
    loadBalancerIPs: (raw.status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [i.ip] : [])),
    externalTrafficPolicy: s.externalTrafficPolicy === 'Local' ? 'Local' : 'Cluster',
    annotations,
  };
}

/** The fields of an EndpointSlice the agent keeps: which nodes have a ready endpoint. */
export function projectSlice(raw: RawSlice): EndpointSliceView {
  const m = raw.metadata ?? {};
  const nodes = new Set<string>();
  // conditions.ready unset means ready (discovery.k8s.io/v1).
  for (const e of raw.endpoints ?? []) {
    const node = e.nodeName ?? e.topology?.['kubernetes.io/hostname'];
    if (node && e.conditions?.ready !== false) nodes.add(node);
  }
  return {
    namespace: m.namespace ?? '',
    name: m.name ?? '',
    service: m.labels?.[SERVICE_NAME_LABEL] ?? '',
    addressType: raw.addressType ?? '',
    readyNodes: [...nodes].sort(),
  };
}

function projectedSource<T>(
  client: KubeClient,
  kind: string,
  path: string,
  project: (raw: never) => T,
): InformerSource<Projected<T>> {
  return {
    kind,
    path,
    list: rawList(client, kind, path),
    parse(raw) {
      const m = (raw as Meta)?.metadata;
      if (typeof m?.name !== 'string' || m.name === '')
        return { ok: false, error: new Error(`${kind} without metadata.name`) };
      const value = project(raw as never) as Projected<T>;
      // The informer tells versions apart by resourceVersion: keep it (and the key) on the projection.
      (value as Meta).metadata = {
        name: m.name,
        ...(m.namespace ? { namespace: m.namespace } : {}),
        ...(m.resourceVersion ? { resourceVersion: m.resourceVersion } : {}),
      };
      return { ok: true, value };
    },
  };
}

/**
 * EndpointSlices from discovery.k8s.io/v1, or from v1beta1 when the server does not serve v1
 * (Kubernetes 1.20). The version is chosen by the first list that the server answers, and the
 * watch path follows it (the informer reads `path` when it opens a watch).
 */
export function sliceSource(client: KubeClient, log?: Logger): InformerSource<Projected<EndpointSliceView>> {
  const of = (version: 'v1' | 'v1beta1') =>
    projectedSource(
      client,
      'EndpointSlice',
      `/apis/discovery.k8s.io/${version}/endpointslices`,
      projectSlice,
    );
  const v1 = of('v1');
  const v1beta1 = of('v1beta1');
  let current = v1;
  return {
    kind: 'EndpointSlice',
    get path() {
      return current.path;
    },
    async list(opts) {
      try {
        return await current.list(opts);
      } catch (err) {
        if (current !== v1 || !isK8sError(err, K8S_ERR.NOT_FOUND)) throw err;
        log?.info(
          { path: v1beta1.path },
          'discovery.k8s.io/v1 EndpointSlices not served (Kubernetes before 1.21): using v1beta1',
        );
        current = v1beta1;
        return await current.list(opts);
      }
    },
    parse: (raw) => current.parse(raw),
  };
}

export interface ServicePort {
  start(onChange: () => void): void;
  synced(): boolean;
  snapshot(): { services: ServiceView[]; slices: EndpointSliceView[] };
  /** Reports each problem once (log and an Event on the Service) while it lasts. */
  report(problems: ServiceProblem[]): void;
  stop(): Promise<void>;
}

export class ServiceSync implements ServicePort {
  private readonly services: Informer<Projected<ServiceView>>;
  private readonly slices: Informer<Projected<EndpointSliceView>>;
  private readonly log: Logger;
  private reported = new Set<string>();
  /** The informers' lists as last handed out: the same arrays until one of them changes. */
  private listed: { services?: ServiceView[]; slices?: EndpointSliceView[] } = {};

  constructor(
    client: KubeClient,
    private readonly opts: { log: Logger; events?: EventRecorder },
  ) {
    this.log = opts.log.child({ component: 'services' });
    const o = { logger: opts.log, initialBackoffMs: 200, maxBackoffMs: 5000 };
    this.services = new Informer(
      client,
      projectedSource(client, 'Service', '/api/v1/services', projectService),
      o,
    );
    // Only slices a Service owns (the controller labels them with its name). discovery.k8s.io/v1
    // is served from Kubernetes 1.21; an older server (1.20: v1beta1 only) answers 404 there, and
    // the source then lists and watches v1beta1 instead (sliceSource).
    this.slices = new Informer(client, sliceSource(client, this.log), {
      ...o,
      labelSelector: SERVICE_NAME_LABEL,
    });
  }

  start(onChange: () => void): void {
    this.services.on(() => {
      this.listed.services = undefined;
      onChange();
    });
    this.slices.on(() => {
      this.listed.slices = undefined;
      onChange();
    });
    this.services.start();
    this.slices.start();
  }

  synced(): boolean {
    return this.services.hasSynced && this.slices.hasSynced;
  }

  /**
   * The same arrays while nothing changed (so serviceRoutes can reuse what it made of them); read
   * only.
   */
  snapshot() {
    this.listed.services ??= this.services.list();
    this.listed.slices ??= this.slices.list();
    return { services: this.listed.services, slices: this.listed.slices };
  }

  report(problems: ServiceProblem[]): void {
    const now = new Set<string>();
    for (const p of problems) {
      const key = `${p.namespace}/${p.name}\u0000${p.field}\u0000${p.value}`;
      now.add(key);
      if (this.reported.has(key)) continue;
      this.log.warn(
        { service: `${p.namespace}/${p.name}`, field: p.field, value: p.value, reason: p.reason },
        p.message,
      );
      void this.opts.events?.record(
        {
          apiVersion: 'v1',
          kind: 'Service',
          name: p.name,
          namespace: p.namespace,
          ...(p.uid ? { uid: p.uid } : {}),
        },
        'Warning',
        p.reason,
        p.message,
      );
    }
    this.reported = now;
  }

  async stop(): Promise<void> {
    await Promise.all([this.services.stop(), this.slices.stop()]);
  }
}
