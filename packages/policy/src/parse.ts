// One NetworkPolicy object to the form the translation uses: defaults applied (policyTypes, TCP),
// ipBlocks as address spans with their excepts subtracted, and every problem named by its field
// path and value (the checks kube-apiserver makes; a policy read from a real server passes them).
import { type Family, parseCidrResult } from '@podnet/net';
import { type Span, spanOf, subtract } from './ranges.js';
import {
  type LabelSelector,
  type NetworkPolicy,
  NetworkPolicySchema,
  type Peer,
  type PolicyPort,
  type Protocol,
} from './types.js';

export type ParsedPeer =
  /** Pods chosen by selectors; an absent namespaceSelector means the policy's own namespace. */
  | { kind: 'pods'; podSelector?: LabelSelector; namespaceSelector?: LabelSelector }
  /** An ipBlock: `cidr` minus every `except`. */
  | { kind: 'block'; family: Family; spans: Span[]; text: string };

export interface ParsedPort {
  protocol: Protocol;
  /** Absent: every port of the protocol. A string is a named port, resolved per pod. */
  port?: number | string;
  endPort?: number;
}

export interface ParsedRule {
  /** Absent (or empty in the object): every source / destination. */
  peers?: ParsedPeer[];
  /** Absent (or empty in the object): every port and protocol. */
  ports?: ParsedPort[];
}

export interface ParsedPolicy {
  namespace: string;
  name: string;
  /** `namespace/name`. */
  key: string;
  podSelector: LabelSelector;
  /** Present when the policy isolates ingress (policyTypes, defaulted); an empty list denies all. */
  ingress?: ParsedRule[];
  /** Present when the policy isolates egress. */
  egress?: ParsedRule[];
}

/** policyTypes as kube-apiserver defaults them: Ingress always, Egress when egress rules exist. */
export function policyTypes(spec: NetworkPolicy['spec']): ('Ingress' | 'Egress')[] {
  if (spec.policyTypes && spec.policyTypes.length > 0) return spec.policyTypes;
  return (spec.egress?.length ?? 0) > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
}

const describe = (v: unknown) => JSON.stringify(v);

function parseBlock(
  b: NonNullable<Peer['ipBlock']>,
  path: string,
  problems: string[],
): ParsedPeer | undefined {
  const c = parseCidrResult(b.cidr, { hostBits: 'clear' });
  if (!c.ok) {
    problems.push(`${path}.cidr: ${describe(b.cidr)} is not a CIDR: ${c.reason}`);
    return undefined;
  }
  const outer = spanOf(c.value);
  const excepts: Span[] = [];
  (b.except ?? []).forEach((e, i) => {
    const x = parseCidrResult(e, { hostBits: 'clear' });
    if (!x.ok) problems.push(`${path}.except[${i}]: ${describe(e)} is not a CIDR: ${x.reason}`);
    else {
      const s = spanOf(x.value);
      if (
        x.value.family !== c.value.family ||
        x.value.len <= c.value.len ||
        s.start < outer.start ||
        s.end > outer.end
      )
        problems.push(`${path}.except[${i}]: ${describe(e)} must be a strict subset of cidr ${b.cidr}`);
      else excepts.push(s);
    }
  });
  const text = [b.cidr, ...(b.except ?? []).map((e) => `except ${e}`)].join(' ');
  return { kind: 'block', family: c.value.family, spans: subtract([outer], excepts), text };
}

function parsePeer(p: Peer, path: string, problems: string[]): ParsedPeer | undefined {
  const selectors = p.podSelector != null || p.namespaceSelector != null;
  if (p.ipBlock != null) {
    if (selectors) problems.push(`${path}: may not specify both ipBlock and another peer`);
    return parseBlock(p.ipBlock, `${path}.ipBlock`, problems);
  }
  if (!selectors) {
    problems.push(`${path}: must specify a peer (podSelector, namespaceSelector or ipBlock)`);
    return undefined;
  }
  const out: ParsedPeer = { kind: 'pods' };
  if (p.podSelector != null) out.podSelector = p.podSelector;
  if (p.namespaceSelector != null) out.namespaceSelector = p.namespaceSelector;
  return out;
}

