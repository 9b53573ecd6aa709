// The pure description of one pod attachment: what ADD programs and what CHECK expects to find.
import { createHash } from 'node:crypto';
import { podInterfaceName } from '@podnet/net';
import type { PodRef } from './env.js';
import type { CniResult } from './result.js';

/** The MAC of every host-side veth; pods see the gateway 169.254.1.1 at this address. */
export const HOST_MAC = 'ee:ee:ee:ee:ee:ee';
/** The pods' IPv4 gateway: answered by the ARP responder (or kernel proxy ARP) on the host veth. */
export const GATEWAY_V4 = '169.254.1.1';
/** The host veth's EUI-64 link-local address derived from HOST_MAC: the pods' IPv6 gateway. */
export const GATEWAY_V6 = 'fe80::ecee:eeff:feee:eeee';
export const HOST_IF_PREFIX = 'pn';

/** The pod interface whose host name and routes keep the original scheme (the kubelet's one). */
export const PRIMARY_IFNAME = 'eth0';

/**
 * The host-side interface name: `pn` + 11 hex characters of sha1("namespace.pod") for the pod's
 * `eth0` (unchanged since the first release, so existing pods keep their name), and of
 * sha1("namespace.pod.ifname") for any other attachment of the pod (CNI_IFNAME net1…), so a second
 * attachment gets its own host interface. Without a pod reference (a runtime other than the
 * kubelet), the container ID and interface name are hashed.
 */
export function hostIfName(pod: PodRef | undefined, containerId: string, ifname: string): string {
  if (pod && ifname === PRIMARY_IFNAME) return podInterfaceName(pod.namespace, pod.name);
  const key = pod ? `${pod.namespace}.${pod.name}.${ifname}` : `${containerId}.${ifname}`;
  return HOST_IF_PREFIX + createHash('sha1').update(key).digest('hex').slice(0, 11);
}

/**
 * The metric of a pod interface's routes: none (0) for eth0; for another interface a fixed value
 * from 1024 to 2047 derived from its name, so its gateway and default routes sit beside eth0's
 * (which win) instead of replacing them.
 */
export function podRouteMetric(podIf: string): number | undefined {
  if (podIf === PRIMARY_IFNAME) return undefined;
  return 1024 + (Number.parseInt(createHash('sha1').update(podIf).digest('hex').slice(0, 4), 16) % 1024);
}

/** The IPAM handle of one attachment: stable, unique per container and interface, a valid k8s name. */
export function handleId(network: string, containerId: string, ifname: string): string {
  const clean = (s: string) => s.toLowerCase().replace(/[^a-z0-9.-]/g, '-');
  return `${clean(network)}.${clean(containerId)}.${clean(ifname)}`;
}

export interface PlannedRoute {
  dst: string;
  gw?: string;
  scope?: 'link';
  /** Route metric (RTA_PRIORITY); absent for eth0's routes. */
  metric?: number;
}

/** A permanent neighbour entry inside the pod: the gateway's address at the host veth's MAC. */
export interface PlannedNeighbour {
  ip: string;
  lladdr: string;
}

export interface PlannedSysctl {
  /** Path under /proc/sys, e.g. net/ipv4/conf/pn0123/forwarding. */
  key: string;
  value: string;
}

export interface AttachmentPlan {
  netns: string;
  hostIf: string;
  podIf: string;
  mtu: number;
  hostMac: string;
  ipv4: string | undefined;
  ipv6: string | undefined;
  /** CIDRs on the pod interface: IP/32 and IP/128. */
  podAddresses: string[];
  podRoutes: PlannedRoute[];
  /**
   * Permanent neighbour entries on the pod interface for its gateways (169.254.1.1 and, with IPv6,
   * the host veth's link-local address), so the pod never needs ARP/ND to reach its gateway and
   * keeps it while the agent's ARP responder is down. Absent in attachments cached by releases
   * before it existed.
   */
  podNeighbours?: PlannedNeighbour[];
  /** Host routes to the pod, all `dev hostIf scope link`. */
  hostRoutes: string[];
  /** Sysctls written before the host interface comes up (accept_dad must precede link-local). */
  hostSysctls: PlannedSysctl[];
}

