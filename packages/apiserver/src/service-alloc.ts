// What kube-apiserver's Service REST storage does after validation: the IP families a Service
// gets (initIPFamilyFields), its cluster IPs from the service CIDRs and its node ports (and health
// check node port) from the node port range, each unique across Services. Pure over the list of
// the other Services; the first address and port found free is taken.
import { causes, type StatusCause } from './errors.js';
import {
  bigToIp,
  type Cidr,
  cidrContains,
  cidrSize,
  type Family,
  ipFamily,
  ipToBig,
  parseCidr,
} from './ip.js';
import { isHeadless, needsHealthCheck, needsNodePorts, ports } from './services.js';
import type { KObject } from './store.js';

export interface ServiceNetwork {
  /** The service CIDRs, at most one per family; the first is the cluster's primary family. */
  cidrs: Cidr[];
  nodePorts: { first: number; last: number };
}

/** The service network from kube-apiserver-like flags (`--service-cluster-ip-range`, `--service-node-port-range`). */
export function serviceNetwork(cidrs: readonly string[], nodePortRange = '30000-32767'): ServiceNetwork {
  const parsed = cidrs.map((c) => {
    const x = parseCidr(c);
    if (typeof x === 'string') throw new Error(`service CIDR ${JSON.stringify(c)}: ${x}`);
    return x;
  });
  if (
    parsed.length === 0 ||
    parsed.length > 2 ||
    (parsed.length === 2 && parsed[0]!.family === parsed[1]!.family)
  )
    throw new Error(`service CIDRs ${JSON.stringify(cidrs)}: one, or one per IP family`);
  const m = /^(\d+)-(\d+)$/.exec(nodePortRange);
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || first < 1 || last > 65535 || first > last)
    throw new Error(`node port range ${JSON.stringify(nodePortRange)}: want FIRST-LAST within 1-65535`);
  return { cidrs: parsed, nodePorts: { first, last } };
}

const familyName = (f: Family) => (f === 4 ? 'IPv4' : 'IPv6');
const familyOf = (name: unknown): Family => (name === 'IPv6' ? 6 : 4);
type Spec = Record<string, unknown>;
const specOf = (o: KObject): Spec => (o.spec && typeof o.spec === 'object' ? (o.spec as Spec) : {});

/** ipFamilyPolicy and ipFamilies, defaulted from clusterIPs and the cluster's families. */
function families(s: Spec, net: ServiceNetwork, out: StatusCause[]): Family[] {
  const cluster = net.cidrs.map((c) => c.family);
  const ips = (Array.isArray(s.clusterIPs) ? s.clusterIPs : []).filter((ip) => ip !== 'None') as string[];
  let fams: Family[] = Array.isArray(s.ipFamilies) ? s.ipFamilies.map(familyOf) : [];
  if (s.ipFamilyPolicy === undefined || s.ipFamilyPolicy === null || s.ipFamilyPolicy === '')
    s.ipFamilyPolicy = ips.length === 2 || fams.length === 2 ? 'RequireDualStack' : 'SingleStack';
  ips.forEach((ip, i) => {
    if (fams[i] === undefined) fams[i] = ipFamily(ip) as Family;
  });
  if (s.ipFamilyPolicy === 'RequireDualStack' && cluster.length < 2) {
    out.push(
      causes.invalid(
        'spec.ipFamilyPolicy',
        s.ipFamilyPolicy,
        'Cluster is not configured for dual stack services',
      ),
    );
    return [];
  }
  if (fams.length === 0) fams = [cluster[0]!];
  if (s.ipFamilyPolicy !== 'SingleStack' && fams.length === 1 && cluster.length === 2)
    fams.push(cluster.find((f) => f !== fams[0])!);
  fams.forEach((f, i) => {
    if (!cluster.includes(f))
      out.push(causes.invalid(`spec.ipFamilies[${i}]`, familyName(f), 'not configured on this cluster'));
  });
  s.ipFamilies = fams.map(familyName);
  return fams;
}

function firstFree(c: Cidr, used: Set<string>): string | undefined {
  const size = cidrSize(c);
  const last = c.family === 4 ? size - 2n : size - 1n;
  for (let i = 1n; i <= last; i++) {
    const ip = bigToIp(c.base + i, c.family);
    if (!used.has(ip)) return ip;
  }
  return undefined;
}

