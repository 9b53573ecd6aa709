// core/v1 Service: kube-apiserver's defaulting (SetDefaults_Service, dropTypeDependentFields, the
// values an update keeps from the stored object) and validation (ValidateService, its update and
// status rules) of the fields podnet reads and writes, with causes naming the field path and the
// value as the real server's do. The cluster IPs and node ports are allocated in service-alloc.ts.
import { causes, type StatusCause } from './errors.js';
import { ipFamily, specialIpProblem } from './ip.js';
import type { KObject } from './store.js';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const present = (v: unknown) => v !== undefined && v !== null && v !== '';
type Spec = Record<string, unknown>;
type Port = Record<string, unknown>;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
export const SERVICE_TYPES = ['ClusterIP', 'ExternalName', 'LoadBalancer', 'NodePort'];
export const PROTOCOLS = ['SCTP', 'TCP', 'UDP'];
export const IP_FAMILIES = ['IPv4', 'IPv6'];
const FAMILY_POLICIES = ['PreferDualStack', 'RequireDualStack', 'SingleStack'];
const TRAFFIC_POLICIES = ['Cluster', 'Local'];
const AFFINITIES = ['ClientIP', 'None'];
export const VALID_IP = 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)';
export const DNS1123_LABEL_MSG =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const PORT_RANGE = 'must be between 1 and 65535, inclusive';

export const needsNodePorts = (s: Spec) =>
  s.type === 'NodePort' || (s.type === 'LoadBalancer' && s.allocateLoadBalancerNodePorts !== false);
const externallyAccessible = (s: Spec) =>
  s.type === 'NodePort' ||
  s.type === 'LoadBalancer' ||
  (Array.isArray(s.externalIPs) && s.externalIPs.length > 0);
export const needsHealthCheck = (s: Spec) => s.type === 'LoadBalancer' && s.externalTrafficPolicy === 'Local';
export const isHeadless = (s: Spec) => s.clusterIP === 'None';
export const ports = (s: Spec): Port[] =>
  Array.isArray(s.ports) ? (s.ports.filter(isObject) as Port[]) : [];

/** SetDefaults_Service and the normalisation of clusterIP/clusterIPs the registry does first. */
function withDefaults(spec: Spec): Spec {
  const s: Spec = { ...spec };
  if (!present(s.type)) s.type = 'ClusterIP';
  if (!present(s.sessionAffinity)) s.sessionAffinity = 'None';
  if (s.type !== 'ExternalName' && !present(s.internalTrafficPolicy)) s.internalTrafficPolicy = 'Cluster';
  if ((s.type === 'NodePort' || s.type === 'LoadBalancer') && !present(s.externalTrafficPolicy))
    s.externalTrafficPolicy = 'Cluster';
  if (s.type === 'LoadBalancer' && !present(s.allocateLoadBalancerNodePorts))
    s.allocateLoadBalancerNodePorts = true;
  if (Array.isArray(s.ports))
    s.ports = s.ports.map((p: unknown) => {
      if (!isObject(p)) return p;
      const q: Port = { ...p };
      if (!present(q.protocol)) q.protocol = 'TCP';
      if (!present(q.targetPort) || q.targetPort === 0) q.targetPort = q.port;
      return q;
    });
  const ips = Array.isArray(s.clusterIPs) ? s.clusterIPs : [];
  if (ips.length === 0 && present(s.clusterIP)) s.clusterIPs = [s.clusterIP];
  return s;
}

const samePort = (a: Port, b: Port) => a.port === b.port && a.protocol === b.protocol;

/**
 * What an update keeps from the stored Service (patchAllocatedValues): the allocated cluster IPs,
 * node ports and health check port when the new object leaves them out; then, when the type no
 * longer needs them and they are unchanged, what dropTypeDependentFields clears.
 */
