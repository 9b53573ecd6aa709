// `podnetctl trace <ns/pod> <ns/pod | IP>`: the path of a packet, hop by hop, from the API state
// (pods, IPAM blocks, NodeStatus) and, for the hops on the node podnetctl runs on, from the kernel
// (routes and links) and the local agent (BGP best path, next hop, the peer it came from), and the
// NetworkPolicy verdict on each side (policy.ts). Pure: the command gathers the inputs, this
// explains them. Each hop is `ok`, `problem` (saying what is missing), `partial` (a policy allows
// only some ports and no port was asked about) or `not-checked` (saying where it can be checked).
import type { AgentStatus } from '@podnet/agent';
import type { NodeStatus } from '@podnet/k8s';
import { cidrContains, parseCidr, parseIp } from '@podnet/net';
import type { CommandResult } from './commands.js';
import { type Column, renderTable } from './format.js';
import { PODNET_ROUTE_PROTOCOL } from './kernel.js';

export const POD_GATEWAY = { 4: '169.254.1.1', 6: 'fe80::1' } as const;

export interface TracePod {
  namespace: string;
  name: string;
  node?: string;
  ips: string[];
  /** Host-side interface (pn + 11 hex). */
  iface: string;
}

export interface KernelRoute {
  dst: string;
  kind: string;
  via: string[];
  dev?: string;
  protocol: number;
}

/** What podnetctl read on the node it runs on. */
export interface LocalNode {
  node: string;
  agent?: AgentStatus;
  kernel?: { routes: KernelRoute[]; links: { name: string; up: boolean }[] };
  /** Why the kernel was not read (not root…). */
  kernelError?: string;
}

export interface PolicyVerdict {
  status: HopStatus;
  detail: string;
  /** The node whose chains decide (the source's on egress, the destination pod's on ingress). */
  node?: string;
  /** The policies that decide; empty: none selects the pod for that side. */
  decidedBy?: string[];
  /** The pod an IP destination turned out to be (ingress). */
  pod?: string;
}

/**
 * The NetworkPolicy verdict for src → dst on one side (egress on the source node, ingress on the
 * destination node); `policyHook` (policy.ts) evaluates it with @podnet/policy's translation.
 * Without a hook the hops are not-checked.
 */
export type PolicyHook = (q: {
  side: 'egress' | 'ingress';
  src: TracePod;
  srcIp?: string;
  dst: TraceTarget;
  dstIp: string;
}) => PolicyVerdict;

export type TraceTarget = ({ kind: 'pod' } & TracePod) | { kind: 'ip'; ip: string };

export interface TraceInput {
  src: TracePod;
  dst: TraceTarget;
  /** IPAM blocks: CIDR and the node it is affine to. */
  blocks: { cidr: string; node?: string }[];
  nodeStatuses: NodeStatus[];
  local?: LocalNode;
  policy?: PolicyHook;
  /** What the policy verdicts are about (`TCP port 80`, `any port and protocol`), for the header. */
  policyQuery?: string;
}

export type HopStatus = 'ok' | 'problem' | 'partial' | 'not-checked';

export interface Hop {
  hop: string;
  where: string;
  source: 'api' | 'kernel' | 'agent' | 'policy';
  status: HopStatus;
  detail: string;
  /** Policy hops: the NetworkPolicies that decide (empty: none selects the pod). */
  decidedBy?: string[];
}

const familyOf = (ip: string) => (ip.includes(':') ? 6 : 4);

/** The longest prefix of `routes` holding `ip` (the kernel's choice in the main table, metrics aside). */
export function longestMatch<T>(routes: T[], ip: string, key: (r: T) => string): T | undefined {
  const a = parseIp(ip);
  if (!a) return undefined;
  let best: { r: T; len: number } | undefined;
  for (const r of routes) {
    const k = key(r);
    const dst = k === 'default' ? (a.family === 6 ? '::/0' : '0.0.0.0/0') : k;
    const c = parseCidr(dst.includes('/') ? dst : `${dst}/${a.family === 6 ? 128 : 32}`, {
      hostBits: 'clear',
    });
    if (!c || c.family !== a.family || !cidrContains(c, a)) continue;
    if (!best || c.len > best.len) best = { r, len: c.len };
  }
  return best?.r;
}

