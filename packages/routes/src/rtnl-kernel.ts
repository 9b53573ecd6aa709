// RouteKernel over @podnet/rtnetlink: kernel-filtered dumps, batched RTM_NEWROUTE/RTM_DELROUTE
// (many per sendmsg, per-request results) and multicast link/route events.
import {
  type NetlinkError,
  type Request,
  type Route,
  type RouteInfo,
  RTM,
  Rtnl,
  type RtnlEvent,
} from '@podnet/rtnetlink';
import { parseAddr, tryParsePrefix } from './ip.js';
import type { KernelEvent, OpResult, RouteKernel } from './kernel.js';
import {
  type KernelNextHop,
  type KernelRoute,
  type KernelRouteKind,
  type LinkInfo,
  PODNET_PROTO,
  type RouteOp,
} from './model.js';
import type { KernelNeighbour } from './neigh.js';

const NUD_PERMANENT = 0x80;

const KINDS: readonly string[] = ['unicast', 'blackhole', 'unreachable', 'prohibit'];

/** A route from a dump in the route programmer's model; undefined for what it never manages. */
export function fromRouteInfo(r: RouteInfo): KernelRoute | undefined {
  const p = tryParsePrefix(r.dst);
  if (!p) return undefined;
  const kind = (KINDS.includes(r.type) ? r.type : 'other') as KernelRouteKind;
  const hop = (h: { gateway?: string; oif?: number }): KernelNextHop => ({
    ...(h.gateway !== undefined ? { gateway: h.gateway } : {}),
    ...(h.oif !== undefined ? { oif: h.oif } : {}),
  });
  let nexthops: KernelNextHop[] = [];
  if (kind === 'unicast') nexthops = r.multipath?.length ? r.multipath.map(hop) : [hop(r)];
  return {
    family: p.family,
    table: r.table,
    dst: p.text,
    metric: r.metric ?? 0,
    protocol: r.protocol,
    kind,
    scope: r.scope,
    nexthops,
  };
}

/** The rtnetlink request for one operation. */
export function toRequest(op: RouteOp): Request {
  const r = op.route;
  const base: Route = { dst: r.dst, table: r.table, protocol: r.protocol, metric: r.metric };
  if (r.kind !== 'unicast' && r.kind !== 'other') base.type = r.kind;
  if (op.type === 'delete') return { type: 'route.del', route: base };
  const route: Route = { ...base, scope: r.scope };
  if (r.nexthops.length === 1) {
    const nh = r.nexthops[0]!;
    if (nh.gateway !== undefined) route.gateway = nh.gateway;
    if (nh.oif !== undefined) route.oif = nh.oif;
  } else if (r.nexthops.length > 1) {
    route.multipath = r.nexthops.map((nh) => ({
      ...(nh.gateway !== undefined ? { gateway: nh.gateway } : {}),
      ...(nh.oif !== undefined ? { oif: nh.oif } : {}),
    }));
  }
  return { type: 'route.replace', route };
}

export interface RtnetlinkKernelOptions {
  /** Namespace path (/var/run/netns/NAME, /proc/PID/ns/net); default: the process's own. */
  netns?: string;
  /** An open client to use (not closed by close()). */
  rtnl?: Rtnl;
  /** podnet's protocol number: additions of its own routes are not reported (default 80). */
  protocol?: number;
}

