// Which Service addresses this node announces (docs/services.md, "Advertisement"): a pure function of
// the Services, the EndpointSlices, the BGPConfiguration ranges and the node's name. No I/O, sorted
// output, so the agent's compute stays pure and this part is tested alone.
//
// - An address is announced only inside a range of its kind (serviceClusterIPs, serviceExternalIPs,
//   serviceLoadBalancerIPs); one outside is reported, naming the field and the value.
// - externalTrafficPolicy Local: the address (/32, /128) only while this node has a ready endpoint.
// - externalTrafficPolicy Cluster: the range aggregate (mode Aggregate, the default) or each
//   address from every node (mode PerService).
// - Annotations add communities and a local preference; a bad value is reported and left out.
import { communityProblem, compareStrings } from '@podnet/k8s';
import { type Cidr, cidrContains, hostCidr, parseCidr } from './ip.js';
import type { AdvertisementSource } from './model.js';

export const COMMUNITIES_ANNOTATION = 'podnet.io/bgp-communities';
export const LOCAL_PREFERENCE_ANNOTATION = 'podnet.io/bgp-local-preference';

/** The fields of a core/v1 Service the agent reads (service-sync.ts projects them). */
export interface ServiceView {
  namespace: string;
  name: string;
  uid?: string;
  type: string;
  clusterIPs: string[];
  externalIPs: string[];
  /** status.loadBalancer.ingress[].ip */
  loadBalancerIPs: string[];
  externalTrafficPolicy: 'Cluster' | 'Local';
  /** Only the annotations read here. */
  annotations: Record<string, string>;
}

/** The fields of a discovery.k8s.io/v1 EndpointSlice the agent reads. */
export interface EndpointSliceView {
  namespace: string;
  name: string;
  /** Label kubernetes.io/service-name. */
  service: string;
  addressType: string;
  /** Nodes with at least one ready endpoint of this slice (sorted, unique). */
  readyNodes: string[];
}

export type ServiceAdvertisementMode = 'Aggregate' | 'PerService';

export interface ServiceInputs {
  nodeName: string;
  services: ServiceView[];
  slices: EndpointSliceView[];
  ranges: { clusterIPs: string[]; externalIPs: string[]; loadBalancerIPs: string[] };
  mode: ServiceAdvertisementMode;
}

export interface ServiceAdvertisement {
  prefix: string;
  source: AdvertisementSource;
  communities: string[];
  largeCommunities: string[];
  localPref?: number;
  /** `namespace/name` of the Services behind the prefix (two may share an address). */
  services: string[];
}

/** Something in a Service that podnet cannot use as written: reported as an Event on the Service. */
export interface ServiceProblem {
  namespace: string;
  name: string;
  uid?: string;
  /** The field or annotation, e.g. `status.loadBalancer.ingress[0].ip`. */
  field: string;
  value: string;
  reason: 'ServiceAddressNotAnnounced' | 'InvalidServiceAnnotation';
  message: string;
}

export interface ServiceRoutes {
  advertisements: ServiceAdvertisement[];
  problems: ServiceProblem[];
}

const KINDS = [
  { key: 'clusterIPs', field: 'spec.clusterIPs', range: 'serviceClusterIPs', source: 'service-cluster-ip' },
  {
    key: 'externalIPs',
    field: 'spec.externalIPs',
    range: 'serviceExternalIPs',
    source: 'service-external-ip',
  },
  {
    key: 'loadBalancerIPs',
    field: 'status.loadBalancer.ingress',
    range: 'serviceLoadBalancerIPs',
    source: 'service-loadbalancer-ip',
  },
] as const;

/** Communities and local preference from a Service's annotations, with what was wrong. */
export function serviceAttributes(svc: ServiceView): {
  communities: string[];
  largeCommunities: string[];
  localPref?: number;
  problems: ServiceProblem[];
} {
  const problems: ServiceProblem[] = [];
  const bad = (field: string, value: string, why: string) =>
    problems.push({
      namespace: svc.namespace,
      name: svc.name,
      ...(svc.uid ? { uid: svc.uid } : {}),
      field,
      value,
      reason: 'InvalidServiceAnnotation',
      message: `annotation ${field} value ${JSON.stringify(value)} ${why}; the Service is announced without it`,
    });
  const communities: string[] = [];
  const largeCommunities: string[] = [];
  const rawCommunities = svc.annotations[COMMUNITIES_ANNOTATION];
  if (rawCommunities !== undefined) {
    const values = rawCommunities
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean);
    const wrong = values.filter(communityProblem);
    if (wrong.length || values.length === 0)
      bad(
        COMMUNITIES_ANNOTATION,
        rawCommunities,
        `is not a comma-separated list of communities (asn:value, 16-bit each, or a:b:c, 32-bit each)${wrong.length ? `: ${wrong.map((w) => JSON.stringify(w)).join(', ')}` : ''}`,
      );
    else for (const v of values) (v.split(':').length === 2 ? communities : largeCommunities).push(v);
  }
  let localPref: number | undefined;
  const rawPref = svc.annotations[LOCAL_PREFERENCE_ANNOTATION];
  if (rawPref !== undefined) {
    const t = rawPref.trim();
    if (/^\d{1,10}$/.test(t) && Number(t) <= 0xffffffff) localPref = Number(t);
    else bad(LOCAL_PREFERENCE_ANNOTATION, rawPref, 'is not an integer from 0 to 4294967295');
  }
  return {
    communities: [...new Set(communities)].sort(),
    largeCommunities: [...new Set(largeCommunities)].sort(),
    ...(localPref !== undefined ? { localPref } : {}),
    problems,
  };
}