/** The route protocol of the agent's kernel routes: what its /status says, else podnet's default. */
const podnetProto = (local?: LocalNode) => local?.agent?.routeProtocol?.number ?? PODNET_ROUTE_PROTOCOL;

function routeText(r: KernelRoute, proto: number): string {
  const how = r.via.length ? `via ${r.via.join(',')}` : r.dev ? `dev ${r.dev}` : '';
  return `${r.kind === 'unicast' ? '' : `${r.kind} `}${r.dst} ${how} proto ${r.protocol === proto ? 'podnet' : r.protocol}`.replace(
    /\s+/g,
    ' ',
  );
}

/** The hops of src → dst. */
export function trace(input: TraceInput): { ip: string; hops: Hop[] } {
  const { src, dst, local } = input;
  const hops: Hop[] = [];
  const dstIps = dst.kind === 'ip' ? [dst.ip] : dst.ips;
  const srcIp = src.ips.find((s) => dstIps.some((d) => familyOf(d) === familyOf(s))) ?? src.ips[0];
  const ip = dstIps.find((d) => srcIp && familyOf(d) === familyOf(srcIp)) ?? dstIps[0] ?? '';
  const srcNode = src.node ?? '(unscheduled)';
  const status = (n?: string) => input.nodeStatuses.find((s) => s.metadata.name === n)?.status;
  const here = (n?: string) => !!local && !!n && local.node === n;

  // 1. The source pod: scheduled, addressed, its host route and veth (kernel when local).
  if (!src.node || !srcIp)
    hops.push({
      hop: 'source pod',
      where: `${src.namespace}/${src.name}`,
      source: 'api',
      status: 'problem',
      detail: !src.node ? 'the pod is not scheduled on a node' : 'the pod has no address (CNI ADD not done?)',
    });
  else {
    const gw = POD_GATEWAY[familyOf(srcIp)];
    hops.push({
      hop: 'source pod',
      where: `${src.namespace}/${src.name}`,
      source: 'api',
      status: 'ok',
      detail: `${srcIp} on node ${src.node}; default via ${gw} dev eth0 (the CNI's route inside the pod; the host answers ${gw} on ${src.iface})`,
    });
    hops.push(hostSide('source veth', src, srcIp, local));
  }
  if (!ip) {
    hops.push({
      hop: 'destination',
      where: '-',
      source: 'api',
      status: 'problem',
      detail: 'the destination pod has no address',
    });
    return { ip, hops };
  }
  if (srcIp && familyOf(srcIp) !== familyOf(ip))
    hops.push({
      hop: 'family',
      where: '-',
      source: 'api',
      status: 'problem',
      detail: `the source has no IPv${familyOf(ip)} address to reach ${ip}`,
    });

  // 2. Egress policy on the source node (hook).
  hops.push(policyHop('egress', input, srcIp, ip, srcNode));

  // 3. The source node's route for the destination: the block owner from IPAM, the session to it
  // from the NodeStatus, and (on that node) the kernel's route and the agent's best path.
  const owner = longestMatch(input.blocks, ip, (b) => b.cidr);
  const dstNode = dst.kind === 'pod' ? dst.node : owner?.node;
  const srcStatus = status(src.node);
  if (dstNode && dstNode !== src.node) {
    const sess = srcStatus?.sessions.find((s) => s.peerNode === dstNode);
    const anyUp = srcStatus?.sessions.some((s) => s.state === 'Established');
    hops.push({
      hop: 'route to destination node',
      where: `node ${srcNode}`,
      source: 'api',
      status: !srcStatus
        ? 'problem'
        : sess
          ? sess.state === 'Established'
            ? 'ok'
            : 'problem'
          : anyUp
            ? 'ok'
            : 'problem',
      detail: !srcStatus
        ? `no NodeStatus for node ${srcNode}: its agent is not reporting`
        : `${ip} is in block ${owner?.cidr ?? '(none)'} of node ${dstNode}; ${
            sess
              ? `session with ${dstNode} (${sess.peer}) ${sess.state}${sess.lastError ? `: ${sess.lastError}` : ''}`
              : `no direct session with ${dstNode} (learned through ${anyUp ? 'an Established peer (route reflector or ToR)' : 'no Established session'})`
          }`,
    });
  } else if (!owner && dst.kind === 'ip')
    hops.push({
      hop: 'route to destination',
      where: `node ${srcNode}`,
      source: 'api',
      status: 'ok',
      detail: `${ip} is outside every IPAM block: it leaves by the node's own routes (ToR, default route)`,
    });
  if (here(src.node))
    hops.push(
      kernelRouteHop(local!, ip, dstNode === src.node && dst.kind === 'pod' ? dst : undefined, owner),
    );
  else
    hops.push({
      hop: 'kernel route',
      where: `node ${srcNode}`,
      source: 'kernel',
      status: 'not-checked',
      detail: `run podnetctl trace on node ${srcNode} to read its kernel`,
    });

  // 4. The destination node's route to the pod's interface.
  if (dst.kind === 'pod') {
    const ds = status(dst.node);
    if (dst.node && dst.node !== src.node)
      hops.push({
        hop: 'destination node',
        where: `node ${dst.node}`,
        source: 'api',
        status: ds?.ready ? 'ok' : 'problem',
        detail: !ds
          ? `no NodeStatus for node ${dst.node}: its agent is not reporting`
          : ds.ready
            ? `agent ready; ${ds.routes.ipv4.failed + ds.routes.ipv6.failed} routes failed`
            : `agent not ready: ${ds.reasons.join('; ')}`,
      });
    if (dst.node !== src.node) hops.push(hostSide('destination veth', dst, ip, local));
    hops.push(policyHop('ingress', input, srcIp, ip, dst.node ?? '-'));
  } else if (input.policy) hops.push(policyHop('ingress', input, srcIp, ip, '-'));
  return { ip, hops };
}

