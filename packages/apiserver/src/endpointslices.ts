// discovery.k8s.io/v1 EndpointSlice: kube-apiserver's defaulting (port name "" and protocol TCP)
// and validation (ValidateEndpointSlice and its update rule), with causes naming the field path
// and the value as the real server's do.
import { causes, type StatusCause } from './errors.js';
import { ipFamily, specialIpProblem } from './ip.js';
import { DNS1123_LABEL_MSG, PROTOCOLS } from './services.js';
import type { KObject } from './store.js';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const present = (v: unknown) => v !== undefined && v !== null;

export const ADDRESS_TYPES = ['FQDN', 'IPv4', 'IPv6'];
const MAX_ENDPOINTS = 1000;
const MAX_ADDRESSES = 100;
const MAX_PORTS = 100;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

function validateAddress(addressType: unknown, a: unknown, path: string, out: StatusCause[]): void {
  if (typeof a !== 'string') {
    out.push(causes.typeInvalid(path, a, 'string'));
    return;
  }
  switch (addressType) {
    case 'IPv4':
    case 'IPv6': {
      const want = addressType === 'IPv4' ? 4 : 6;
      if (ipFamily(a) !== want) {
        out.push(causes.invalid(path, a, `must be a valid ${addressType} address`));
        return;
      }
      const why = specialIpProblem(a);
      if (why) out.push(causes.invalid(path, a, why));
      return;
    }
    case 'FQDN':
      if (a.length > 253 || !DNS1123_SUBDOMAIN.test(a) || !a.includes('.'))
        out.push(causes.invalid(path, a, 'should be a domain with at least two segments separated by dots'));
      return;
  }
}

function validateEndpoint(e: unknown, addressType: unknown, path: string, out: StatusCause[]): void {
  if (!isObject(e)) {
    out.push(causes.typeInvalid(path, e, 'object'));
    return;
  }
  const addrs = e.addresses;
  if (!Array.isArray(addrs) || addrs.length === 0)
    out.push(causes.required(`${path}.addresses`, 'must contain at least 1 address'));
  else if (addrs.length > MAX_ADDRESSES)
    out.push(causes.tooMany(`${path}.addresses`, addrs.length, MAX_ADDRESSES));
  else
    addrs.forEach((a, i) => {
      validateAddress(addressType, a, `${path}.addresses[${i}]`, out);
    });
  if (present(e.conditions)) {
    if (!isObject(e.conditions)) out.push(causes.typeInvalid(`${path}.conditions`, e.conditions, 'object'));
    else
      for (const c of ['ready', 'serving', 'terminating'])
        if (present(e.conditions[c]) && typeof e.conditions[c] !== 'boolean')
          out.push(causes.typeInvalid(`${path}.conditions.${c}`, e.conditions[c], 'boolean'));
  }
  if (present(e.nodeName)) {
    const n = e.nodeName;
    if (typeof n !== 'string' || n.length > 253 || !DNS1123_SUBDOMAIN.test(n))
      out.push(causes.invalid(`${path}.nodeName`, n, SUBDOMAIN_MSG));
  }
  if (present(e.hostname)) {
    const h = e.hostname;
    if (typeof h !== 'string' || h.length > 63 || !DNS1123_LABEL.test(h))
      out.push(causes.invalid(`${path}.hostname`, h, DNS1123_LABEL_MSG));
  }
  if (present(e.targetRef) && !isObject(e.targetRef))
    out.push(causes.typeInvalid(`${path}.targetRef`, e.targetRef, 'object'));
}

function validatePorts(list: unknown, out: StatusCause[]): void {
  if (!present(list)) return;
  if (!Array.isArray(list)) {
    out.push(causes.typeInvalid('ports', list, 'array'));
    return;
  }
  if (list.length > MAX_PORTS) out.push(causes.tooMany('ports', list.length, MAX_PORTS));
  const names = new Set<string>();
  list.forEach((p: unknown, i: number) => {
    const path = `ports[${i}]`;
    if (!isObject(p)) {
      out.push(causes.typeInvalid(path, p, 'object'));
      return;
    }
    const name = p.name;
    if (typeof name !== 'string') out.push(causes.typeInvalid(`${path}.name`, name, 'string'));
    else {
      if (name !== '' && (name.length > 63 || !DNS1123_LABEL.test(name)))
        out.push(causes.invalid(`${path}.name`, name, DNS1123_LABEL_MSG));
      if (names.has(name)) out.push(causes.duplicate(`${path}.name`, name));
      names.add(name);
    }
    if (!PROTOCOLS.includes(p.protocol as string))
      out.push(causes.unsupported(`${path}.protocol`, p.protocol, PROTOCOLS));
    if (
      present(p.port) &&
      (!Number.isInteger(p.port) || (p.port as number) < 1 || (p.port as number) > 65535)
    )
      out.push(causes.invalid(`${path}.port`, p.port, 'must be between 1 and 65535, inclusive'));
  });
}

/** The EndpointSlice to store (defaults applied), with every problem appended to `out`. */
export function validateEndpointSlice(obj: KObject, out: StatusCause[], old?: KObject): KObject {
  const next: KObject = { ...obj };
  if (Array.isArray(next.ports))
    next.ports = next.ports.map((p: unknown) =>
      isObject(p) ? { ...p, name: p.name ?? '', protocol: p.protocol ?? 'TCP' } : p,
    );
  if (!present(next.addressType) || next.addressType === '') out.push(causes.required('addressType'));
  else if (!ADDRESS_TYPES.includes(next.addressType as string))
    out.push(causes.unsupported('addressType', next.addressType, ADDRESS_TYPES));
  if (old && next.addressType !== old.addressType)
    out.push(causes.invalid('addressType', next.addressType, 'field is immutable'));
  if (!present(next.endpoints)) {
    // an absent list is an empty one (Go's nil slice)
  } else if (!Array.isArray(next.endpoints))
    out.push(causes.typeInvalid('endpoints', next.endpoints, 'array'));
  else if (next.endpoints.length > MAX_ENDPOINTS)
    out.push(causes.tooMany('endpoints', next.endpoints.length, MAX_ENDPOINTS));
  else
    next.endpoints.forEach((e: unknown, i: number) => {
      validateEndpoint(e, next.addressType, `endpoints[${i}]`, out);
    });
  validatePorts(next.ports, out);
  return next;
}
