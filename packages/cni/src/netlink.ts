// The Dataplane over rtnetlink-ts (@podnet/rtnetlink): no processes, one netlink socket in the
// node's namespace and one opened inside the pod's (CNI_NETNS). The veth is created with its peer
// already in the pod's namespace (IFLA_NET_NS_FD), named CNI_IFNAME there, so no rename or move is
// needed. Host sysctls are written to /proc/sys of the plugin's own (the node's) namespace.
//
// Handed over (the agent serving the shim, without CAP_SYS_ADMIN and with a read-only /proc/sys):
// the shim, root on the host, opened the pod's namespace, a NETLINK_ROUTE socket inside it and the
// node's /proc/sys/net, and passed the descriptors; the pod side is then programmed over that
// socket, the veth's peer is placed with the namespace descriptor, and no setns is needed.
import { closeSync, existsSync, openSync } from 'node:fs';
import { type NetlinkError, type Request, Rtnl } from '@podnet/rtnetlink';
import {
  type Dataplane,
  emptyObservation,
  type ObservedAttachment,
  readHostSysctls,
  writeHostSysctls,
} from './dataplane.js';
import { CniError, CniErrorCode } from './errors.js';
import type { AttachmentPlan, PlannedRoute } from './plan.js';

const SCOPE_LINK = 253;
const SCOPE_UNIVERSE = 0;
const RTPROT_KERNEL = 2;
const NUD_PERMANENT = 0x80;

function nlFail(what: string, err: unknown): CniError {
  const e = err as Partial<NetlinkError> & Error;
  const why = e.extAck ? `${e.errnoName ?? e.code}: ${e.extAck}` : (e.errnoName ?? e.message);
  return new CniError(CniErrorCode.DataplaneFailure, `${what}: ${why}`, undefined, { cause: err });
}

function isMissing(err: unknown): boolean {
  const n = (err as Partial<NetlinkError>).errnoName;
  return n === 'ENODEV' || n === 'ENOENT' || n === 'ESRCH';
}

function toRoute(r: PlannedRoute, oif: number) {
  return {
    dst: r.dst,
    oif,
    ...(r.gw ? { gateway: r.gw } : {}),
    ...(r.metric !== undefined ? { metric: r.metric } : {}),
    scope: r.scope === 'link' ? SCOPE_LINK : SCOPE_UNIVERSE,
  };
}

/** Runs fn on a netlink socket opened in `netns`; closes it afterwards unless `close` is false. */
async function withRtnl<T>(
  netns: string | undefined,
  what: string,
  fn: (nl: Rtnl) => Promise<T>,
  close = true,
): Promise<T> {
  let nl: Rtnl;
  try {
    nl = await Rtnl.open(netns ? { netns } : {});
  } catch (err) {
    if (netns && !existsSync(netns)) {
      throw new CniError(CniErrorCode.UnknownContainer, `network namespace ${netns} does not exist`);
    }
    throw nlFail(`opening rtnetlink ${netns ? `in ${netns}` : 'in the node namespace'} (${what})`, err);
  }
  try {
    return await fn(nl);
  } finally {
    if (close) nl.close();
  }
}

function firstError(results: { ok: boolean; error?: NetlinkError }[]): NetlinkError | undefined {
  for (const r of results) if (!r.ok) return r.error;
  return undefined;
}

/** Descriptors a privileged caller opened for one pod's namespace (see the header). */
export interface HandedNamespace {
  /** CNI_NETNS as the caller named it: the namespace these descriptors belong to. */
  netns: string;
  /** The namespace itself (open(CNI_NETNS)); absent when the caller could not open it. */
  netnsFd?: number;
  /** An unbound NETLINK_ROUTE socket created inside that namespace. */
  netlinkFd?: number;
  /** The node's /proc/sys/net directory, as a path through this process (/proc/self/fd/N). */
  sysctlNetDir?: string;
}

export class NetlinkDataplane implements Dataplane {
  private readonly conns = new Map<string, Promise<Rtnl>>();

  constructor(private readonly handed?: HandedNamespace) {}

  /** Whether `netns` is the handed namespace (then its path is not looked at here). */
  private isHanded(netns: string | undefined): boolean {
    return this.handed !== undefined && netns === this.handed.netns;
  }

  private netnsExists(netns: string): boolean {
    return this.isHanded(netns) ? this.handed!.netnsFd !== undefined : existsSync(netns);
  }

  /** Runs fn on a socket in `netns`: the handed one (kept until close()) or a fresh one. */
  private withNs<T>(netns: string | undefined, what: string, fn: (nl: Rtnl) => Promise<T>): Promise<T> {
    if (this.isHanded(netns)) return this.conn(netns, what).then(fn);
    return withRtnl(netns, what, fn);
  }

