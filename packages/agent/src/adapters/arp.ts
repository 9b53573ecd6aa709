// ArpPort over @podnet/arp's ArpResponder. Interface index and MAC come from sysfs of the agent's
// network namespace (the host's, in a DaemonSet with hostNetwork; the node namespace in the lab).
import { readFile } from 'node:fs/promises';
import { ArpResponder } from '@podnet/arp';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ArpInterface } from '../model.js';
import type { ArpPort } from '../ports.js';

export async function linkInfo(ifname: string): Promise<{ ifindex: number; mac: string } | undefined> {
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
  async addInterface(i: ArpInterface): Promise<void> {
    const link = await linkInfo(i.iface);
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
    this.log.debug('ARP responder closed');
  }
}