function fromOld(s: Spec, old: Spec): Spec {
  const next: Spec = { ...s };
  if (next.type !== 'ExternalName' && old.type !== 'ExternalName') {
    if (!present(next.clusterIP) && present(old.clusterIP)) next.clusterIP = old.clusterIP;
    if (!Array.isArray(next.clusterIPs) || next.clusterIPs.length === 0) {
      if (Array.isArray(old.clusterIPs) && next.clusterIP === old.clusterIP) next.clusterIPs = old.clusterIPs;
    }
    if (!Array.isArray(next.ipFamilies) && Array.isArray(old.ipFamilies)) next.ipFamilies = old.ipFamilies;
    if (!present(next.ipFamilyPolicy) && present(old.ipFamilyPolicy))
      next.ipFamilyPolicy = old.ipFamilyPolicy;
  }
  const oldPorts = ports(old);
  if (needsNodePorts(next) && Array.isArray(next.ports))
    next.ports = next.ports.map((p: unknown) => {
      if (!isObject(p) || present(p.nodePort)) return p;
      const was = oldPorts.find((o) => samePort(o, p) && present(o.nodePort));
      return was ? { ...p, nodePort: was.nodePort } : p;
    });
  if (needsNodePorts(old) && !needsNodePorts(next) && Array.isArray(next.ports))
    next.ports = next.ports.map((p: unknown) => {
      if (!isObject(p) || !present(p.nodePort)) return p;
      if (!oldPorts.some((o) => o.nodePort === p.nodePort)) return p;
      const { nodePort: _n, ...rest } = p;
      return rest;
    });
  if (needsHealthCheck(next) && !present(next.healthCheckNodePort) && present(old.healthCheckNodePort))
    next.healthCheckNodePort = old.healthCheckNodePort;
  if (!needsHealthCheck(next) && next.healthCheckNodePort === old.healthCheckNodePort)
    delete next.healthCheckNodePort;
  if (next.type !== 'LoadBalancer') {
    if (next.loadBalancerClass === old.loadBalancerClass) delete next.loadBalancerClass;
    if (next.allocateLoadBalancerNodePorts === old.allocateLoadBalancerNodePorts)
      delete next.allocateLoadBalancerNodePorts;
  }
  if (!externallyAccessible(next) && next.externalTrafficPolicy === old.externalTrafficPolicy)
    delete next.externalTrafficPolicy;
  return next;
}

function validatePorts(s: Spec, out: StatusCause[]): void {
  if (!present(s.ports)) {
    if (s.type !== 'ExternalName' && !isHeadless(s)) out.push(causes.required('spec.ports'));
    return;
  }
  if (!Array.isArray(s.ports)) {
    out.push(causes.typeInvalid('spec.ports', s.ports, 'array'));
    return;
  }
  const list: unknown[] = s.ports;
  if (list.length === 0 && s.type !== 'ExternalName' && !isHeadless(s))
    out.push(causes.required('spec.ports'));
  const names = new Set<string>();
  const nodePorts = new Set<string>();
  list.forEach((p: unknown, i: number) => {
    const path = `spec.ports[${i}]`;
    if (!isObject(p)) {
      out.push(causes.typeInvalid(path, p, 'object'));
      return;
    }
    const name = p.name ?? '';
    if (typeof name !== 'string') out.push(causes.typeInvalid(`${path}.name`, name, 'string'));
    else if (name === '') {
      if (list.length > 1) out.push(causes.required(`${path}.name`));
    } else {
      if (name.length > 63 || !DNS1123_LABEL.test(name))
        out.push(causes.invalid(`${path}.name`, name, DNS1123_LABEL_MSG));
      if (names.has(name)) out.push(causes.duplicate(`${path}.name`, name));
      names.add(name);
    }
    if (!PROTOCOLS.includes(p.protocol as string))
      out.push(causes.unsupported(`${path}.protocol`, p.protocol, PROTOCOLS));
    if (!Number.isInteger(p.port) || (p.port as number) < 1 || (p.port as number) > 65535)
      out.push(causes.invalid(`${path}.port`, p.port, PORT_RANGE));
    const tp = p.targetPort;
    if (typeof tp === 'number') {
      if (!Number.isInteger(tp) || tp < 1 || tp > 65535)
        out.push(causes.invalid(`${path}.targetPort`, tp, PORT_RANGE));
    } else if (typeof tp === 'string') {
      if (tp.length > 15 || !/^[-a-z0-9]+$/.test(tp) || !/[a-z]/.test(tp) || /^-|-$|--/.test(tp))
        out.push(
          causes.invalid(
            `${path}.targetPort`,
            tp,
            'must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), at most 15 characters, with at least one letter',
          ),
        );
    } else if (present(tp)) out.push(causes.typeInvalid(`${path}.targetPort`, tp, 'integer or string'));
    if (isHeadless(s) && present(tp) && tp !== p.port && typeof tp === 'number')
      out.push(
        causes.invalid(
          `${path}.targetPort`,
          tp,
          "must be equal to the value of 'port' when clusterIP = None",
        ),
      );
    const np = p.nodePort;
    if (!present(np) || np === 0) return;
    if (s.type === 'ClusterIP' || s.type === 'ExternalName')
      out.push(causes.forbidden(`${path}.nodePort`, `may not be used when \`type\` is '${s.type}'`));
    else if (!Number.isInteger(np) || (np as number) < 1 || (np as number) > 65535)
      out.push(causes.invalid(`${path}.nodePort`, np, PORT_RANGE));
    else {
      const key = `${String(p.protocol)}/${String(np)}`;
      if (nodePorts.has(key)) out.push(causes.duplicate(`${path}.nodePort`, np));
      nodePorts.add(key);
    }
  });
}