export interface PlanInput {
  netns: string;
  hostIf: string;
  podIf: string;
  mtu: number;
  ipv4?: string | undefined;
  ipv6?: string | undefined;
  arpMode: 'userspace' | 'kernel';
}

/**
 * The link part of an attachment, before its addresses are known: the veth pair and the host
 * sysctls for the families the pod will get (`ipv6`: whether it gets an IPv6 address). ADD makes
 * the link while IPAM allocates, then adds the addresses and routes of the full plan.
 */
export function planLink(input: Omit<PlanInput, 'ipv4' | 'ipv6'> & { ipv6: boolean }): AttachmentPlan {
  const { ipv6, ...rest } = input;
  const plan = planAttachment({ ...rest, ...(ipv6 ? { ipv6: '::' } : {}) });
  return { ...plan, ipv6: undefined, podAddresses: [], podRoutes: [], podNeighbours: [], hostRoutes: [] };
}

export function planAttachment(input: PlanInput): AttachmentPlan {
  const { hostIf, ipv4, ipv6 } = input;
  const podAddresses: string[] = [];
  const podRoutes: PlannedRoute[] = [];
  const podNeighbours: PlannedNeighbour[] = [];
  const hostRoutes: string[] = [];
  const sysctls: PlannedSysctl[] = [];
  const metric = podRouteMetric(input.podIf);
  const m = metric === undefined ? {} : { metric };
  if (ipv4) {
    podAddresses.push(`${ipv4}/32`);
    podRoutes.push(
      { dst: `${GATEWAY_V4}/32`, scope: 'link', ...m },
      { dst: '0.0.0.0/0', gw: GATEWAY_V4, ...m },
    );
    podNeighbours.push({ ip: GATEWAY_V4, lladdr: HOST_MAC });
    hostRoutes.push(`${ipv4}/32`);
  }
  // IPv4 per-interface sysctls are written whatever the families: proxy_arp must be off when the
  // userspace responder answers, on (with no delay) in kernel mode.
  sysctls.push(
    { key: `net/ipv4/conf/${hostIf}/forwarding`, value: '1' },
    { key: `net/ipv4/conf/${hostIf}/proxy_arp`, value: input.arpMode === 'kernel' ? '1' : '0' },
  );
  if (input.arpMode === 'kernel') sysctls.push({ key: `net/ipv4/neigh/${hostIf}/proxy_delay`, value: '0' });
  if (ipv6) {
    podAddresses.push(`${ipv6}/128`);
    podRoutes.push({ dst: '::/0', gw: GATEWAY_V6, ...m });
    podNeighbours.push({ ip: GATEWAY_V6, lladdr: HOST_MAC });
    hostRoutes.push(`${ipv6}/128`);
    sysctls.push(
      { key: `net/ipv6/conf/${hostIf}/disable_ipv6`, value: '0' },
      { key: `net/ipv6/conf/${hostIf}/accept_dad`, value: '0' },
      { key: `net/ipv6/conf/${hostIf}/accept_ra`, value: '0' },
      { key: `net/ipv6/conf/${hostIf}/forwarding`, value: '1' },
    );
  }
  return {
    netns: input.netns,
    hostIf,
    podIf: input.podIf,
    mtu: input.mtu,
    hostMac: HOST_MAC,
    ipv4,
    ipv6,
    podAddresses,
    podRoutes,
    podNeighbours,
    hostRoutes,
    hostSysctls: sysctls,
  };
}

/** The CNI result of a plan: host interface first, then the pod interface holding the IPs. */
export function planResult(plan: AttachmentPlan, podMac: string, cniVersion: string): CniResult {
  return {
    cniVersion,
    interfaces: [
      { name: plan.hostIf, mac: plan.hostMac, mtu: plan.mtu },
      { name: plan.podIf, mac: podMac, mtu: plan.mtu, sandbox: plan.netns },
    ],
    ips: [
      ...(plan.ipv4 ? [{ address: `${plan.ipv4}/32`, gateway: GATEWAY_V4, interface: 1 }] : []),
      ...(plan.ipv6 ? [{ address: `${plan.ipv6}/128`, gateway: GATEWAY_V6, interface: 1 }] : []),
    ],
    routes: plan.podRoutes.filter((r) => r.gw).map((r) => ({ dst: r.dst, gw: r.gw! })),
    dns: {},
  };
}
