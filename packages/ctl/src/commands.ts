// podnetctl's commands: each returns its data and the human table, so --output works the same for all.
import type { AgentStatus } from '@podnet/agent';
import type { Inconsistency, Ipam, ReleasedAddress, Usage } from '@podnet/ipam';
import { CtlError } from './errors.js';
import { type Column, formatAge, formatPercent, renderTable } from './format.js';
import type { KernelRouteView } from './kernel.js';

export interface CommandResult {
  data: unknown;
  table: () => string;
  /** Non-zero when the command found problems (ipam check). */
  exitCode?: number;
}

type Peer = AgentStatus['peers'][number];

/** `podnetctl node status`: the BGP peer table of the local agent. */
export function nodeStatus(s: AgentStatus, now = Date.now()): CommandResult {
  const cols: Column<Peer>[] = [
    { header: 'PEER', value: (p) => (p.port === 179 ? p.address : `${p.address}:${p.port}`) },
    { header: 'TYPE', value: (p) => p.type },
    { header: 'AS', value: (p) => p.remoteAs, align: 'right' },
    { header: 'STATE', value: (p) => p.state },
    { header: 'SINCE', value: (p) => formatAge(now - Date.parse(p.since)) },
    { header: 'IN', value: (p) => p.prefixesReceived, align: 'right' },
    { header: 'OUT', value: (p) => p.prefixesAdvertised, align: 'right' },
    {
      header: 'INFO',
      // A session that is up again shows who it is, not the error of an earlier attempt.
      value: (p) =>
        (p.state !== 'Established' ? p.lastError : undefined) ??
        (p.nodeName
          ? `node ${p.nodeName}`
          : p.source !== 'node-to-node-mesh'
            ? `BGPPeer ${p.source}`
            : undefined),
    },
  ];
  const n = s.node;
  return {
    data: {
      node: n,
      ready: s.ready,
      readiness: s.readiness,
      peers: s.peers,
      conditions: s.conditions,
      ...(s.netfilter ? { netfilter: s.netfilter } : {}),
    },
    table: () => {
      const head = [
        `Node ${n.name}  address ${n.address ?? '(unknown)'}  AS ${n.asNumber}  router ID ${n.routerId ?? '-'}${n.clusterId ? `  route reflector (cluster ${n.clusterId})` : ''}`,
        `Ready: ${s.ready ? 'yes' : `no — ${s.readiness.reasons.join('; ')}`}`,
        '',
      ];
      const body = s.peers.length ? renderTable(cols, s.peers) : 'No BGP peers configured.';
      const problems = s.problems.length ? ['', 'Skipped inputs:', ...s.problems.map((p) => `  - ${p}`)] : [];
      const conditions = s.conditions.length
        ? [
            '',
            'Conditions:',
            ...s.conditions.map(
              (c) => `  - ${c.type} ${c.subject}${c.blocksReadiness ? ' (not ready)' : ''}: ${c.message}`,
            ),
          ]
        : [];
      const nf = s.netfilter;
      const netfilter = nf
        ? [
            '',
            `Netfilter: ${nf.table} ${nf.applied ? 'applied' : `not applied${nf.lastError ? ` (${nf.lastError})` : ''}`}, generation ${nf.generation}, ${nf.driftRepairs} drift repair${nf.driftRepairs === 1 ? '' : 's'}`,
          ]
        : [];
      return [...head, body, ...conditions, ...problems, ...netfilter].join('\n');
    },
  };
}

export interface RouteRow {
  dst: string;
  type: string;
  via?: string;
  source: string;
  /** The agent's state for the route (from its /status), `stale` for a podnet route it does not want. */
  state: string;
  /** What the kernel dump of podnet's protocol shows: present, absent, differs, or not-read. */
  kernel: 'present' | 'absent' | 'differs' | 'not-read';
  /** The kernel's route when it differs from what the agent wants. */
  kernelRoute?: string;
}

/**
 * `podnetctl routes`: the routes podnet programs with their source and the agent's state, and a
 * KERNEL column from a dump of podnet's protocol (213) in this namespace: `present`, `absent`, `differs` (the
 * kernel's route is shown), or `not-read` when the kernel could not be read (a note says why). A
 * podnet route the agent does not want shows as `stale`.
 */