/** validateServiceClusterIPsRelatedFields: clusterIP, clusterIPs, ipFamilies, ipFamilyPolicy. */
function validateClusterIps(s: Spec, out: StatusCause[]): void {
  const ipsPath = 'spec.clusterIPs';
  const ips = Array.isArray(s.clusterIPs) ? (s.clusterIPs as unknown[]) : [];
  if (present(s.clusterIPs) && !Array.isArray(s.clusterIPs))
    out.push(causes.typeInvalid(ipsPath, s.clusterIPs, 'array'));
  if (s.type === 'ExternalName') {
    if (present(s.clusterIP) && s.clusterIP !== '')
      out.push(causes.forbidden('spec.clusterIP', 'may not be set for ExternalName services'));
    if (ips.length > 0) out.push(causes.forbidden(ipsPath, 'may not be set for ExternalName services'));
    if (Array.isArray(s.ipFamilies) && s.ipFamilies.length > 0)
      out.push(causes.forbidden('spec.ipFamilies', 'may not be set for ExternalName services'));
    if (present(s.ipFamilyPolicy))
      out.push(causes.forbidden('spec.ipFamilyPolicy', 'may not be set for ExternalName services'));
    if (typeof s.externalName !== 'string' || s.externalName === '')
      out.push(causes.required('spec.externalName'));
    return;
  }
  if (ips.length > 0 && ips[0] !== s.clusterIP)
    out.push(causes.invalid(ipsPath, ips, 'first value must match `clusterIP`'));
  if (ips.length > 2) out.push(causes.invalid(ipsPath, ips, 'may only hold up to 2 values'));
  const families: number[] = [];
  ips.forEach((ip, i) => {
    if (ip === 'None') {
      if (i !== 0 || ips.length > 1)
        out.push(causes.invalid(`${ipsPath}[${i}]`, ip, "'None' must be the first and only value"));
      return;
    }
    const f = typeof ip === 'string' ? ipFamily(ip) : 0;
    if (f === 0) out.push(causes.invalid(`${ipsPath}[${i}]`, ip, VALID_IP));
    else families.push(f);
  });
  if (families.length === 2 && families[0] === families[1])
    out.push(causes.invalid(ipsPath, ips, 'may specify no more than one IP for each IP family'));
  const policy = s.ipFamilyPolicy;
  if (present(policy) && !FAMILY_POLICIES.includes(policy as string))
    out.push(causes.unsupported('spec.ipFamilyPolicy', policy, FAMILY_POLICIES));
  const fams = Array.isArray(s.ipFamilies) ? (s.ipFamilies as unknown[]) : [];
  if (present(s.ipFamilies) && !Array.isArray(s.ipFamilies))
    out.push(causes.typeInvalid('spec.ipFamilies', s.ipFamilies, 'array'));
  if (fams.length > 2)
    out.push(causes.invalid('spec.ipFamilies', fams, 'may specify no more than 2 ipFamilies'));
  const seen = new Set<unknown>();
  fams.forEach((f, i) => {
    if (!IP_FAMILIES.includes(f as string))
      out.push(causes.unsupported(`spec.ipFamilies[${i}]`, f, IP_FAMILIES));
    else if (seen.has(f)) out.push(causes.duplicate(`spec.ipFamilies[${i}]`, f));
    seen.add(f);
  });
  if (policy === 'SingleStack') {
    if (ips.length > 1)
      out.push(
        causes.invalid(
          'spec.ipFamilyPolicy',
          policy,
          "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
        ),
      );
    if (fams.length > 1)
      out.push(
        causes.invalid(
          'spec.ipFamilyPolicy',
          policy,
          "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
        ),
      );
  }
  ips.forEach((ip, i) => {
    if (ip === 'None' || typeof ip !== 'string' || ipFamily(ip) === 0 || fams[i] === undefined) return;
    const want = fams[i] === 'IPv6' ? 6 : 4;
    if (ipFamily(ip) !== want)
      out.push(
        causes.invalid(
          `${ipsPath}[${i}]`,
          ip,
          `expected an IPv${want} value as indicated by \`ipFamilies[${i}]\``,
        ),
      );
  });
}

