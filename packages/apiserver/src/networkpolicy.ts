// networking.k8s.io/v1 NetworkPolicy: kube-apiserver's defaulting (policyTypes, port protocol TCP)
// and validation (ValidateNetworkPolicySpec: label selectors, ports, endPort, peers, ipBlock,
// policyTypes), with causes naming the field path and the value as the real server's do.
import { BlockList, isIP } from 'node:net';
import { causes, type StatusCause } from './errors.js';
import type { KObject } from './store.js';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const present = (v: unknown) => v !== undefined && v !== null;

const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];
const POLICY_TYPES = ['Ingress', 'Egress'];

/**
 * A CIDR as Go's net.ParseCIDR reads it (host bits allowed): an address (Node's parser, which
 * refuses leading zeros as Go does) and a decimal length within the family's bits. This package
 * has no dependencies (its image ships only its dist/), hence node:net and not @podnet/net.
 */
function parseCidr(
  text: string,
): { ok: true; addr: string; len: number; family: 4 | 6 } | { ok: false; reason: string } {
  const slash = text.indexOf('/');
  if (slash < 0) return { ok: false, reason: 'no prefix length' };
  const addr = text.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) return { ok: false, reason: `${JSON.stringify(addr)} is not an IP address` };
  const lenText = text.slice(slash + 1);
  const len = Number(lenText);
  if (!/^(0|[1-9][0-9]*)$/.test(lenText) || len > (family === 4 ? 32 : 128))
    return { ok: false, reason: `${JSON.stringify(lenText)} is not a prefix length` };
  return { ok: true, addr, len, family: family as 4 | 6 };
}

/** A label key: an optional DNS subdomain prefix (at most 253) and `/`, then a name of at most 63. */
function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)))
    return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name))
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)";
  return undefined;
}

/** meta/v1 ValidateLabelSelector. */
function validateSelector(sel: unknown, path: string, out: StatusCause[]): void {
  if (!present(sel)) return;
  if (!isObject(sel)) {
    out.push(causes.typeInvalid(path, sel, 'object'));
    return;
  }
  if (present(sel.matchLabels)) {
    if (!isObject(sel.matchLabels))
      out.push(causes.typeInvalid(`${path}.matchLabels`, sel.matchLabels, 'object'));
    else
      for (const [k, v] of Object.entries(sel.matchLabels)) {
        const why = labelKeyProblem(k);
        if (why) out.push(causes.invalid(`${path}.matchLabels`, k, why));
        if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v))
          out.push(
            causes.invalid(
              `${path}.matchLabels`,
              v,
              "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)",
            ),
          );
      }
  }
  if (!present(sel.matchExpressions)) return;
  if (!Array.isArray(sel.matchExpressions)) {
    out.push(causes.typeInvalid(`${path}.matchExpressions`, sel.matchExpressions, 'array'));
    return;
  }
  sel.matchExpressions.forEach((e: unknown, i: number) => {
    const p = `${path}.matchExpressions[${i}]`;
    if (!isObject(e)) {
      out.push(causes.typeInvalid(p, e, 'object'));
      return;
    }
    const values = Array.isArray(e.values) ? e.values : [];
    switch (e.operator) {
      case 'In':
      case 'NotIn':
        if (values.length === 0)
          out.push(causes.required(`${p}.values`, "must be specified when `operator` is 'In' or 'NotIn'"));
        break;
      case 'Exists':
      case 'DoesNotExist':
        if (values.length > 0)
          out.push(
            causes.forbidden(
              `${p}.values`,
              "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
          );
        break;
      default:
        out.push(causes.invalid(`${p}.operator`, e.operator, 'not a valid selector operator'));
    }
    if (typeof e.key !== 'string') out.push(causes.required(`${p}.key`));
    else {
      const why = labelKeyProblem(e.key);
      if (why) out.push(causes.invalid(`${p}.key`, e.key, why));
    }
    values.forEach((v: unknown, j: number) => {
      if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v))
        out.push(causes.invalid(`${p}.values[${j}]`, v, 'a valid label value'));
    });
  });
}

