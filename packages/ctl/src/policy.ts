// `podnetctl policy <namespace>/<pod>`: which NetworkPolicies select the pod and what they allow,
// and the verdicts `podnetctl trace` gives on each side of a path, both computed with the same
// translation the agent enforces (@podnet/policy), so they say what the node's chains hold.
import { cidrContains, parseCidr, parseIp } from '@podnet/net';
import {
  type Allow,
  type NamespaceInput,
  type PeerSet,
  type PodInput,
  type PortMatch,
  PROTOCOLS,
  type Protocol,
  peerEntries,
  type Translation,
  translate,
} from '@podnet/policy';
import type { CommandResult } from './commands.js';
import { CtlError } from './errors.js';
import { type Column, renderTable } from './format.js';
import type { PolicyHook } from './trace.js';

export interface PolicyRow {
  direction: 'ingress' | 'egress';
  policy: string;
  rule: number;
  peers: string;
  ports: string;
}

const portText = (p: PortMatch) =>
  p.port === undefined ? `${p.protocol}/*` : `${p.protocol}/${p.port}${p.endPort ? `-${p.endPort}` : ''}`;

function peersText(a: Allow, sets: Map<string, PeerSet>): string {
  if (!a.peers) return '*';
  const s = sets.get(a.peers)!;
  const all = [...peerEntries(s, 'v4'), ...peerEntries(s, 'v6')];
  return all.length ? all.join(',') : '(none)';
}

/** The pod's effective allow list, from the cluster's policies, pods and namespaces. */
export function policyExplain(
  target: string,
  cluster: { policies: unknown[]; pods: PodInput[]; namespaces: NamespaceInput[] },
): CommandResult {
  const [namespace, name, extra] = target.split('/');
  if (!namespace || !name || extra !== undefined)
    throw new CtlError('CTL_ERR_USAGE', `${JSON.stringify(target)}: give the pod as NAMESPACE/NAME`);
  const pod = cluster.pods.find((p) => p.namespace === namespace && p.name === name);
  if (!pod) throw new CtlError('CTL_ERR_NOT_FOUND', `pod ${namespace}/${name} not found`);
  if (!pod.node)
    throw new CtlError('CTL_ERR_NOT_FOUND', `pod ${namespace}/${name} is not scheduled to a node`);
  const t = translate({ node: pod.node, nodeAddresses: [], ...cluster });
  const pp = t.pods.find((p) => p.namespace === namespace && p.name === name);
  const sets = new Map(t.sets.map((s) => [s.id, s]));
  const rows: PolicyRow[] = [];
  for (const dir of ['ingress', 'egress'] as const)
    for (const a of pp?.[dir] ?? [])
      rows.push({
        direction: dir,
        policy: a.policy,
        rule: a.rule,
        peers: peersText(a, sets),
        ports: a.ports ? a.ports.map(portText).join(',') + (a.named ? ` (${a.named.join(',')})` : '') : '*',
      });
  const isolation = (dir: 'ingress' | 'egress') =>
    !pp?.[dir]
      ? 'not isolated: everything allowed'
      : rows.some((r) => r.direction === dir)
        ? 'isolated: only the rows below'
        : 'isolated: nothing allowed';
  const problems = t.problems;
  const cols: Column<PolicyRow>[] = [
    { header: 'DIRECTION', value: (r) => r.direction },
    { header: 'POLICY', value: (r) => r.policy },
    { header: 'RULE', value: (r) => r.rule, align: 'right' },
    { header: 'PEERS', value: (r) => r.peers },
    { header: 'PORTS', value: (r) => r.ports },
  ];
  return {
    data: {
      pod: `${namespace}/${name}`,
      node: pod.node,
      policies: pp?.policies ?? [],
      ingressIsolated: !!pp?.ingress,
      egressIsolated: !!pp?.egress,
      allow: rows,
      problems,
    },
    table: () =>
      [
        `Pod ${namespace}/${name} on node ${pod.node}`,
        `Selected by: ${pp?.policies.join(', ') || 'no NetworkPolicy'}`,
        `Ingress: ${isolation('ingress')}`,
        `Egress: ${isolation('egress')}`,
        "Always allowed: replies to allowed connections, and traffic from the pod's own node.",
        ...(rows.length ? ['', renderTable(cols, rows)] : []),
        ...(problems.length ? ['', 'Skipped inputs:', ...problems.map((p) => `  - ${p}`)] : []),
      ].join('\n'),
  };
}