function validateExternal(s: Spec, old: Spec | undefined, out: StatusCause[]): void {
  if (!TRAFFIC_POLICIES.includes(s.internalTrafficPolicy as string) && s.type !== 'ExternalName')
    out.push(causes.unsupported('spec.internalTrafficPolicy', s.internalTrafficPolicy, TRAFFIC_POLICIES));
  if (present(s.externalTrafficPolicy)) {
    if (!externallyAccessible(s))
      out.push(
        causes.invalid(
          'spec.externalTrafficPolicy',
          s.externalTrafficPolicy,
          "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
        ),
      );
    else if (!TRAFFIC_POLICIES.includes(s.externalTrafficPolicy as string))
      out.push(causes.unsupported('spec.externalTrafficPolicy', s.externalTrafficPolicy, TRAFFIC_POLICIES));
  }
  if (present(s.healthCheckNodePort) && s.healthCheckNodePort !== 0) {
    if (!needsHealthCheck(s))
      out.push(
        causes.invalid(
          'spec.healthCheckNodePort',
          s.healthCheckNodePort,
          "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ),
      );
    else if (
      !Number.isInteger(s.healthCheckNodePort) ||
      (s.healthCheckNodePort as number) < 1 ||
      (s.healthCheckNodePort as number) > 65535
    )
      out.push(causes.invalid('spec.healthCheckNodePort', s.healthCheckNodePort, PORT_RANGE));
  }
  if (!AFFINITIES.includes(s.sessionAffinity as string))
    out.push(causes.unsupported('spec.sessionAffinity', s.sessionAffinity, AFFINITIES));
  if (present(s.allocateLoadBalancerNodePorts) && s.type !== 'LoadBalancer')
    out.push(
      causes.forbidden(
        'spec.allocateLoadBalancerNodePorts',
        "may only be used when `type` is 'LoadBalancer'",
      ),
    );
  const cls = s.loadBalancerClass;
  if (present(cls)) {
    if (s.type !== 'LoadBalancer')
      out.push(causes.forbidden('spec.loadBalancerClass', "may only be used when `type` is 'LoadBalancer'"));
    else if (!qualifiedName(cls))
      out.push(
        causes.invalid(
          'spec.loadBalancerClass',
          cls,
          "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        ),
      );
  }
  if (
    old?.type === 'LoadBalancer' &&
    s.type === 'LoadBalancer' &&
    (old.loadBalancerClass ?? null) !== (cls ?? null)
  )
    out.push(causes.invalid('spec.loadBalancerClass', cls ?? null, 'may not change once set'));
  if (present(s.loadBalancerIP) && (typeof s.loadBalancerIP !== 'string' || ipFamily(s.loadBalancerIP) === 0))
    out.push(causes.invalid('spec.loadBalancerIP', s.loadBalancerIP, VALID_IP));
  if (present(s.externalIPs) && !Array.isArray(s.externalIPs))
    out.push(causes.typeInvalid('spec.externalIPs', s.externalIPs, 'array'));
  else if (Array.isArray(s.externalIPs))
    s.externalIPs.forEach((ip: unknown, i: number) => {
      const path = `spec.externalIPs[${i}]`;
      if (typeof ip !== 'string' || ipFamily(ip) === 0) out.push(causes.invalid(path, ip, VALID_IP));
      else {
        const why = specialIpProblem(ip);
        if (why) out.push(causes.invalid(path, ip, why));
      }
    });
}

function qualifiedName(v: unknown): boolean {
  if (typeof v !== 'string') return false;
  const slash = v.lastIndexOf('/');
  const prefix = slash >= 0 ? v.slice(0, slash) : undefined;
  const name = slash >= 0 ? v.slice(slash + 1) : v;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)))
    return false;
  return name.length > 0 && name.length <= 63 && QUALIFIED_NAME.test(name);
}

