// A small cluster for the translation's tests (namespaces x, y, z; pods a, b, c in each; on two
// nodes), and an interpreter of a Translation: does a packet pass, given the allow entries and the
// sets the translation produced? The expected answers in the tests are written from the
// Kubernetes documentation, not from this code.
import { type Family, parseCidr, parseIp } from '@podnet/net';
import { peerEntries, type Translation, translate } from '../compute.js';
import { spanOf } from '../ranges.js';
import type { NamespaceInput, PodInput, Protocol } from '../types.js';

export const NODE1 = 'n1';
export const NODE2 = 'n2';
export const NODE1_ADDRS = ['192.168.0.1/24', 'fd00:192::1/64'];
export const NODE2_ADDRS = ['192.168.0.2/24', 'fd00:192::2/64'];

export const NAMESPACES: NamespaceInput[] = [
  { name: 'x', labels: { ns: 'x', team: 'blue' } },
  { name: 'y', labels: { ns: 'y', team: 'blue' } },
  { name: 'z', labels: { ns: 'z' } },
];

const NS_NUM: Record<string, number> = { x: 1, y: 2, z: 3 };
const POD_NUM: Record<string, number> = { a: 1, b: 2, c: 3 };

/** `web` is the named port that means a different number on each pod (none on c). */
const WEB: Record<string, number | undefined> = { a: 8080, b: 9090, c: undefined };

export function pod(ns: string, name: string): PodInput {
  const n = NS_NUM[ns]!;
  const p = POD_NUM[name]!;
  const web = WEB[name];
  return {
    namespace: ns,
    name,
    labels: { pod: name, ...(name === 'a' ? { tier: 'front' } : {}) },
    ips: [`10.0.${n}.${p}`, `fd00::${n}:${p}`],
    node: p === 2 ? NODE2 : NODE1,
    ports: [
      { name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' },
      { name: 'serve-80-udp', containerPort: 80, protocol: 'UDP' },
      { name: 'serve-81-sctp', containerPort: 81, protocol: 'SCTP' },
      ...(web ? [{ name: 'web', containerPort: web, protocol: 'TCP' as const }] : []),
    ],
  };
}

export const PODS: PodInput[] = ['x', 'y', 'z'].flatMap((ns) => ['a', 'b', 'c'].map((p) => pod(ns, p)));

export function policy(ns: string, name: string, spec: Record<string, unknown>): unknown {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { namespace: ns, name },
    spec,
  };
}

export function translateFor(node: string, policies: unknown[], pods = PODS): Translation {
  return translate({
    node,
    nodeAddresses: node === NODE1 ? NODE1_ADDRS : NODE2_ADDRS,
    policies,
    pods,
    namespaces: NAMESPACES,
  });
}

function inPrefixes(prefixes: string[], ip: { family: Family; value: bigint }): boolean {
  return prefixes.some((p) => {
    const c = parseCidr(p.includes('/') ? p : `${p}/${ip.family === 4 ? 32 : 128}`, { hostBits: 'reject' });
    if (!c || c.family !== ip.family) return false;
    const s = spanOf(c);
    return ip.value >= s.start && ip.value <= s.end;
  });
}

/** Whether the translation lets a packet to/from `podKey` pass in `dir`, from/to `peerIp`. */
export function passes(
  t: Translation,
  dir: 'ingress' | 'egress',
  podKey: string,
  peerIp: string,
  protocol: Protocol,
  port: number,
): boolean {
  const p = t.pods.find((x) => `${x.namespace}/${x.name}` === podKey);
  const allows = p?.[dir];
  if (!allows) return true;
  const ip = parseIp(peerIp)!;
  if (dir === 'ingress' && inPrefixes(ip.family === 4 ? t.nodeAddrs.v4 : t.nodeAddrs.v6, ip)) return true;
  return allows.some((a) => {
    if (a.peers) {
      const set = t.sets.find((s) => s.id === a.peers)!;
      if (!inPrefixes(peerEntries(set, ip.family === 4 ? 'v4' : 'v6'), ip)) return false;
    }
    if (!a.ports) return true;
    return a.ports.some(
      (m) =>
        m.protocol === protocol &&
        (m.port === undefined || (port >= m.port && port <= (m.endPort ?? m.port))),
    );
  });
}

const podByKey = (k: string) => PODS.find((p) => `${p.namespace}/${p.name}` === k)!;

export const POD_KEYS = PODS.map((p) => `${p.namespace}/${p.name}`);

/** The two nodes' translations of one set of policies. */
export function translateAll(policies: unknown[]): Record<string, Translation> {
  return { [NODE1]: translateFor(NODE1, policies), [NODE2]: translateFor(NODE2, policies) };
}

/**
 * Whether `from` reaches `to` on protocol/port over IPv4 or IPv6: the sender's node enforces its
 * egress, the receiver's node its ingress.
 */
export function reaches(
  ts: Record<string, Translation>,
  from: string,
  to: string,
  protocol: Protocol,
  port: number,
  family: 4 | 6 = 4,
): boolean {
  const src = podByKey(from);
  const dst = podByKey(to);
  const ipOf = (p: PodInput) => p.ips!.find((ip) => (family === 4 ? !ip.includes(':') : ip.includes(':')))!;
  const out = passes(ts[src.node!]!, 'egress', from, ipOf(dst), protocol, port);
  const inn = passes(ts[dst.node!]!, 'ingress', to, ipOf(src), protocol, port);
  return out && inn;
}