/** The host route `ip/32 dev <veth>` and the veth itself, read from the kernel when on that node. */
function hostSide(hop: string, pod: TracePod, ip: string, local?: LocalNode): Hop {
  const where = `node ${pod.node ?? '-'}`;
  if (!local || local.node !== pod.node)
    return {
      hop,
      where,
      source: 'kernel',
      status: 'not-checked',
      detail: `run podnetctl trace on node ${pod.node ?? '-'} to read ${ip} dev ${pod.iface}`,
    };
  if (!local.kernel)
    return {
      hop,
      where,
      source: 'kernel',
      status: 'not-checked',
      detail: `kernel not read: ${local.kernelError ?? '?'}`,
    };
  const host = `${ip}/${familyOf(ip) === 6 ? 128 : 32}`;
  const r = local.kernel.routes.find((x) => x.dst === host);
  const link = local.kernel.links.find((l) => l.name === pod.iface);
  const missing = [
    ...(!link ? [`interface ${pod.iface} is missing`] : !link.up ? [`interface ${pod.iface} is down`] : []),
    ...(!r
      ? [`no route ${host} dev ${pod.iface}`]
      : r.dev !== pod.iface
        ? [`${host} goes ${routeText(r, podnetProto(local))}, not dev ${pod.iface}`]
        : []),
  ];
  return {
    hop,
    where,
    source: 'kernel',
    status: missing.length ? 'problem' : 'ok',
    detail: missing.length ? missing.join('; ') : `${routeText(r!, podnetProto(local))}; ${pod.iface} up`,
  };
}