function parsePort(p: PolicyPort, path: string, problems: string[]): ParsedPort | undefined {
  const out: ParsedPort = { protocol: p.protocol ?? 'TCP' };
  const okPort = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;
  if (typeof p.port === 'number') {
    if (!okPort(p.port)) problems.push(`${path}.port: ${p.port} must be between 1 and 65535, inclusive`);
    out.port = p.port;
  } else if (typeof p.port === 'string') {
    if (
      !/^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/.test(p.port) ||
      !/[a-z]/.test(p.port) ||
      p.port.includes('--')
    )
      problems.push(`${path}.port: ${describe(p.port)} is not a port name (IANA_SVC_NAME)`);
    out.port = p.port;
  }
  if (p.endPort != null) {
    if (typeof p.port !== 'number')
      problems.push(
        `${path}.endPort: ${p.endPort} needs a numeric port (port is ${describe(p.port ?? null)})`,
      );
    else if (!okPort(p.endPort) || p.endPort < p.port)
      problems.push(`${path}.endPort: ${p.endPort} must be between port ${p.port} and 65535`);
    out.endPort = p.endPort;
  }
  return out;
}

function parseRule(
  peers: Peer[] | null | undefined,
  ports: PolicyPort[] | null | undefined,
  path: string,
  peerField: 'from' | 'to',
  problems: string[],
): ParsedRule {
  const rule: ParsedRule = {};
  if (peers && peers.length > 0)
    rule.peers = peers.flatMap((p, i) => parsePeer(p, `${path}.${peerField}[${i}]`, problems) ?? []);
  if (ports && ports.length > 0)
    rule.ports = ports.flatMap((p, i) => parsePort(p, `${path}.ports[${i}]`, problems) ?? []);
  return rule;
}

function zodPath(path: PropertyKey[]): string {
  return path.reduce<string>(
    (acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${String(k)}` : String(k)),
    '',
  );
}

/** The policy in the translation's form, or the problems that make it unusable (field: value why). */
export function parsePolicy(
  raw: unknown,
): { ok: true; policy: ParsedPolicy } | { ok: false; key: string; problems: string[] } {
  const meta = (raw as { metadata?: { namespace?: unknown; name?: unknown } } | null)?.metadata;
  const key = `${String(meta?.namespace ?? '?')}/${String(meta?.name ?? '?')}`;
  const r = NetworkPolicySchema.safeParse(raw);
  if (!r.success) {
    const problems = r.error.issues.map((i) => {
      const value = i.path.reduce<unknown>(
        (o, k) => (o && typeof o === 'object' ? (o as Record<PropertyKey, unknown>)[k] : undefined),
        raw,
      );
      return `${zodPath(i.path)}: ${describe(value ?? null)} ${i.message}`;
    });
    return { ok: false, key, problems };
  }
  const np = r.data;
  const problems: string[] = [];
  const types = policyTypes(np.spec);
  const policy: ParsedPolicy = {
    namespace: np.metadata.namespace,
    name: np.metadata.name,
    key,
    podSelector: np.spec.podSelector ?? {},
  };
  const ingress = (np.spec.ingress ?? []).map((x, i) =>
    parseRule(x.from, x.ports, `spec.ingress[${i}]`, 'from', problems),
  );
  const egress = (np.spec.egress ?? []).map((x, i) =>
    parseRule(x.to, x.ports, `spec.egress[${i}]`, 'to', problems),
  );
  if (types.includes('Ingress')) policy.ingress = ingress;
  if (types.includes('Egress')) policy.egress = egress;
  if (problems.length > 0) return { ok: false, key, problems };
  return { ok: true, policy };
}
