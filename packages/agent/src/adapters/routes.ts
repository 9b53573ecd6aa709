// RoutesPort over @podnet/routes' RouteProgrammer: the agent's desired routes become the route
// programmer's inputs (local pods, owned blocks, remote paths); ownership stays by protocol number.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  computeDesired,
  ipRouteKernel,
  NextHopResolver,
  PODNET_PROTO,
  PODNET_PROTO_NAME,
  type RejectedInput,
  type RouteKernel,
  RouteProgrammer,
  rtnetlinkKernel,
} from '@podnet/routes';
import { Rtnl } from '@podnet/rtnetlink';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { NodeInterface } from '../autodetect.js';
import type { DesiredRoute } from '../model.js';
import type { Condition, RoutesPort, RoutesStatus } from '../ports.js';

export const ROUTE_PROTOCOL = { number: PODNET_PROTO, name: PODNET_PROTO_NAME };

export function toRouteInputs(routes: DesiredRoute[]) {
  const pods = new Map<string, string[]>();
  const ownedBlocks: string[] = [];
  const remote: { prefix: string; nextHops: string[] }[] = [];
  for (const r of routes) {
    if (r.type === 'local') pods.set(r.iface, [...(pods.get(r.iface) ?? []), r.dst]);
    else if (r.type === 'blackhole') ownedBlocks.push(r.dst);
    else remote.push({ prefix: r.dst, nextHops: r.via });
  }
  return { localPods: [...pods].map(([ifname, ips]) => ({ ifname, ips })), ownedBlocks, remote };
}

/** The destinations of the input a rejection names (`localPods[2].ifname` → that pod's IPs). */
function rejectedDsts(inputs: ReturnType<typeof toRouteInputs>, field: string): string[] {
  const m = /^(localPods|ownedBlocks|remote)\[(\d+)\]/.exec(field);
  if (!m) return [];
  const i = Number(m[2]);
  if (m[1] === 'localPods') return inputs.localPods[i]?.ips ?? [];
  if (m[1] === 'ownedBlocks') return inputs.ownedBlocks[i] !== undefined ? [inputs.ownedBlocks[i]!] : [];
  return inputs.remote[i] ? [inputs.remote[i]!.prefix] : [];
}

export class RoutesAdapter implements RoutesPort {
  private readonly rp: RouteProgrammer;
  /** The kernel's routes to the next hops: BGP best paths and `via` routes both ask it. */
  readonly nextHops: NextHopResolver;
  private readonly log: Logger;
  private rejected: string[] = [];
  private rejectedInputs: RejectedInput[] = [];
  private inputs: ReturnType<typeof toRouteInputs> = { localPods: [], ownedBlocks: [], remote: [] };

  constructor(opts: {
    logger: Logger;
    registry?: Registry;
    resyncIntervalMs: number;
    removeForeignOnPodIfaces: boolean;
    kernel?: 'netlink' | 'iproute2';
    /** The rtm_protocol marking podnet's routes (--route-protocol; default PODNET_PROTO). */
    protocol?: number;
  }) {
    this.log = opts.logger.child({ component: 'routes-adapter' });
    const protocol = opts.protocol ?? PODNET_PROTO;
    const kernel = (): RouteKernel =>
      opts.kernel === 'iproute2' ? ipRouteKernel({}) : rtnetlinkKernel({ protocol });
    this.nextHops = new NextHopResolver({ kernel: kernel(), logger: opts.logger, protocol });
    this.rp = new RouteProgrammer({
      logger: opts.logger,
      protocol,
      ...(opts.registry ? { registry: opts.registry } : {}),
      resyncIntervalMs: opts.resyncIntervalMs,
      removeForeignOnPodIfaces: opts.removeForeignOnPodIfaces,
      kernel: kernel(),
      resolver: this.nextHops,
    });
  }

  /** Reads the kernel's routes for next-hop resolution; before the BGP speaker starts. */
  startNextHops(): Promise<void> {
    return this.nextHops.start();
  }

  start(): Promise<void> {
    return this.rp.start();
  }

