// The pure description of one pod attachment: what ADD programs and what CHECK expects to find.
import { createHash } from 'node:crypto';
import type { PodRef } from './env.js';
import type { CniResult } from './result.js';

/** The MAC of every host-side veth; pods see the gateway 169.254.1.1 at this address. */
export const HOST_MAC = 'ee:ee:ee:ee:ee:ee';
/** The pods' IPv4 gateway: answered by the ARP responder (or kernel proxy ARP) on the host veth. */
export const GATEWAY_V4 = '169.254.1.1';
/** The host veth's EUI-64 link-local address derived from HOST_MAC: the pods' IPv6 gateway. */
export const GATEWAY_V6 = 'fe80::ecee:eeff:feee:eeee';
export const HOST_IF_PREFIX = 'pn';

/**
 * The host-side interface name: `pn` + 11 hex characters of sha1("namespace.pod"). Without a pod
 * reference (a runtime other than the kubelet), the container ID and interface name are hashed.
 */
export function hostIfName(pod: PodRef | undefined, containerId: string, ifname: string): string {
  const key = pod ? `${pod.namespace}.${pod.name}` : `${containerId}.${ifname}`;
  return HOST_IF_PREFIX + createHash('sha1').update(key).digest('hex').slice(0, 11);
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
  return { ...plan, ipv6: undefined, podAddresses: [], podRoutes: [], hostRoutes: [] };
}

export function planAttachment(input: PlanInput): AttachmentPlan {
  const { hostIf, ipv4, ipv6 } = input;
  const podAddresses: string[] = [];
  const podRoutes: PlannedRoute[] = [];
  const hostRoutes: string[] = [];
  const sysctls: PlannedSysctl[] = [];
  if (ipv4) {
    podAddresses.push(`${ipv4}/32`);
    podRoutes.push({ dst: `${GATEWAY_V4}/32`, scope: 'link' }, { dst: '0.0.0.0/0', gw: GATEWAY_V4 });
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
    podRoutes.push({ dst: '::/0', gw: GATEWAY_V6 });
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
