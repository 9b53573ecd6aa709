// Cluster-wide watches of Services and EndpointSlices, kept as small projections (only the fields
// service-routes.ts reads), and the Events for what a Service asks that is not announced.
import { Informer, type InformerSource, type KubeClient, type Meta, toK8sError } from '@podnet/k8s';
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
  endpoints?: { nodeName?: string; conditions?: { ready?: boolean | null } }[];
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
  for (const e of raw.endpoints ?? []) if (e.nodeName && e.conditions?.ready !== false) nodes.add(e.nodeName);
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
  list: (opts: { labelSelector?: string; fieldSelector?: string }) => Promise<unknown>,
  project: (raw: never) => T,
): InformerSource<Projected<T>> {
  return {
    kind,
    path,
    async list(opts) {
      client.stats.reads++;
      try {
        const r = (await list(opts)) as {
          items?: unknown[];
          metadata?: { resourceVersion?: string };
        };
        return { items: r.items ?? [], resourceVersion: r.metadata?.resourceVersion ?? '' };
      } catch (err) {
        throw toK8sError(err, `list ${kind}`);
      }
    },
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

  constructor(
    client: KubeClient,
    private readonly opts: { log: Logger; events?: EventRecorder },
  ) {
    this.log = opts.log.child({ component: 'services' });
    const o = { logger: opts.log, initialBackoffMs: 200, maxBackoffMs: 5000 };
    this.services = new Informer(
      client,
      projectedSource(
        client,
        'Service',
        '/api/v1/services',
        (q) => client.core.listServiceForAllNamespaces(q),
        projectService,
      ),
      o,
    );
    // Only slices a Service owns (the controller labels them with its name).
    this.slices = new Informer(
      client,
      projectedSource(
        client,
        'EndpointSlice',
        '/apis/discovery.k8s.io/v1/endpointslices',
        // The custom-objects client lists any group's collection (/apis/{group}/{version}/{plural}).
        (q) =>
          client.custom.listClusterCustomObject({
            group: 'discovery.k8s.io',
            version: 'v1',
            plural: 'endpointslices',
            ...q,
          }),
        projectSlice,
      ),
      { ...o, labelSelector: SERVICE_NAME_LABEL },
    );
  }

  start(onChange: () => void): void {
    for (const inf of [this.services, this.slices] as Informer<Meta>[]) {
      inf.on(() => onChange());
      inf.start();
    }
  }

  synced(): boolean {
    return this.services.hasSynced && this.slices.hasSynced;
  }

  snapshot() {
    return { services: this.services.list(), slices: this.slices.list() };
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
