// ArpPort over @podnet/arp's ArpResponder. Interface index and MAC come from netlink in the agent's
// network namespace (the host's, in a DaemonSet with hostNetwork; the node namespace in the lab).
import { readFile } from 'node:fs/promises';
import { ArpResponder } from '@podnet/arp';
import { type Link, Rtnl } from '@podnet/rtnetlink';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ArpInterface } from '../model.js';
import type { ArpPort } from '../ports.js';

/** Interface index and MAC from sysfs (the fallback when netlink is not available). */
export async function linkInfoSysfs(ifname: string): Promise<{ ifindex: number; mac: string } | undefined> {
  try {
    const [idx, mac] = await Promise.all([
      readFile(`/sys/class/net/${ifname}/ifindex`, 'utf8'),
      readFile(`/sys/class/net/${ifname}/address`, 'utf8'),
    ]);
    return { ifindex: Number(idx.trim()), mac: mac.trim() };
  } catch {
    return undefined;
  }
}

export class ArpAdapter implements ArpPort {
  readonly mode: 'userspace' | 'kernel';
  private readonly responder: ArpResponder;
  private readonly log: Logger;
  private readonly podIfacePrefix: string;
  private readonly netns: string | undefined;
  private nl: Rtnl | undefined;
  private linkSub: { close(): void; unref(): void } | undefined;
  /** Interfaces the agent added with their pod's addresses (from the Pod object). */
  private readonly known = new Set<string>();

  constructor(opts: {
    mode: 'userspace' | 'kernel';
    logger: Logger;
    registry?: Registry;
    /** Host-side pod interface prefix served from the moment such a link appears ('' disables). */
    podIfacePrefix?: string;
    /** The node's namespace, when it is not this process's own (tests). */
    netns?: string;
  }) {
    this.mode = opts.mode;
    this.podIfacePrefix = opts.podIfacePrefix ?? 'pn';
    this.netns = opts.netns;
    this.log = opts.logger.child({ component: 'arp' });
    this.responder = new ArpResponder({
      mode: opts.mode,
      logger: opts.logger,
      ...(opts.registry ? { registry: opts.registry } : {}),
      ...(opts.netns ? { netns: opts.netns } : {}),
    });
  }

  /**
   * In userspace mode, serves every pod interface from the moment its link appears, before the
   * agent has seen the Pod object: a pod's first ARP for its gateway can precede the informer
   * event, and an unanswered request costs the pod a whole retransmit interval (1 s). Until the
   * Pod is known, the interface is served with no pod addresses; DAD probes and gratuitous ARP are
   * ignored either way. (Kernel mode needs nothing: the CNI plugin sets proxy_arp at ADD.)
   */
  async start(): Promise<void> {
    if (this.mode !== 'userspace' || !this.podIfacePrefix) return;
    try {
      this.nl ??= await Rtnl.open(this.netns ? { netns: this.netns } : {});
      const sub = this.nl.subscribe(
        ['link'],
        (ev) => {
          if (ev.type === 'link' && ev.op === 'new') void this.serveEarly(ev.link);
        },
        (err) =>
          this.log.warn({ err }, 'link events lost; pod interfaces are served once their pods are seen'),
      );
      sub.unref();
      this.linkSub = sub;
      for (const link of await this.nl.links.list()) await this.serveEarly(link);
    } catch (err) {
      this.log.warn({ err }, 'cannot follow pod links; pod interfaces are served once their pods are seen');
    }
  }

  private async serveEarly(link: Link): Promise<void> {
    if (!link.name.startsWith(this.podIfacePrefix) || !link.mac || this.known.has(link.name)) return;
    try {
      // Also on every later RTM_NEWLINK of the link: a changed MAC replaces the served one.
      await this.responder.addInterface({
        ifname: link.name,
        ifindex: link.index,
        podIPs: [],
        hostMac: link.mac,
      });
    } catch (err) {
      this.log.debug({ err, ifname: link.name }, 'pod link not served early');
    }
  }

  /** Throws when the interface does not exist yet; the agent retries on its next pass. */
  /** Index and MAC of a link in this process's namespace, over netlink (sysfs may be another namespace's). */
  private async linkInfo(ifname: string): Promise<{ ifindex: number; mac: string } | undefined> {
    try {
      this.nl ??= await Rtnl.open(this.netns ? { netns: this.netns } : {});
      const l = await this.nl.links.get(ifname);
      return l?.mac ? { ifindex: l.index, mac: l.mac } : undefined;
    } catch (err) {
      this.log.debug({ err, ifname }, 'netlink link lookup failed; trying sysfs');
      return linkInfoSysfs(ifname);
    }
  }

  async addInterface(i: ArpInterface): Promise<void> {
    const link = await this.linkInfo(i.iface);
    if (!link) throw new Error(`pod interface ${i.iface} not found (yet)`);
    this.known.add(i.iface);
    await this.responder.addInterface({
      ifname: i.iface,
      ifindex: link.ifindex,
      podIPs: i.podIps.filter((ip) => !ip.includes(':')),
      hostMac: link.mac,
    });
  }

  async removeInterface(i: ArpInterface): Promise<void> {
    this.known.delete(i.iface);
    await this.responder.removeInterface(i.iface);
  }

  replies(): number {
    return this.responder.stats().replies;
  }

  async stop(): Promise<void> {
    this.linkSub?.close();
    this.linkSub = undefined;
    await this.responder.close();
    this.nl?.close();
    this.nl = undefined;
    this.log.debug('ARP responder closed');
  }
}