// ---------------------------------------------------------------- trace's verdicts

/** What a trace's NetworkPolicy verdict is asked about: one port, a protocol, or any (neither). */
export interface PolicyQuery {
  protocol?: Protocol | 'ICMP';
  port?: number;
}

/** `--port` and `--protocol` checked; a port alone is TCP, as a NetworkPolicy port without protocol. */
export function parsePolicyQuery(port?: string, protocol?: string): PolicyQuery {
  const q: PolicyQuery = {};
  if (protocol !== undefined) {
    const p = protocol.toUpperCase();
    if (p !== 'ICMP' && !(PROTOCOLS as readonly string[]).includes(p))
      throw new CtlError(
        'CTL_ERR_USAGE',
        `--protocol ${JSON.stringify(protocol)}: use tcp, udp, sctp or icmp`,
      );
    q.protocol = p as PolicyQuery['protocol'];
  }
  if (port !== undefined) {
    const n = Number(port);
    if (!/^\d+$/.test(port) || n < 1 || n > 65535)
      throw new CtlError('CTL_ERR_USAGE', `--port ${JSON.stringify(port)}: use a number from 1 to 65535`);
    if (q.protocol === 'ICMP')
      throw new CtlError('CTL_ERR_USAGE', `--port ${port} with --protocol icmp: ICMP has no ports`);
    q.port = n;
    q.protocol ??= 'TCP';
  }
  return q;
}

/** `TCP port 80`, `UDP (any port)`, `any port and protocol`. */
export function queryText(q: PolicyQuery): string {
  if (q.port !== undefined) return `${q.protocol} port ${q.port}`;
  if (q.protocol === 'ICMP') return 'ICMP';
  if (q.protocol) return `${q.protocol} (any port)`;
  return 'any port and protocol';
}

export interface SideVerdict {
  /** ok: allowed (on every port asked about); partial: only on some ports (no --port given);
   *  problem: denied. */
  status: 'ok' | 'partial' | 'problem';
  detail: string;
  /** The policies that decide: those whose rules allow it, or (denied) those isolating the pod. */
  decidedBy: string[];
}

function inSet(set: PeerSet | undefined, ip: string): boolean {
  const a = parseIp(ip);
  if (!a || !set) return false;
  for (const e of peerEntries(set, a.family === 6 ? 'v6' : 'v4')) {
    const c = parseCidr(e.includes('/') ? e : `${e}/${a.family === 6 ? 128 : 32}`, { hostBits: 'clear' });
    if (c && cidrContains(c, a)) return true;
  }
  return false;
}

/** Does `a`'s port list let every port of the query through (`full`), or only some (`some`)? */
function portFit(a: Allow, q: PolicyQuery): 'full' | 'some' | 'none' {
  if (!a.ports) return 'full';
  if (q.protocol === 'ICMP') return 'none';
  const ofProto = a.ports.filter((p) => !q.protocol || p.protocol === q.protocol);
  if (q.port !== undefined)
    return ofProto.some(
      (p) => p.port === undefined || (q.port! >= p.port && q.port! <= (p.endPort ?? p.port)),
    )
      ? 'full'
      : 'none';
  if (q.protocol && ofProto.some((p) => p.port === undefined)) return 'full';
  return ofProto.length ? 'some' : 'none';
}

const ruleName = (side: 'ingress' | 'egress', a: Allow) => `${a.policy} ${side}[${a.rule}]`;

/**
 * The verdict of one side for `pod` (the source on egress, the destination on ingress) talking to
 * `peer` (the other end's address), from `t`, the translation for the pod's node: what that
 * node's chains hold. Replies to an allowed connection pass either way (conntrack).
 */
