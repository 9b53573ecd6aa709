// podnet's routes as the kernel holds them (a netlink dump filtered on podnet's protocol number),
// for `podnetctl routes`. Works in the caller's namespace or in a named one (`--netns`).
import { Rtnl } from '@podnet/rtnetlink';
import { CtlError } from './errors.js';

/** podnet's default route protocol (@podnet/routes PODNET_PROTO; the agent's --route-protocol). */
export const PODNET_ROUTE_PROTOCOL = 213;

export interface KernelRouteView {
  dst: string;
  kind: string;
  via: string[];
  dev?: string;
}

/** The main table (every protocol) and the links, for `podnetctl trace`. */
export async function readKernel(opts: { netns?: string } = {}): Promise<{
  routes: { dst: string; kind: string; via: string[]; dev?: string; protocol: number }[];
  links: { name: string; up: boolean }[];
}> {
  const nl = await openRtnl(opts);
  try {
    const links = await nl.links.list();
    const names = new Map(links.map((l) => [l.index, l.name]));
    const routes = await nl.routes.list({ table: 254 });
    return {
      routes: routes.map((r) => {
        const v = view(r, names);
        return { ...v, protocol: r.protocol };
      }),
      links: links.map((l) => ({ name: l.name, up: l.up })),
    };
  } finally {
    nl.close();
  }
}

async function openRtnl(opts: { netns?: string }): Promise<Rtnl> {
  try {
    return await Rtnl.open(
      opts.netns ? { netns: opts.netns.includes('/') ? opts.netns : `/var/run/netns/${opts.netns}` } : {},
    );
  } catch (err) {
    throw new CtlError(
      'CTL_ERR_AGENT',
      `cannot read the kernel's routes (${(err as Error).message}); run podnetctl as root on the node${opts.netns ? `, and check that namespace ${opts.netns} exists` : ''}`,
    );
  }
}

type RouteRead = Awaited<ReturnType<Rtnl['routes']['list']>>[number];

function view(r: RouteRead, links: Map<number, string>): KernelRouteView {
  const hops = r.multipath?.length ? r.multipath : [{ gateway: r.gateway, oif: r.oif }];
  const via = hops.flatMap((h) => (h.gateway ? [h.gateway] : []));
  const dev =
    hops.length === 1 && !hops[0]!.gateway && hops[0]!.oif !== undefined
      ? links.get(hops[0]!.oif)
      : undefined;
  return {
    dst: r.dst.includes('/') ? r.dst : `${r.dst}/${r.dst.includes(':') ? 128 : 32}`,
    kind: r.type,
    via,
    ...(dev ? { dev } : {}),
  };
}

export async function dumpPodnetRoutes(
  opts: { netns?: string; protocol?: number } = {},
): Promise<KernelRouteView[]> {
  const nl = await openRtnl(opts);
  try {
    const links = new Map((await nl.links.list()).map((l) => [l.index, l.name]));
    const routes = await nl.routes.list({ protocol: opts.protocol ?? PODNET_ROUTE_PROTOCOL });
    return routes.map((r) => view(r, links));
  } finally {
    nl.close();
  }
}