  async setDesired(routes: DesiredRoute[], families?: (4 | 6)[]): Promise<void> {
    this.inputs = toRouteInputs(routes);
    const set = computeDesired(this.inputs);
    const rejected = set.rejected.map((r) => `${r.field}=${r.value}: ${r.message}`);
    if (rejected.join() !== this.rejected.join())
      for (const r of rejected) this.log.warn({ rejected: r }, 'route input rejected');
    this.rejected = rejected;
    this.rejectedInputs = set.rejected;
    if (families) await this.rp.setFamilies(families);
    await this.rp.setDesired(set.routes);
  }

  resync(): Promise<void> {
    return this.rp.resync();
  }

  status(): RoutesStatus {
    const s = this.rp.status();
    // Every desired route, from what the kernel acknowledged and the dumps since (routeStates).
    const routes: RoutesStatus['routes'] = this.rp
      .routeStates()
      .map((r) => ({ dst: r.dst, state: r.state, ...(r.detail ? { detail: r.detail } : {}) }));
    // Inputs computeDesired refused never reach the kernel: `failed`, on the routes they belong to.
    for (const r of this.rejectedInputs) {
      const detail = `${r.field}=${r.value}: ${r.message}`;
      for (const dst of rejectedDsts(this.inputs, r.field)) routes.push({ dst, state: 'failed', detail });
    }
    const lastError = s.failed[0] ? `${s.failed[0].route}: ${s.failed[0].message}` : undefined;
    // Pending routes waiting for a pod interface do not block readiness; failures and conflicts do.
    const applied = s.running && s.lastApply !== undefined && s.failed.length === 0;
    const conditions: Condition[] = [];
    for (const p of s.unwritableSysctls)
      conditions.push({
        type: 'SysctlUnwritable',
        subject: p.sysctl,
        message: `sysctl ${p.sysctl} is not ${p.value} and cannot be set (${p.code}: /proc/sys is read-only for the agent); set it on the node`,
        // Only a switch that stops forwarding fails readiness (not e.g. a pod interface's accept_ra).
        blocksReadiness: p.blocksForwarding,
      });
    for (const u of s.unresolved)
      for (const h of u.nextHops)
        conditions.push({
          type: 'NextHopUnreachable',
          subject: h.gateway,
          message: `route ${u.dst} not installed: next hop ${h.gateway} is unreachable (${h.reason})`,
          blocksReadiness: false,
        });
    const notReady = conditions.filter((c) => c.blocksReadiness).map((c) => c.message);
    return {
      applied,
      ...(lastError ? { lastError } : {}),
      routes,
      ...(notReady.length ? { notReady } : {}),
      ...(conditions.length ? { conditions } : {}),
    };
  }

  async stop(opts: { keepRoutes: boolean }): Promise<void> {
    try {
      await this.rp.stop(opts);
    } finally {
      await this.nextHops.stop();
    }
  }
}

/** The node's interfaces and addresses from an rtnetlink dump, for autodetection. */
export async function listInterfaces(): Promise<NodeInterface[]> {
  const nl = await Rtnl.open({});
  try {
    // One dump at a time: a netlink socket refuses a second dump while one runs (EBUSY).
    const links = await nl.links.list();
    const addrs = await nl.addrs.list({});
    return links.map((l) => ({
      name: l.name,
      up: l.up,
      addresses: addrs
        .filter((a) => a.index === l.index)
        .map((a) => ({
          cidr: a.address,
          family: a.family === 6 ? (6 as const) : (4 as const),
          scope:
            a.scope === 0 ? 'global' : a.scope === 253 ? 'link' : a.scope === 254 ? 'host' : String(a.scope),
        })),
    }));
  } finally {
    nl.close();
  }
}

const pexec = promisify(execFile);

/** The source address the kernel would use towards `destination` (`ip route get`). */
export async function canReach(destination: string): Promise<string | undefined> {
  try {
    const { stdout } = await pexec('ip', ['-json', 'route', 'get', destination], { timeout: 5000 });
    const r = JSON.parse(stdout) as { prefsrc?: string }[];
    return r[0]?.prefsrc;
  } catch {
    return undefined;
  }
}