/** A RouteKernel on rtnetlink-ts. The client opens on first use. */
export function rtnetlinkKernel(opts: RtnetlinkKernelOptions = {}): RouteKernel {
  let client: Promise<Rtnl> | undefined = opts.rtnl ? Promise.resolve(opts.rtnl) : undefined;
  let closed = false;
  const ownProto = opts.protocol ?? PODNET_PROTO;
  const subs = new Set<{ close(): void }>();
  const nl = () => {
    client ??= Rtnl.open(opts.netns ? { netns: opts.netns } : {});
    return client;
  };

  return {
    async listLinks(): Promise<LinkInfo[]> {
      const links = await (await nl()).links.list();
      return links.map((l) => ({ ifname: l.name, ifindex: l.index, up: l.up }));
    },

    async listRoutes(tables) {
      const c = await nl();
      const out: KernelRoute[] = [];
      for (const table of new Set(tables)) {
        for (const r of await c.routes.list({ table })) {
          const k = fromRouteInfo(r);
          if (k && k.table === table) out.push(k);
        }
      }
      return out;
    },

    async apply(ops): Promise<OpResult[]> {
      if (ops.length === 0) return [];
      const results = await (await nl()).batch(ops.map(toRequest));
      return results.map((r) =>
        r.ok
          ? r
          : {
              ok: false,
              code: r.error.errnoName ?? r.error.code,
              message: r.error.extAck ?? r.error.message,
            },
      );
    },

    async listNeighbours(): Promise<KernelNeighbour[]> {
      const out: KernelNeighbour[] = [];
      for (const n of await (await nl()).neigh.list({})) {
        if (n.proxy || !(n.state & NUD_PERMANENT)) continue;
        const a = parseAddr(n.dst);
        if (!a) continue;
        out.push({
          family: a.family,
          ifindex: n.index,
          ip: a.text,
          ...(n.lladdr ? { mac: n.lladdr.toLowerCase() } : {}),
          ...(n.protocol !== undefined ? { protocol: n.protocol } : {}),
        });
      }
      return out;
    },

    async applyNeighbours(ops): Promise<OpResult[]> {
      if (ops.length === 0) return [];
      const reqs: Request[] = ops.map((op) =>
        op.type === 'replace'
          ? {
              type: 'neigh.add',
              neigh: {
                index: op.neigh.ifindex,
                dst: op.neigh.ip,
                lladdr: op.neigh.mac,
                ...(op.neigh.protocol !== undefined ? { protocol: op.neigh.protocol } : {}),
              },
            }
          : { type: 'neigh.del', neigh: { index: op.neigh.ifindex, dst: op.neigh.ip } },
      );
      const results = await (await nl()).batch(reqs);
      return results.map((r) =>
        r.ok
          ? r
          : {
              ok: false,
              code: r.error.errnoName ?? r.error.code,
              message: r.error.extAck ?? r.error.message,
            },
      );
    },

    watch(onEvent: (e: KernelEvent) => void) {
      let sub: { close(): void } | undefined;
      let stopped = false;
      const handle = (ev: RtnlEvent) => {
        if (ev.type === 'link') {
          const l = ev.link;
          if (ev.op === 'del') onEvent({ type: 'link-removed', ifname: l.name, ifindex: l.index });
          else onEvent({ type: 'link', ifname: l.name, ifindex: l.index, up: l.up });
        } else if (ev.type === 'route') {
          const k = fromRouteInfo(ev.route);
          if (!k) return;
          const type = ev.op === 'del' ? 'route-deleted' : 'route-added';
          onEvent({ type, dst: k.dst, table: k.table, protocol: k.protocol });
        }
      };
      const onError = (err: NetlinkError) => {
        if (err.code === 'NL_ERR_OVERRUN') onEvent({ type: 'overflow' });
      };
      void nl().then(
        (c) => {
          if (stopped || closed) return;
          // Additions of our own routes (thousands after a big apply) are skipped before they are
          // decoded: the protocol is byte 5 of the rtmsg header. Others' additions matter to
          // next-hop resolution (a route towards another rack appearing or changing).
          sub = c.subscribe(['link', 'route'], handle, onError, {
            types: (t, body) => t !== RTM.NEWROUTE || body === undefined || body[5] !== ownProto,
          });
          subs.add(sub);
          // The resync timer and requests keep the process alive, not the event socket.
          (sub as { unref?: () => void }).unref?.();
        },
        () => onEvent({ type: 'overflow' }),
      );
      return () => {
        stopped = true;
        if (sub) {
          sub.close();
          subs.delete(sub);
        }
      };
    },

    async close() {
      closed = true;
      for (const s of subs) s.close();
      subs.clear();
      if (!opts.rtnl && client) (await client.catch(() => undefined))?.close();
      client = undefined;
    },
  };
}