function kernelRouteHop(
  local: LocalNode,
  ip: string,
  samePod: TraceTarget | undefined,
  owner: { cidr: string; node?: string } | undefined,
): Hop {
  const where = `node ${local.node}`;
  if (!local.kernel)
    return {
      hop: 'kernel route',
      where,
      source: 'kernel',
      status: 'not-checked',
      detail: `kernel not read: ${local.kernelError ?? '?'}`,
    };
  const proto = podnetProto(local);
  const r = longestMatch(local.kernel.routes, ip, (x) => x.dst);
  const bgp = local.agent?.routes.find((x) => x.type === 'remote' && r && x.dst === r.dst);
  const best = bgp
    ? `; BGP best path ${bgp.dst} via ${bgp.via?.join(',') ?? '-'}${bgp.peer ? ` from peer ${bgp.peer}` : ''} (agent: ${bgp.state})`
    : '';
  if (!r)
    return { hop: 'kernel route', where, source: 'kernel', status: 'problem', detail: `no route to ${ip}` };
  if (r.kind === 'blackhole' || r.kind === 'unreachable' || r.kind === 'prohibit')
    return {
      hop: 'kernel route',
      where,
      source: 'kernel',
      status: 'problem',
      detail: `${routeText(r, proto)} drops it: ${
        owner?.node === local.node && samePod === undefined
          ? `${ip} is in this node's block ${owner.cidr} but no pod here has it`
          : 'the more specific route is missing'
      }`,
    };
  if (samePod?.kind === 'pod' && r.dev !== samePod.iface)
    return {
      hop: 'kernel route',
      where,
      source: 'kernel',
      status: 'problem',
      detail: `${ip} is a pod on this node but goes ${routeText(r, proto)}, not dev ${samePod.iface}`,
    };
  // A block of another node is reached by the route the agent installs for it (protocol `proto`):
  // anything else (a default route) means podnet's route is missing.
  if (owner?.node && owner.node !== local.node && r.protocol !== proto)
    return {
      hop: 'kernel route',
      where,
      source: 'kernel',
      status: 'problem',
      detail: `no podnet route (protocol ${proto}) for block ${owner.cidr} of node ${owner.node}: ${ip} takes ${routeText(r, proto)}${best}`,
    };
  return {
    hop: 'kernel route',
    where,
    source: 'kernel',
    status: 'ok',
    detail: `${routeText(r, proto)}${best}`,
  };
}

function policyHop(
  side: 'egress' | 'ingress',
  input: TraceInput,
  srcIp: string | undefined,
  ip: string,
  node: string,
): Hop {
  const v: PolicyVerdict = input.policy?.({
    side,
    src: input.src,
    ...(srcIp ? { srcIp } : {}),
    dst: input.dst,
    dstIp: ip,
  }) ?? {
    status: 'not-checked',
    detail: 'NetworkPolicies not read (see `podnetctl policy NAMESPACE/POD`)',
  };
  return {
    hop: `${side} policy`,
    where: `node ${v.node ?? node}${v.pod ? ` (pod ${v.pod})` : ''}`,
    source: 'policy',
    status: v.status,
    detail: v.detail,
    ...(v.decidedBy ? { decidedBy: v.decidedBy } : {}),
  };
}

/** The command's result: the hop table; exit code 1 when a hop has a problem. */
export function traceResult(input: TraceInput): CommandResult {
  const t = trace(input);
  const cols: Column<Hop>[] = [
    { header: 'HOP', value: (h) => h.hop },
    { header: 'WHERE', value: (h) => h.where },
    { header: 'FROM', value: (h) => h.source },
    { header: 'STATUS', value: (h) => h.status },
    { header: 'DETAIL', value: (h) => h.detail },
  ];
  const problems = t.hops.filter((h) => h.status === 'problem');
  const partial = t.hops.filter((h) => h.status === 'partial');
  const to = input.dst.kind === 'pod' ? `${input.dst.namespace}/${input.dst.name} (${t.ip})` : t.ip;
  const anyPort = input.policyQuery === 'any port and protocol';
  return {
    data: {
      source: `${input.src.namespace}/${input.src.name}`,
      destination: to,
      ...(input.policyQuery ? { policyQuery: input.policyQuery } : {}),
      ...t,
    },
    exitCode: problems.length ? 1 : 0,
    table: () =>
      [
        `Trace ${input.src.namespace}/${input.src.name} → ${to}${input.local ? ` (read on node ${input.local.node})` : ''}`,
        ...(input.policyQuery
          ? [
              `NetworkPolicy verdicts for ${input.policyQuery}${
                anyPort
                  ? ': ok = every port and protocol allowed, partial = only the ports named (give --port/--protocol to check one)'
                  : ''
              }`,
            ]
          : []),
        '',
        renderTable(cols, t.hops),
        '',
        problems.length
          ? `${problems.length} hop(s) with a problem.`
          : partial.length
            ? `No problem found on the hops checked; ${partial.length} policy hop(s) allow only some ports.`
            : 'No problem found on the hops checked.',
      ].join('\n'),
  };
}
