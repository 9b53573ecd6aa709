// RouteKernel over iproute2: `ip -json` dumps, `ip -batch` writes and `ip monitor` events, run in
// the target namespace through `nsenter --net=PATH` (or in the process's own namespace). Useful
// where @podnet/rtnetlink is unavailable and as a reference; the netlink client is the fast path.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { RoutesError } from './errors.js';
import { parseAddr, tryParsePrefix } from './ip.js';
import type { KernelEvent, OpResult, RouteKernel } from './kernel.js';
import {
  type KernelRoute,
  type KernelRouteKind,
  type LinkInfo,
  type RouteOp,
  RT_TABLE_MAIN,
} from './model.js';
import type { KernelNeighbour, NeighbourOp } from './neigh.js';

const RTN_KIND: Record<string, KernelRouteKind> = {
  '1': 'unicast',
  '6': 'blackhole',
  '7': 'unreachable',
  '8': 'prohibit',
  unicast: 'unicast',
  blackhole: 'blackhole',
  unreachable: 'unreachable',
  prohibit: 'prohibit',
};
const TABLE_NAMES: Record<string, number> = { main: 254, local: 255, default: 253 };

interface IpJsonHop {
  gateway?: string;
  dev?: string;
}
interface IpJsonRoute extends IpJsonHop {
  type?: string;
  dst: string;
  table?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  nexthops?: IpJsonHop[];
}

function run(argv: string[], input?: string): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      argv[0]!,
      argv.slice(1),
      { maxBuffer: 256 * 1024 * 1024, timeout: 120_000 },
      (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
          reject(new RoutesError('ROUTES_ERR_KERNEL', `${argv.join(' ')}: ${err.message}`, { cause: err }));
          return;
        }
        resolve({ stdout: String(stdout), stderr: String(stderr), code: err ? Number(err.code ?? 1) : 0 });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** The `ip route` command words for one operation (without the leading `route`). */
export function ipRouteArgs(op: RouteOp, ifname: (ifindex: number) => string | undefined): string[] {
  const r = op.route;
  const dev = (i: number | undefined) => {
    if (i === undefined) return [];
    const n = ifname(i);
    if (!n) throw new RoutesError('ROUTES_ERR_INVALID', `route ${r.dst}: no interface with index ${i}`);
    return ['dev', n];
  };
  const words = [op.type === 'delete' ? 'del' : 'replace'];
  if (r.kind !== 'unicast') words.push(r.kind);
  words.push(r.dst, 'table', String(r.table), 'proto', String(r.protocol), 'metric', String(r.metric));
  if (op.type === 'delete') return words;
  words.push('scope', String(r.scope));
  if (r.kind !== 'unicast') return words;
  if (r.nexthops.length === 1) {
    const nh = r.nexthops[0]!;
    if (nh.gateway) words.push('via', nh.gateway);
    words.push(...dev(nh.oif));
  } else {
    for (const nh of r.nexthops)
      words.push('nexthop', ...(nh.gateway ? ['via', nh.gateway] : []), ...dev(nh.oif));
  }
  return words;
}

export interface IpRouteKernelOptions {
  /** Namespace path (/var/run/netns/NAME, /proc/PID/ns/net); default: the process's own. */
  netns?: string;
  /** Path of the `ip` binary (default `ip`). */
  ip?: string;
}