function parseRanges(list: string[]): Cidr[] {
  return list.flatMap((c) => parseCidr(c) ?? []);
}

/** `namespace/service` of each slice, made once per informer object. */
const sliceServiceIds = new WeakMap<EndpointSliceView, string>();

/** The Services this node has a ready endpoint of, as `namespace/name`. */
export function servicesWithLocalEndpoints(slices: EndpointSliceView[], nodeName: string): Set<string> {
  const out = new Set<string>();
  for (const s of slices) {
    if (!s.service || !s.readyNodes.includes(nodeName)) continue;
    let id = sliceServiceIds.get(s);
    if (id === undefined) {
      id = `${s.namespace}/${s.service}`;
      sliceServiceIds.set(s, id);
    }
    out.add(id);
  }
  return out;
}

/** One address field of a Service, parsed. */
interface ServiceAddress {
  kind: (typeof KINDS)[number];
  field: string;
  ip: string;
  /** The address as a host prefix; undefined when it is not an address. */
  host?: string;
  cidr?: Cidr;
}

/** What `serviceRoutes` reads of one Service that does not depend on the other inputs. */
interface ParsedService {
  id: string;
  attrs: ReturnType<typeof serviceAttributes>;
  addresses: ServiceAddress[];
  /** The Service against the ranges last in force (`rangesKey`). */
  checked?: CheckedService;
}

/** A Service against the BGPConfiguration ranges: what is wrong, and what it would announce. */
interface CheckedService {
  rangesKey: string;
  problems: ServiceProblem[];
  /**
   * One advertisement per address inside a range, with the Service's own attributes. Made once and
   * never changed: an address two Services share gets a new, merged object in `serviceRoutes`.
   */
  advertisements: { ad: ServiceAdvertisement; cidr: Cidr }[];
}

/**
 * Parsed Services by object: the informer hands out the same object until the Service changes, so a
 * pass re-parses only the Services that changed since the last one.
 */
const parsedServices = new WeakMap<ServiceView, ParsedService>();

function parsedService(svc: ServiceView): ParsedService {
  let p = parsedServices.get(svc);
  if (p) return p;
  const addresses: ServiceAddress[] = [];
  for (const kind of KINDS) {
    if (kind.key === 'loadBalancerIPs' && svc.type !== 'LoadBalancer') continue;
    svc[kind.key].forEach((ip, i) => {
      if (ip === 'None' || ip === '') return;
      const field = kind.key === 'loadBalancerIPs' ? `${kind.field}[${i}].ip` : `${kind.field}[${i}]`;
      const host = hostCidr(ip);
      const cidr = host ? parseCidr(host) : undefined;
      addresses.push(host && cidr ? { kind, field, ip, host, cidr } : { kind, field, ip });
    });
  }
  p = { id: `${svc.namespace}/${svc.name}`, attrs: serviceAttributes(svc), addresses };
  parsedServices.set(svc, p);
  return p;
}

type Ranges = Record<(typeof KINDS)[number]['key'], Cidr[]>;

function checkedService(
  svc: ServiceView,
  p: ParsedService,
  ranges: Ranges,
  rangesKey: string,
): CheckedService {
  if (p.checked?.rangesKey === rangesKey) return p.checked;
  const problems: ServiceProblem[] = [...p.attrs.problems];
  const advertisements: CheckedService['advertisements'] = [];
  for (const { kind, field, ip, host, cidr } of p.addresses) {
    const allowed = ranges[kind.key];
    if (!host || !cidr) {
      problems.push(problem(svc, field, ip, `is not an IP address`));
      continue;
    }
    if (!allowed.some((r) => cidrContains(r, cidr))) {
      // Cluster IPs outside every range are the norm when none is configured: not reported.
      if (kind.key === 'clusterIPs' && allowed.length === 0) continue;
      problems.push(
        problem(
          svc,
          field,
          ip,
          allowed.length
            ? `is outside every BGPConfiguration ${kind.range} range (${allowed.map((r) => r.text).join(', ')})`
            : `is not announced: BGPConfiguration default has no ${kind.range} range`,
        ),
      );
      continue;
    }
    const { communities, largeCommunities, localPref } = p.attrs;
    advertisements.push({
      cidr,
      ad: {
        prefix: host,
        source: kind.source,
        communities,
        largeCommunities,
        ...(localPref !== undefined ? { localPref } : {}),
        services: [p.id],
      },
    });
  }
  p.checked = { rangesKey, problems, advertisements };
  return p.checked;
}

/** The strings of both lists, once each, in plain string order. */
export const union = (a: string[], b: string[]) => [...new Set([...a, ...b])].sort(compareStrings);