function allocateClusterIps(
  s: Spec,
  oldIps: string[],
  others: Spec[],
  net: ServiceNetwork,
  out: StatusCause[],
): void {
  const fams = families(s, net, out);
  if (out.length > 0 || isHeadless(s)) return;
  const used = new Set<string>();
  for (const o of others)
    for (const ip of Array.isArray(o.clusterIPs) ? o.clusterIPs : []) used.add(String(ip));
  const ips = (Array.isArray(s.clusterIPs) ? [...s.clusterIPs] : []) as string[];
  fams.forEach((f, i) => {
    const cidr = net.cidrs.find((c) => c.family === f)!;
    const want = ips[i];
    if (want !== undefined && want !== '') {
      if (oldIps.includes(want)) return;
      const why = !cidrContains(cidr, want)
        ? `the provided IP (${want}) is not in the valid range. The range of valid IPs is ${cidr.text}`
        : used.has(want)
          ? 'provided IP is already allocated'
          : undefined;
      if (why) out.push(causes.invalid('spec.clusterIPs', ips, `failed to allocate IP ${want}: ${why}`));
      used.add(want);
      return;
    }
    const ip = firstFree(cidr, used);
    if (ip === undefined)
      out.push(causes.invalid('spec.clusterIPs', ips, `failed to allocate a serviceIP: range is full`));
    else {
      ips[i] = ip;
      used.add(ip);
    }
  });
  // canonical text, as Go prints a parsed address
  s.clusterIPs = ips.map((ip) => (ipFamily(ip) ? bigToIp(ipToBig(ip), ipFamily(ip) as Family) : ip));
  s.clusterIP = (s.clusterIPs as string[])[0];
}

function allocateNodePorts(
  s: Spec,
  oldPorts: Set<number>,
  others: Spec[],
  net: ServiceNetwork,
  out: StatusCause[],
): void {
  const { first, last } = net.nodePorts;
  const used = new Set<number>();
  for (const o of others) {
    for (const p of ports(o)) if (typeof p.nodePort === 'number') used.add(p.nodePort);
    if (typeof o.healthCheckNodePort === 'number') used.add(o.healthCheckNodePort);
  }
  const take = (want: unknown, field: string): number | undefined => {
    if (typeof want === 'number' && want !== 0) {
      if (oldPorts.has(want)) return want;
      if (want < first || want > last)
        out.push(
          causes.invalid(
            field,
            want,
            `provided port is not in the valid range. The range of valid ports is ${first}-${last}`,
          ),
        );
      else if (used.has(want)) out.push(causes.invalid(field, want, 'provided port is already allocated'));
      used.add(want);
      return want;
    }
    for (let p = first; p <= last; p++)
      if (!used.has(p) && !oldPorts.has(p)) {
        used.add(p);
        return p;
      }
    out.push(causes.invalid(field, want ?? 0, 'range is full'));
    return undefined;
  };
  if (needsNodePorts(s) && Array.isArray(s.ports))
    s.ports = s.ports.map((p: Record<string, unknown>, i: number) => {
      const np = take(p.nodePort, `spec.ports[${i}].nodePort`);
      return np === undefined ? p : { ...p, nodePort: np };
    });
  else if (Array.isArray(s.ports))
    s.ports.forEach((p: Record<string, unknown>, i: number) => {
      if (typeof p.nodePort === 'number' && p.nodePort !== 0) take(p.nodePort, `spec.ports[${i}].nodePort`);
    });
  if (needsHealthCheck(s)) {
    const hc = take(s.healthCheckNodePort, 'spec.healthCheckNodePort');
    if (hc !== undefined) s.healthCheckNodePort = hc;
  }
}

/**
 * The Service `obj` (validated) with its IP families, cluster IPs and node ports allocated; every
 * problem (a requested address or port out of range or taken) appended to `out`. `old`: the stored
 * Service on an update, whose own addresses and ports stay its own.
 */
export function allocateService(
  obj: KObject,
  all: readonly KObject[],
  net: ServiceNetwork,
  out: StatusCause[],
  old?: KObject,
): KObject {
  const s: Spec = { ...specOf(obj) };
  if (s.type === 'ExternalName') return obj;
  const self = `${obj.metadata.namespace}/${obj.metadata.name}`;
  const others = all.filter((o) => `${o.metadata.namespace}/${o.metadata.name}` !== self).map(specOf);
  const oldSpec = old ? specOf(old) : {};
  const oldIps = (Array.isArray(oldSpec.clusterIPs) ? oldSpec.clusterIPs : []) as string[];
  const oldPorts = new Set<number>();
  for (const p of ports(oldSpec)) if (typeof p.nodePort === 'number') oldPorts.add(p.nodePort);
  if (typeof oldSpec.healthCheckNodePort === 'number') oldPorts.add(oldSpec.healthCheckNodePort);
  allocateClusterIps(s, oldIps, others, net, out);
  allocateNodePorts(s, oldPorts, others, net, out);
  return { ...obj, spec: s };
}