/** IsValidPortName: IANA_SVC_NAME, 1-15 lowercase alphanumerics or '-', with a letter, no '--'. */
function portNameProblem(name: string): string | undefined {
  if (name.length === 0 || name.length > 15) return 'must be no more than 15 characters';
  if (!/^[-a-z0-9]+$/.test(name))
    return 'must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)';
  if (name.includes('--')) return 'must not contain consecutive hyphens';
  if (!/[a-z]/.test(name)) return 'must contain at least one letter (a-z)';
  if (name.startsWith('-') || name.endsWith('-')) return 'must not begin or end with a hyphen';
  return undefined;
}

const validPort = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;
const PORT_RANGE = 'must be between 1 and 65535, inclusive';

function validatePort(port: unknown, path: string, out: StatusCause[]): void {
  if (!isObject(port)) {
    out.push(causes.typeInvalid(path, port, 'object'));
    return;
  }
  if (present(port.protocol) && !PROTOCOLS.includes(port.protocol as string))
    out.push(causes.unsupported(`${path}.protocol`, port.protocol, PROTOCOLS));
  const p = port.port;
  if (typeof p === 'number') {
    if (!validPort(p)) out.push(causes.invalid(`${path}.port`, p, PORT_RANGE));
  } else if (typeof p === 'string') {
    const why = portNameProblem(p);
    if (why) out.push(causes.invalid(`${path}.port`, p, why));
  } else if (present(p)) out.push(causes.typeInvalid(`${path}.port`, p, 'integer or string'));
  const end = port.endPort;
  if (!present(end)) return;
  if (typeof end !== 'number' || !Number.isInteger(end))
    out.push(causes.typeInvalid(`${path}.endPort`, end, 'integer'));
  else if (!present(p))
    out.push(causes.required(`${path}.port`, 'must be specified when `endPort` is specified'));
  else if (typeof p === 'string')
    out.push(causes.forbidden(`${path}.endPort`, 'may not be specified when `port` is non-numeric'));
  else if (typeof p === 'number' && end < p)
    out.push(causes.invalid(`${path}.endPort`, end, 'must be greater than or equal to `port`'));
  else if (!validPort(end)) out.push(causes.invalid(`${path}.endPort`, end, PORT_RANGE));
}

function validateIpBlock(b: unknown, path: string, out: StatusCause[]): void {
  if (!isObject(b)) {
    out.push(causes.typeInvalid(path, b, 'object'));
    return;
  }
  if (typeof b.cidr !== 'string' || b.cidr === '') {
    out.push(causes.required(`${path}.cidr`));
    return;
  }
  const cidr = parseCidr(b.cidr);
  if (!cidr.ok) {
    out.push(
      causes.invalid(
        `${path}.cidr`,
        b.cidr,
        `must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64): ${cidr.reason}`,
      ),
    );
    return;
  }
  if (!present(b.except)) return;
  if (!Array.isArray(b.except)) {
    out.push(causes.typeInvalid(`${path}.except`, b.except, 'array'));
    return;
  }
  const type = cidr.family === 4 ? 'ipv4' : 'ipv6';
  const outer = new BlockList();
  outer.addSubnet(cidr.addr, cidr.len, type);
  b.except.forEach((e: unknown, i: number) => {
    const p = `${path}.except[${i}]`;
    const x = typeof e === 'string' ? parseCidr(e) : undefined;
    if (!x?.ok) {
      out.push(causes.invalid(p, e, 'must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)'));
      return;
    }
    // With a longer prefix, the except's network lies in cidr exactly when its address does.
    if (x.family !== cidr.family || x.len <= cidr.len || !outer.check(x.addr, type))
      out.push(causes.invalid(p, e, 'must be a strict subset of `cidr`'));
  });
}