/** ValidateLoadBalancerStatus. */
function validateStatus(status: unknown, out: StatusCause[]): void {
  if (!isObject(status) || !isObject(status.loadBalancer)) return;
  const ingress = status.loadBalancer.ingress;
  if (!present(ingress)) return;
  if (!Array.isArray(ingress)) {
    out.push(causes.typeInvalid('status.loadBalancer.ingress', ingress, 'array'));
    return;
  }
  ingress.forEach((ing: unknown, i: number) => {
    const path = `status.loadBalancer.ingress[${i}]`;
    if (!isObject(ing)) {
      out.push(causes.typeInvalid(path, ing, 'object'));
      return;
    }
    if (present(ing.ip) && (typeof ing.ip !== 'string' || ipFamily(ing.ip) === 0))
      out.push(causes.invalid(`${path}.ip`, ing.ip, 'must be a valid IP address'));
    if (present(ing.hostname)) {
      const h = ing.hostname;
      if (typeof h !== 'string' || h.length > 253 || !DNS1123_SUBDOMAIN.test(h))
        out.push(
          causes.invalid(
            `${path}.hostname`,
            h,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
          ),
        );
      else if (ipFamily(h) !== 0)
        out.push(causes.invalid(`${path}.hostname`, h, 'must be a DNS name, not an IP address'));
    }
  });
}

/**
 * The Service to store (defaults applied, and on update what is kept from `old`), with every
 * problem appended to `out`. `statusOnly`: a write to the status subresource.
 */
export function validateService(
  obj: KObject,
  out: StatusCause[],
  old?: KObject,
  statusOnly = false,
): KObject {
  if (statusOnly) {
    validateStatus(obj.status, out);
    return obj;
  }
  if (!present(obj.spec)) obj = { ...obj, spec: {} };
  if (!isObject(obj.spec)) {
    out.push(causes.typeInvalid('spec', obj.spec, 'object'));
    return obj;
  }
  let spec = withDefaults(obj.spec);
  const oldSpec = old && isObject(old.spec) ? old.spec : undefined;
  if (oldSpec) spec = fromOld(spec, oldSpec);
  if (!SERVICE_TYPES.includes(spec.type as string))
    out.push(causes.unsupported('spec.type', spec.type, SERVICE_TYPES));
  validatePorts(spec, out);
  validateClusterIps(spec, out);
  validateExternal(spec, oldSpec, out);
  if (
    oldSpec &&
    present(oldSpec.clusterIP) &&
    oldSpec.type !== 'ExternalName' &&
    spec.type !== 'ExternalName'
  ) {
    if (spec.clusterIP !== oldSpec.clusterIP)
      out.push(causes.invalid('spec.clusterIP', spec.clusterIP ?? '', 'field is immutable'));
    const was = Array.isArray(oldSpec.clusterIPs) ? oldSpec.clusterIPs : [];
    const now = Array.isArray(spec.clusterIPs) ? spec.clusterIPs : [];
    if (was.length > 0 && now[0] !== was[0])
      out.push(causes.invalid('spec.clusterIPs[0]', now[0] ?? '', 'may not change once set'));
  }
  // kube-apiserver's strategy: a create starts with an empty status, an update keeps the stored one
  const status = old ? old.status : { loadBalancer: {} };
  return { ...obj, spec, status };
}