export function ipRouteKernel(opts: IpRouteKernelOptions = {}): RouteKernel {
  const prefix = opts.netns ? ['nsenter', `--net=${opts.netns}`, '--'] : [];
  const ip = [...prefix, opts.ip ?? 'ip'];
  const monitors = new Set<ChildProcess>();
  let names = new Map<number, string>();

  async function listLinks(): Promise<LinkInfo[]> {
    const r = await run([...ip, '-json', 'link', 'show']);
    if (r.code !== 0) throw new RoutesError('ROUTES_ERR_KERNEL', `ip link show: ${r.stderr.trim()}`);
    const links = (
      JSON.parse(r.stdout || '[]') as { ifindex: number; ifname: string; flags?: string[] }[]
    ).map((l) => ({ ifname: l.ifname, ifindex: l.ifindex, up: (l.flags ?? []).includes('UP') }));
    names = new Map(links.map((l) => [l.ifindex, l.ifname]));
    return links;
  }

  return {
    listLinks,

    async listRoutes(tables) {
      const links = await listLinks();
      const index = new Map(links.map((l) => [l.ifname, l.ifindex]));
      const out: KernelRoute[] = [];
      for (const family of ['-4', '-6'] as const) {
        const r = await run([...ip, '-N', '-json', '-d', family, 'route', 'show', 'table', 'all']);
        if (r.code !== 0) throw new RoutesError('ROUTES_ERR_KERNEL', `ip route show: ${r.stderr.trim()}`);
        for (const j of JSON.parse(r.stdout || '[]') as IpJsonRoute[]) {
          const table = j.table === undefined ? RT_TABLE_MAIN : (TABLE_NAMES[j.table] ?? Number(j.table));
          if (!tables.includes(table)) continue;
          const dst = j.dst === 'default' ? (family === '-4' ? '0.0.0.0/0' : '::/0') : j.dst;
          const p = tryParsePrefix(dst);
          if (!p) continue;
          const kind = RTN_KIND[j.type ?? '1'] ?? 'other';
          const hop = (h: IpJsonHop) => ({
            ...(h.gateway ? { gateway: h.gateway } : {}),
            ...(h.dev !== undefined && index.has(h.dev) ? { oif: index.get(h.dev)! } : {}),
          });
          out.push({
            family: p.family,
            table,
            dst: p.text,
            metric: j.metric ?? 0,
            protocol: Number(j.protocol ?? 0),
            kind,
            scope: Number(j.scope ?? 0),
            nexthops: kind !== 'unicast' ? [] : j.nexthops ? j.nexthops.map(hop) : [hop(j)],
          });
        }
      }
      return out;
    },

    async apply(ops) {
      if (ops.length === 0) return [];
      const lines: string[] = [];
      const results: OpResult[] = ops.map(() => ({ ok: true }));
      const lineToOp: number[] = [];
      ops.forEach((op, i) => {
        try {
          lines.push(['route', ...ipRouteArgs(op, (n) => names.get(n))].join(' '));
          lineToOp.push(i);
        } catch (err) {
          results[i] = { ok: false, code: 'EINVAL', message: (err as Error).message };
        }
      });
      const r = await run([...ip, '-force', '-batch', '-'], `${lines.join('\n')}\n`);
      // iproute2 prints the error, then "Command failed -:LINE", for each failing line.
      const errLines = r.stderr.split('\n');
      errLines.forEach((l, k) => {
        const m = /^Command failed -:(\d+)/.exec(l);
        if (!m) return;
        const opIndex = lineToOp[Number(m[1]) - 1];
        if (opIndex === undefined) return;
        const message = (errLines[k - 1] ?? 'failed').trim();
        const code = /No such process/.test(message)
          ? 'ESRCH'
          : /Network is unreachable/.test(message)
            ? 'ENETUNREACH'
            : /Cannot find device|No such device/.test(message)
              ? 'ENODEV'
              : 'EKERNEL';
        results[opIndex] = { ok: false, code, message };
      });
      return results;
    },

    async listNeighbours(): Promise<KernelNeighbour[]> {
      const links = await listLinks();
      const index = new Map(links.map((l) => [l.ifname, l.ifindex]));
      // -N: the owner protocol as a number, not a name from /etc/iproute2/rt_protos.
      const r = await run([...ip, '-N', '-json', 'neigh', 'show', 'nud', 'permanent']);
      if (r.code !== 0) throw new RoutesError('ROUTES_ERR_KERNEL', `ip neigh show: ${r.stderr.trim()}`);
      const out: KernelNeighbour[] = [];
      for (const n of JSON.parse(r.stdout || '[]') as {
        dst: string;
        dev?: string;
        lladdr?: string;
        protocol?: string | number;
      }[]) {
        const a = parseAddr(n.dst);
        const ifindex = n.dev === undefined ? undefined : index.get(n.dev);
        if (!a || ifindex === undefined) continue;
        out.push({
          family: a.family,
          ifindex,
          ip: a.text,
          ...(n.lladdr ? { mac: n.lladdr.toLowerCase() } : {}),
          ...(n.protocol !== undefined && /^\d+$/.test(String(n.protocol))
            ? { protocol: Number(n.protocol) }
            : {}),
        });
      }
      return out;
    },

    async applyNeighbours(ops: readonly NeighbourOp[]) {
      if (ops.length === 0) return [];
      const results: OpResult[] = ops.map(() => ({ ok: true }));
      const lines = ops.map((op) => {
        const dev = names.get(op.neigh.ifindex) ?? `#${op.neigh.ifindex}`;
        return op.type === 'replace'
          ? `neigh replace ${op.neigh.ip} lladdr ${op.neigh.mac} dev ${dev} nud permanent${op.neigh.protocol !== undefined ? ` protocol ${op.neigh.protocol}` : ''}`
          : `neigh del ${op.neigh.ip} dev ${dev}`;
      });
      const r = await run([...ip, '-force', '-batch', '-'], `${lines.join('\n')}\n`);
      const errLines = r.stderr.split('\n');
      errLines.forEach((l, k) => {
        const m = /^Command failed -:(\d+)/.exec(l);
        if (m)
          results[Number(m[1]) - 1] = {
            ok: false,
            code: 'EKERNEL',
            message: (errLines[k - 1] ?? 'failed').trim(),
          };
      });
      return results;
    },

    watch(onEvent: (e: KernelEvent) => void) {
      const child = spawn(ip[0]!, [...ip.slice(1), '-N', '-o', 'monitor', 'link', 'route'], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      monitors.add(child);
      child.once('exit', () => monitors.delete(child));
      const rl = createInterface({ input: child.stdout! });
      rl.on('line', (line) => {
        const deleted = line.startsWith('Deleted ');
        const text = deleted ? line.slice(8) : line;
        const link = /^(\d+): ([^:@\s]+)[@:]/.exec(text);
        if (link) {
          const ifindex = Number(link[1]);
          const ifname = link[2]!;
          if (deleted) onEvent({ type: 'link-removed', ifname, ifindex });
          else onEvent({ type: 'link', ifname, ifindex, up: /[<,]UP[,>]/.test(text) });
          return;
        }
        const words = text.trim().split(/\s+/);
        const kinds = ['blackhole', 'unreachable', 'prohibit', 'unicast'];
        const dstWord = kinds.includes(words[0] ?? '') ? words[1] : words[0];
        const at = (k: string) => {
          const i = words.indexOf(k);
          return i >= 0 ? words[i + 1] : undefined;
        };
        const p = tryParsePrefix(dstWord === 'default' ? '0.0.0.0/0' : (dstWord ?? ''));
        if (!p) return;
        const table = at('table');
        onEvent({
          type: deleted ? 'route-deleted' : 'route-added',
          dst: p.text,
          table: table === undefined ? RT_TABLE_MAIN : (TABLE_NAMES[table] ?? Number(table)),
          protocol: Number(at('proto') ?? 0),
        });
      });
      return () => {
        rl.close();
        if (child.exitCode === null) child.kill('SIGTERM');
      };
    },

    async close() {
      for (const m of monitors) if (m.exitCode === null) m.kill('SIGTERM');
      monitors.clear();
    },
  };
}