  async checkNetns(netns: string): Promise<void> {
    if (!this.netnsExists(netns)) {
      throw new CniError(CniErrorCode.UnknownContainer, `network namespace ${netns} does not exist`);
    }
  }

  async detectMtu(): Promise<number> {
    return withRtnl(undefined, 'detect MTU', async (nl) => {
      const routes = await nl.routes.list({ family: 4, table: 254 });
      const def = routes.find((r) => r.dst === '0.0.0.0/0' && (r.oif !== undefined || r.multipath));
      const oif = def?.oif ?? def?.multipath?.[0]?.oif;
      if (oif === undefined) return 1500;
      return (await nl.links.get(oif))?.mtu ?? 1500;
    });
  }

  /**
   * The netlink socket of a namespace (undefined: the node's), opened once and kept for the rest
   * of the invocation: ADD uses each twice (link, then addresses and routes).
   */
  private conn(netns: string | undefined, what: string): Promise<Rtnl> {
    const key = netns ?? '';
    let c = this.conns.get(key);
    if (!c) {
      if (this.isHanded(netns)) {
        const fd = this.handed!.netlinkFd;
        if (fd === undefined) {
          return Promise.reject(
            new CniError(
              CniErrorCode.DataplaneFailure,
              `no netlink socket was handed over for ${netns} (${what})`,
            ),
          );
        }
        // The descriptor is consumed once: the client owns it from here on.
        this.handed!.netlinkFd = undefined;
        c = Rtnl.open({ fd }).catch((err: unknown) => {
          throw nlFail(`taking over the netlink socket of ${netns} (${what})`, err);
        });
      } else {
        c = withRtnl(netns, what, async (nl) => nl, false);
      }
      this.conns.set(key, c);
      c.catch(() => this.conns.delete(key));
    }
    return c;
  }

  close(): void {
    if (this.handed?.netlinkFd !== undefined) closeSync(this.handed.netlinkFd);
    if (this.handed?.netnsFd !== undefined) closeSync(this.handed.netnsFd);
    if (this.handed) {
      this.handed.netlinkFd = undefined;
      this.handed.netnsFd = undefined;
    }
    for (const c of this.conns.values())
      void c.then(
        (nl) => nl.close(),
        () => undefined,
      );
    this.conns.clear();
  }

  async createLink(plan: AttachmentPlan): Promise<{ podMac: string }> {
    if (!this.netnsExists(plan.netns)) {
      throw new CniError(CniErrorCode.UnknownContainer, `network namespace ${plan.netns} does not exist`);
    }
    const host = await this.conn(undefined, 'create');
    const handedFd = this.isHanded(plan.netns) ? this.handed!.netnsFd : undefined;
    const fd = handedFd ?? openSync(plan.netns, 'r');
    try {
      await host.links.createVeth({
        name: plan.hostIf,
        peerName: plan.podIf,
        peerNetnsFd: fd,
        mtu: plan.mtu,
        mac: plan.hostMac,
      });
    } catch (err) {
      const exists = (err as Partial<NetlinkError>).errnoName === 'EEXIST';
      throw nlFail(
        `creating veth ${plan.hostIf} with peer ${plan.podIf} in ${plan.netns}${exists ? ' (File exists)' : ''}`,
        err,
      );
    } finally {
      if (handedFd === undefined) closeSync(fd);
    }
    const hostLink = await host.links.get(plan.hostIf);
    if (!hostLink)
      throw new CniError(
        CniErrorCode.DataplaneFailure,
        `host interface ${plan.hostIf} vanished after creation`,
      );
    // Before the link comes up: IPv6's accept_dad must be set before the link-local address appears.
    writeHostSysctls(plan, this.handed?.sysctlNetDir);
    const up = firstError(
      await host.batch([{ type: 'link.set', index: hostLink.index, change: { up: true } }]),
    );
    if (up) throw nlFail(`bringing up host interface ${plan.hostIf}`, up);

    const pod = await this.conn(plan.netns, 'configure pod');
    const link = await pod.links.get(plan.podIf);
    if (!link?.mac)
      throw new CniError(CniErrorCode.DataplaneFailure, `${plan.podIf} is missing in ${plan.netns}`);
    const lo = await pod.links.get('lo');
    const reqs: Request[] = [
      ...(lo && !lo.up ? [{ type: 'link.set', index: lo.index, change: { up: true } } as Request] : []),
      { type: 'link.set', index: link.index, change: { up: true } },
    ];
    const err = firstError(await pod.batch(reqs));
    if (err) throw nlFail(`bringing up ${plan.podIf} in ${plan.netns}`, err);
    return { podMac: link.mac };
  }