export function sideVerdict(
  t: Translation,
  side: 'ingress' | 'egress',
  pod: { namespace: string; name: string },
  peer: string,
  q: PolicyQuery,
): SideVerdict {
  const key = `${pod.namespace}/${pod.name}`;
  const pp = t.pods.find((p) => p.namespace === pod.namespace && p.name === pod.name);
  const skipped = t.problems.length
    ? ` (${t.problems.length} policy input(s) skipped as invalid: podnetctl policy ${key} lists them)`
    : '';
  const allows = pp?.[side];
  if (!allows)
    return {
      status: 'ok',
      detail: `allowed: no NetworkPolicy isolates ${key} for ${side}${
        pp
          ? ` (${pp.policies.join(', ')} ${pp.policies.length === 1 ? 'selects' : 'select'} it for ${side === 'ingress' ? 'egress' : 'ingress'} only)`
          : ''
      }${skipped}`,
      decidedBy: [],
    };
  const sets = new Map(t.sets.map((s) => [s.id, s]));
  const toPeer = allows.filter((a) => !a.peers || inSet(sets.get(a.peers), peer));
  const full = toPeer.filter((a) => portFit(a, q) === 'full');
  const some = toPeer.filter((a) => portFit(a, q) === 'some');
  const what = `${side === 'egress' ? 'to' : 'from'} ${peer}`;
  const uniq = (xs: string[]) => [...new Set(xs)];
  if (full.length)
    return {
      status: 'ok',
      detail: `allowed ${what} on ${queryText(q)} by ${uniq(full.map((a) => ruleName(side, a))).join(', ')}${skipped}`,
      decidedBy: uniq(full.map((a) => a.policy)),
    };
  if (some.length)
    return {
      status: 'partial',
      detail: `allowed ${what} only on ${uniq(some.flatMap((a) => a.ports!.map(portText))).join(', ')} by ${uniq(
        some.map((a) => ruleName(side, a)),
      ).join(
        ', ',
      )}; every other port is denied (asked about ${queryText(q)}: give --port/--protocol to check one)${skipped}`,
      decidedBy: uniq(some.map((a) => a.policy)),
    };
  const elsewhere = toPeer.length
    ? `; rules allowing ${peer} on other ports: ${uniq(toPeer.flatMap((a) => (a.ports ?? []).map(portText))).join(', ')}`
    : '';
  return {
    status: 'problem',
    detail: `denied ${what} on ${queryText(q)}: ${key} is isolated for ${side} by ${pp.policies.join(', ')} and no rule allows it${elsewhere}${skipped}`,
    decidedBy: [...pp.policies],
  };
}

export interface PolicyCluster {
  policies: unknown[];
  pods: PodInput[];
  namespaces: NamespaceInput[];
}

/** The trace's policy hook over the cluster's policies, pods and namespaces (one translation per node). */
export function policyHook(cluster: PolicyCluster, q: PolicyQuery): PolicyHook {
  const byNode = new Map<string, Translation>();
  const forNode = (node: string) => {
    let t = byNode.get(node);
    if (!t) {
      t = translate({ node, nodeAddresses: [], ...cluster });
      byNode.set(node, t);
    }
    return t;
  };
  return ({ side, src, srcIp, dst, dstIp }) => {
    if (side === 'egress') {
      if (!src.node || !srcIp)
        return { status: 'not-checked', detail: 'the source pod has no node or no address' };
      return { node: src.node, ...sideVerdict(forNode(src.node), 'egress', src, dstIp, q) };
    }
    const pod =
      dst.kind === 'pod'
        ? dst
        : cluster.pods.find((p) => (p.ips ?? []).includes(dstIp) && p.node !== undefined);
    if (!pod)
      return {
        status: 'ok',
        detail: `${dstIp} is not a pod's address: no NetworkPolicy ingress applies to it`,
      };
    if (!pod.node || !srcIp)
      return { status: 'not-checked', detail: `pod ${pod.namespace}/${pod.name} has no node` };
    return {
      node: pod.node,
      ...sideVerdict(forNode(pod.node), 'ingress', { namespace: pod.namespace, name: pod.name }, srcIp, q),
      ...(dst.kind === 'ip' ? { pod: `${pod.namespace}/${pod.name}` } : {}),
    };
  };
}
