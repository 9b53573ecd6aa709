// ArpPort over @podnet/arp's ArpResponder. Interface index and MAC come from netlink in the agent's
// network namespace (the host's, in a DaemonSet with hostNetwork; the node namespace in the lab).
import { readFile } from 'node:fs/promises';
import { ArpResponder } from '@podnet/arp';
import { Rtnl } from '@podnet/rtnetlink';
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
  private nl: Rtnl | undefined;

  constructor(opts: { mode: 'userspace' | 'kernel'; logger: Logger; registry?: Registry }) {
    this.mode = opts.mode;
    this.log = opts.logger.child({ component: 'arp' });
    this.responder = new ArpResponder({
      mode: opts.mode,
      logger: opts.logger,
      ...(opts.registry ? { registry: opts.registry } : {}),
    });
  }

  async start(): Promise<void> {}

  /** Throws when the interface does not exist yet; the agent retries on its next pass. */
  /** Index and MAC of a link in this process's namespace, over netlink (sysfs may be another namespace's). */
  private async linkInfo(ifname: string): Promise<{ ifindex: number; mac: string } | undefined> {
    try {
      this.nl ??= await Rtnl.open({});
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
    await this.responder.addInterface({
      ifname: i.iface,
      ifindex: link.ifindex,
      podIPs: i.podIps.filter((ip) => !ip.includes(':')),
      hostMac: link.mac,
    });
  }

  async removeInterface(i: ArpInterface): Promise<void> {
    await this.responder.removeInterface(i.iface);
  }

  replies(): number {
    return this.responder.stats().replies;
  }

  async stop(): Promise<void> {
    await this.responder.close();
    this.nl?.close();
    this.nl = undefined;
    this.log.debug('ARP responder closed');
  }
}