/**
 * Each Service's part is computed once per informer object and ranges (`checkedService`), so a pass
 * over many Services where one changed costs little more than walking them.
 */
export function serviceRoutes(inputs: ServiceInputs): ServiceRoutes {
  const rangesKey = JSON.stringify([
    inputs.ranges.clusterIPs,
    inputs.ranges.externalIPs,
    inputs.ranges.loadBalancerIPs,
  ]);
  // The same lists (service-sync hands out the same arrays until a Service or slice changes) and
  // settings: the same answer, e.g. for a pass that a pod or a route started.
  const last = lastRoutes;
  if (
    last?.services === inputs.services &&
    last.slices === inputs.slices &&
    last.nodeName === inputs.nodeName &&
    last.mode === inputs.mode &&
    last.rangesKey === rangesKey
  )
    return last.out;
  const out = computeServiceRoutes(inputs, rangesKey);
  lastRoutes = {
    services: inputs.services,
    slices: inputs.slices,
    nodeName: inputs.nodeName,
    mode: inputs.mode,
    rangesKey,
    out,
  };
  return out;
}

/** The last call's inputs (by identity) and answer. */
let lastRoutes:
  | (Pick<ServiceInputs, 'services' | 'slices' | 'nodeName' | 'mode'> & {
      rangesKey: string;
      out: ServiceRoutes;
    })
  | undefined;
/** Services in (namespace, name) order, per input array. */
const sortedServices = new WeakMap<ServiceView[], ServiceView[]>();
/** servicesWithLocalEndpoints, per slices array and node. */
const localServices = new WeakMap<EndpointSliceView[], { nodeName: string; ids: Set<string> }>();

function computeServiceRoutes(inputs: ServiceInputs, rangesKey: string): ServiceRoutes {
  const problems: ServiceProblem[] = [];
  let l = localServices.get(inputs.slices);
  if (l?.nodeName !== inputs.nodeName) {
    l = { nodeName: inputs.nodeName, ids: servicesWithLocalEndpoints(inputs.slices, inputs.nodeName) };
    localServices.set(inputs.slices, l);
  }
  const local = l.ids;
  const byPrefix = new Map<string, ServiceAdvertisement>();
  const cidrs = new Map<string, Cidr>();
  let ranges: Ranges | undefined;
  let services = sortedServices.get(inputs.services);
  if (!services) {
    services = [...inputs.services].sort(
      (a, b) => compareStrings(a.namespace, b.namespace) || compareStrings(a.name, b.name),
    );
    sortedServices.set(inputs.services, services);
  }
  for (const svc of services) {
    if (svc.type === 'ExternalName') continue;
    const p = parsedService(svc);
    ranges ??= {
      clusterIPs: parseRanges(inputs.ranges.clusterIPs),
      externalIPs: parseRanges(inputs.ranges.externalIPs),
      loadBalancerIPs: parseRanges(inputs.ranges.loadBalancerIPs),
    };
    const checked = checkedService(svc, p, ranges, rangesKey);
    // Problems are reported whether or not this node announces the Service right now, so the
    // report does not come and go with the endpoints.
    problems.push(...checked.problems);
    // externalTrafficPolicy only exists for Services reachable from outside (NodePort,
    // LoadBalancer, or with externalIPs); a ClusterIP Service without externalIPs is Cluster.
    const external = svc.type === 'NodePort' || svc.type === 'LoadBalancer' || svc.externalIPs.length > 0;
    const localPolicy = external && svc.externalTrafficPolicy === 'Local';
    const announce = localPolicy ? local.has(p.id) : inputs.mode === 'PerService';
    if (!announce) continue;
    for (const { ad, cidr } of checked.advertisements) {
      const existing = byPrefix.get(ad.prefix);
      if (!existing) {
        byPrefix.set(ad.prefix, ad);
        cidrs.set(ad.prefix, cidr);
        continue;
      }
      // Two Services sharing an address: one announcement, with the union of their attributes.
      const localPref =
        ad.localPref === undefined ? existing.localPref : Math.max(existing.localPref ?? 0, ad.localPref);
      byPrefix.set(ad.prefix, {
        ...existing,
        services: union(existing.services, ad.services),
        communities: union(existing.communities, ad.communities),
        largeCommunities: union(existing.largeCommunities, ad.largeCommunities),
        ...(localPref !== undefined ? { localPref } : {}),
      });
    }
  }
  return {
    advertisements: [...byPrefix.values()].sort((a, b) => {
      const x = cidrs.get(a.prefix)!;
      const y = cidrs.get(b.prefix)!;
      return x.family - y.family || (x.net < y.net ? -1 : x.net > y.net ? 1 : 0);
    }),
    problems,
  };
}

function problem(svc: ServiceView, field: string, value: string, why: string): ServiceProblem {
  return {
    namespace: svc.namespace,
    name: svc.name,
    ...(svc.uid ? { uid: svc.uid } : {}),
    field,
    value,
    reason: 'ServiceAddressNotAnnounced',
    message: `${field} ${JSON.stringify(value)} ${why}; not announced`,
  };
}