export function routes(
  s: AgentStatus | undefined,
  kernel: KernelRouteView[] | undefined,
  notes: string[] = [],
  /** The protocol the kernel was dumped for, when the agent did not say (PODNET_ROUTE_PROTOCOL). */
  protocol?: number,
): CommandResult {
  const rows: RouteRow[] = [];
  const inKernel = new Map((kernel ?? []).map((k) => [k.dst, k]));
  const viaOf = (k: KernelRouteView) =>
    k.via.length ? k.via.join(',') : k.dev ? `dev ${k.dev}` : k.kind === 'blackhole' ? '(drop)' : undefined;
  for (const r of s?.routes ?? []) {
    const k = inKernel.get(r.dst);
    const via = r.via
      ? r.via.join(',')
      : r.iface
        ? `dev ${r.iface}`
        : r.type === 'blackhole'
          ? '(drop)'
          : undefined;
    const row: RouteRow = {
      dst: r.dst,
      type: r.type,
      ...(via ? { via } : {}),
      source: r.source,
      state: r.state,
      kernel: 'not-read',
    };
    if (kernel) {
      if (!k) row.kernel = 'absent';
      else if (matches(r, k)) row.kernel = 'present';
      else {
        row.kernel = 'differs';
        row.kernelRoute = `${k.kind === 'blackhole' ? 'blackhole ' : ''}${viaOf(k) ?? k.kind}`;
      }
    }
    rows.push(row);
  }
  const wanted = new Set((s?.routes ?? []).map((r) => r.dst));
  for (const k of kernel ?? []) {
    if (wanted.has(k.dst)) continue;
    const via = viaOf(k);
    rows.push({
      dst: k.dst,
      type: k.kind === 'blackhole' ? 'blackhole' : k.dev ? 'local' : 'remote',
      ...(via ? { via } : {}),
      source: s ? '(not desired)' : '-',
      state: s ? 'stale' : '-',
      kernel: 'present',
    });
  }
  // The agent believes a route is in the kernel that the kernel does not hold (as it wants it).
  const disagree = rows.filter(
    (r) =>
      (r.state === 'installed' || r.state === 'applied') && (r.kernel === 'absent' || r.kernel === 'differs'),
  );
  const proto = s?.routeProtocol ?? { name: 'podnet', number: protocol ?? 213 }; // kernel.ts PODNET_ROUTE_PROTOCOL
  const cols: Column<RouteRow>[] = [
    { header: 'DESTINATION', value: (r) => r.dst },
    { header: 'TYPE', value: (r) => r.type },
    { header: 'VIA', value: (r) => r.via },
    { header: 'SOURCE', value: (r) => r.source },
    { header: 'STATE', value: (r) => r.state },
    { header: 'KERNEL', value: (r) => (r.kernelRoute ? `${r.kernel} (${r.kernelRoute})` : r.kernel) },
  ];
  const present = rows.filter((r) => r.state !== 'stale' && r.kernel === 'present').length;
  const desired = s?.routes.length ?? 0;
  return {
    data: {
      protocol: proto,
      kernelRead: kernel !== undefined,
      routes: rows,
      advertisements: s?.advertisements ?? [],
      notes,
    },
    table: () =>
      [
        `Routes owned by podnet (protocol ${proto.name}, ${proto.number}; see \`ip route show proto ${proto.number}\`):`,
        ...notes.map((n) => `note: ${n}`),
        '',
        rows.length ? renderTable(cols, rows) : 'No routes.',
        '',
        kernel
          ? s
            ? `Kernel: ${present} of ${desired} desired routes present${disagree.length ? `; ${disagree.length} the agent counts as in the kernel are not: ${disagree.map((r) => r.dst).join(', ')} (the agent repairs them on its next resync)` : ''}.`
            : 'Kernel: read; the agent was not, so no route has a source or state.'
          : 'Kernel: not read (see the note); the KERNEL column is unknown, not compared.',
        ...(s
          ? [
              `Announced over BGP: ${s.advertisements.map((a) => `${a.prefix} (${a.source})`).join(', ') || 'nothing'}`,
            ]
          : []),
      ].join('\n'),
  };
}

/** The kernel's route is the one the agent wants (same kind, next hops or interface). */
function matches(r: AgentStatus['routes'][number], k: KernelRouteView): boolean {
  switch (r.type) {
    case 'blackhole':
      return k.kind === 'blackhole';
    case 'local':
      return k.kind === 'unicast' && k.via.length === 0 && k.dev === r.iface;
    default:
      return k.kind === 'unicast' && [...k.via].sort().join() === [...(r.via ?? [])].sort().join();
  }
}