function validatePeer(peer: unknown, path: string, out: StatusCause[]): void {
  if (!isObject(peer)) {
    out.push(causes.typeInvalid(path, peer, 'object'));
    return;
  }
  let n = 0;
  if (present(peer.podSelector)) {
    n++;
    validateSelector(peer.podSelector, `${path}.podSelector`, out);
  }
  if (present(peer.namespaceSelector)) {
    n++;
    validateSelector(peer.namespaceSelector, `${path}.namespaceSelector`, out);
  }
  if (present(peer.ipBlock)) {
    n++;
    validateIpBlock(peer.ipBlock, `${path}.ipBlock`, out);
  }
  if (n === 0) out.push(causes.required(path, 'must specify a peer'));
  else if (n > 1 && present(peer.ipBlock))
    out.push(causes.forbidden(path, 'may not specify both ipBlock and another peer'));
}

function validateRules(rules: unknown, path: string, peerField: 'from' | 'to', out: StatusCause[]): void {
  if (!present(rules)) return;
  if (!Array.isArray(rules)) {
    out.push(causes.typeInvalid(path, rules, 'array'));
    return;
  }
  rules.forEach((r: unknown, i: number) => {
    const rp = `${path}[${i}]`;
    if (!isObject(r)) {
      out.push(causes.typeInvalid(rp, r, 'object'));
      return;
    }
    for (const [field, each] of [
      ['ports', validatePort],
      [peerField, validatePeer],
    ] as const) {
      const list = r[field];
      if (!present(list)) continue;
      if (!Array.isArray(list)) out.push(causes.typeInvalid(`${rp}.${field}`, list, 'array'));
      else
        list.forEach((x: unknown, j: number) => {
          each(x, `${rp}.${field}[${j}]`, out);
        });
    }
  });
}

/** SetDefaults_NetworkPolicy: policyTypes from the rules present; each port's protocol TCP. */
function withDefaults(spec: Record<string, unknown>): Record<string, unknown> {
  const next = { ...spec };
  if (!present(next.podSelector)) next.podSelector = {};
  const types = next.policyTypes;
  if (!Array.isArray(types) || types.length === 0) {
    const egress = Array.isArray(next.egress) && next.egress.length > 0;
    next.policyTypes = egress ? ['Ingress', 'Egress'] : ['Ingress'];
  }
  for (const dir of ['ingress', 'egress'] as const) {
    if (!Array.isArray(next[dir])) continue;
    next[dir] = (next[dir] as unknown[]).map((r) =>
      isObject(r) && Array.isArray(r.ports)
        ? {
            ...r,
            ports: r.ports.map((p: unknown) =>
              isObject(p) && !present(p.protocol) ? { ...p, protocol: 'TCP' } : p,
            ),
          }
        : r,
    );
  }
  return next;
}

/** The NetworkPolicy to store (defaults applied), with every problem appended to `out`. */
export function validateNetworkPolicy(obj: KObject, out: StatusCause[]): KObject {
  if (!present(obj.spec)) {
    obj = { ...obj, spec: {} };
  }
  if (!isObject(obj.spec)) {
    out.push(causes.typeInvalid('spec', obj.spec, 'object'));
    return obj;
  }
  const spec = withDefaults(obj.spec);
  validateSelector(spec.podSelector, 'spec.podSelector', out);
  validateRules(spec.ingress, 'spec.ingress', 'from', out);
  validateRules(spec.egress, 'spec.egress', 'to', out);
  const types = spec.policyTypes as unknown[];
  if (types.length > 2)
    out.push(causes.invalid('spec.policyTypes', types, 'may not specify more than two policyTypes'));
  else
    types.forEach((t, i) => {
      if (!POLICY_TYPES.includes(t as string))
        out.push(causes.unsupported(`spec.policyTypes[${i}]`, t, POLICY_TYPES));
    });
  return { ...obj, spec };
}