  async configure(plan: AttachmentPlan): Promise<void> {
    const host = await this.conn(undefined, 'configure host');
    const hostLink = await host.links.get(plan.hostIf);
    if (!hostLink)
      throw new CniError(CniErrorCode.DataplaneFailure, `host interface ${plan.hostIf} is missing`);
    const hostErr = firstError(
      await host.batch(
        plan.hostRoutes.map(
          (dst): Request => ({
            type: 'route.replace',
            route: { dst, oif: hostLink.index, scope: SCOPE_LINK },
          }),
        ),
      ),
    );
    if (hostErr) throw nlFail(`routing to ${plan.hostIf}`, hostErr);

    const pod = await this.conn(plan.netns, 'configure pod');
    const link = await pod.links.get(plan.podIf);
    if (!link) throw new CniError(CniErrorCode.DataplaneFailure, `${plan.podIf} is missing in ${plan.netns}`);
    const reqs: Request[] = [
      ...plan.podAddresses.map(
        (address): Request => ({
          type: 'addr.add',
          addr: {
            index: link.index,
            address,
            replace: true,
            ...(address.includes(':') ? { nodad: true } : {}),
          },
        }),
      ),
      // The gateways' permanent neighbour entries come before the routes through them.
      ...(plan.podNeighbours ?? []).map(
        (n): Request => ({
          type: 'neigh.add',
          neigh: { index: link.index, dst: n.ip, lladdr: n.lladdr, state: NUD_PERMANENT },
        }),
      ),
      ...plan.podRoutes.map((r): Request => ({ type: 'route.replace', route: toRoute(r, link.index) })),
    ];
    const err = firstError(await pod.batch(reqs));
    if (err) throw nlFail(`configuring ${plan.podIf} in ${plan.netns}`, err);
  }

  async remove(target: { hostIf: string; netns: string | undefined; podIf: string }): Promise<void> {
    const hostGone = await withRtnl(undefined, 'remove', async (host) => {
      try {
        await host.links.del(target.hostIf);
        return false;
      } catch (err) {
        if (isMissing(err)) return true;
        throw nlFail(`deleting host interface ${target.hostIf}`, err);
      }
    });
    if (hostGone && target.netns && this.netnsExists(target.netns)) {
      // The host end is gone but the pod end may remain (e.g. an earlier partial ADD).
      await this.withNs(target.netns, 'remove', async (pod) => {
        try {
          await pod.links.del(target.podIf);
        } catch (err) {
          if (!isMissing(err)) throw nlFail(`deleting ${target.podIf} in ${target.netns}`, err);
        }
      }).catch((err) => {
        // A namespace that disappears while we look is as good as removed.
        if (this.netnsExists(target.netns!)) throw err;
      });
    }
  }

  async observe(plan: AttachmentPlan): Promise<ObservedAttachment> {
    const seen = emptyObservation(plan, this.netnsExists(plan.netns));
    await withRtnl(undefined, 'observe', async (host) => {
      const l = await host.links.get(plan.hostIf);
      if (!l) return;
      seen.hostLink = { name: l.name, mac: l.mac ?? '', mtu: l.mtu ?? 0, up: l.up };
      for (const family of [4, 6] as const) {
        for (const r of await host.routes.list({ family, table: 254, oif: l.index })) {
          if (r.protocol === RTPROT_KERNEL) continue;
          if (family === 4 && r.scope !== SCOPE_LINK) continue;
          seen.hostRoutes.push(r.dst);
        }
      }
      seen.hostSysctls = readHostSysctls(plan, this.handed?.sysctlNetDir);
    });
    if (!seen.netnsExists) return seen;
    await this.withNs(plan.netns, 'observe', async (pod) => {
      const l = await pod.links.get(plan.podIf);
      if (!l) return;
      seen.podLink = { name: l.name, mac: l.mac ?? '', mtu: l.mtu ?? 0, up: l.up };
      seen.podAddresses = (await pod.addrs.list({ index: l.index }))
        .filter((a) => a.scope === SCOPE_UNIVERSE)
        .map((a) => a.address);
      for (const family of [4, 6] as const) {
        for (const r of await pod.routes.list({ family, table: 254, oif: l.index })) {
          if (r.protocol === RTPROT_KERNEL) continue;
          seen.podRoutes.push({
            dst: r.dst,
            ...(r.gateway ? { gw: r.gateway } : {}),
            ...(r.scope === SCOPE_LINK ? { scope: 'link' as const } : {}),
          });
        }
      }
      for (const n of await pod.neigh.list({ index: l.index })) {
        seen.podNeighbours.push({
          ip: n.dst,
          lladdr: n.lladdr ?? '',
          permanent: (n.state & NUD_PERMANENT) !== 0,
        });
      }
    });
    return seen;
  }
}