/** `podnetctl ipam show`: pools, blocks per node and utilisation. */
export function ipamShow(u: Usage): CommandResult {
  type Pool = Usage['pools'][number];
  type NodeRow = { node: string; block: string; used: number; size: number };
  const poolCols: Column<Pool>[] = [
    { header: 'POOL', value: (p) => p.name },
    { header: 'CIDR', value: (p) => p.cidr },
    { header: 'BLOCK', value: (p) => `/${p.blockSize}` },
    { header: 'BLOCKS', value: (p) => p.blocks, align: 'right' },
    { header: 'USED', value: (p) => p.used, align: 'right' },
    { header: 'CAPACITY', value: (p) => p.capacity, align: 'right' },
    { header: 'UTIL', value: (p) => formatPercent(p.used, Number(p.capacity)), align: 'right' },
    { header: 'STATE', value: (p) => (p.disabled ? 'disabled' : 'enabled') },
  ];
  const rows: NodeRow[] = u.nodes.flatMap((n) =>
    n.blocks.map((b) => ({ node: n.node, block: b.cidr, used: b.used, size: b.used + b.free })),
  );
  const nodeCols: Column<NodeRow>[] = [
    { header: 'NODE', value: (r) => r.node },
    { header: 'BLOCK', value: (r) => r.block },
    { header: 'USED', value: (r) => `${r.used}/${r.size}`, align: 'right' },
    { header: 'UTIL', value: (r) => formatPercent(r.used, r.size), align: 'right' },
  ];
  const borrowed = u.nodes.filter((n) => n.borrowedFrom > 0);
  return {
    data: u,
    table: () =>
      [
        u.pools.length
          ? renderTable(poolCols, u.pools)
          : 'No IPPools: the agent creates default-ipv4 at start-up unless defaultIpv4PoolCidr is none (deploy/examples/ippool-default.yaml).',
        '',
        rows.length ? renderTable(nodeCols, rows) : 'No blocks claimed yet.',
        ...(borrowed.length
          ? ['', `Borrowed addresses: ${borrowed.map((n) => `${n.node} ${n.borrowedFrom}`).join(', ')}`]
          : []),
        '',
        `Total: ${u.totals.blocks} blocks, ${u.totals.used} addresses in use, ${u.totals.handles} handles`,
      ].join('\n'),
  };
}

/** `podnetctl ipam check`: inconsistencies and leaks; exit code 1 when there are any. */
export function ipamCheck(found: CheckProblem[]): CommandResult {
  const cols: Column<CheckProblem>[] = [
    { header: 'PROBLEM', value: (i) => i.type },
    { header: 'DETAIL', value: (i) => i.message },
  ];
  return {
    data: { ok: found.length === 0, problems: found },
    exitCode: found.length ? 1 : 0,
    table: () =>
      found.length
        ? `${renderTable(cols, found)}\n\n${found.length} problem(s). Leaked addresses can be freed with \`podnetctl ipam release --ip ADDRESS\`.`
        : 'IPAM is consistent: no leaks, no orphaned blocks or handles.',
  };
}

/** A finding of `ipam check`: ipam.check()'s inconsistencies plus leaked addresses. */
export interface CheckProblem {
  type: Inconsistency['type'] | 'address-leaked';
  message: string;
}

/** Addresses whose pod (from the allocation's attributes) no longer exists. */
export async function findLeaks(
  ipam: Ipam,
  podExists: (namespace: string, name: string) => Promise<boolean>,
): Promise<CheckProblem[]> {
  const leaks: CheckProblem[] = [];
  const blocks = await ipam.ds.blocks.list();
  for (const b of blocks.items) {
    for (let ordinal = 0; ordinal < b.spec.allocations.length; ordinal++) {
      const a = b.spec.allocations[ordinal];
      if (a === null || a === undefined) continue;
      const attrs = b.spec.attributes[a]?.secondary;
      if (!attrs?.namespace || !attrs.pod) continue;
      if (await podExists(attrs.namespace, attrs.pod)) continue;
      leaks.push({
        type: 'address-leaked',
        message: `${addressAt(b.spec.cidr, ordinal)} in block ${b.spec.cidr} belongs to pod ${attrs.namespace}/${attrs.pod}, which no longer exists`,
      });
    }
  }
  return leaks;
}

function addressAt(block: string, ordinal: number): string {
  const [base] = block.split('/');
  if (base!.includes(':')) return `${block}#${ordinal}`;
  const p = base!.split('.').map(Number);
  const n = (((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0) + ordinal;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** `podnetctl ipam release --ip`: frees one address. */
export function ipamRelease(ip: string, released: ReleasedAddress | undefined): CommandResult {
  if (!released)
    throw new CtlError(
      'CTL_ERR_NOT_FOUND',
      `${ip} is not allocated (nothing to release). \`podnetctl ipam show\` lists the blocks and their use.`,
    );
  return {
    data: released,
    table: () => `Released ${released.address} from block ${released.block} (handle ${released.handle}).`,
  };
}
