// The port between the plugin and the kernel: create, observe and remove one attachment. Both
// implementations (netlink.ts, iproute.ts) share the parts that do not depend on how links and
// routes are programmed: the host sysctls, written and read through /proc/sys of this namespace.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { CniError, CniErrorCode } from './errors.js';
import type { AttachmentPlan, PlannedRoute } from './plan.js';

export interface ObservedLink {
  name: string;
  mac: string;
  mtu: number;
  up: boolean;
}

export interface ObservedAttachment {
  hostLink: ObservedLink | undefined;
  /** dsts of `dev hostIf scope link` routes in the node's main table. */
  hostRoutes: string[];
  hostSysctls: Record<string, string | undefined>;
  netnsExists: boolean;
  podLink: ObservedLink | undefined;
  podAddresses: string[];
  podRoutes: PlannedRoute[];
  /** Neighbour entries on the pod interface (IPv4 and IPv6). */
  podNeighbours: ObservedNeighbour[];
}

export interface ObservedNeighbour {
  ip: string;
  lladdr: string;
  permanent: boolean;
}

export interface Dataplane {
  /** Fails with code 3 (container unknown) when the namespace path does not exist. */
  checkNetns(netns: string): Promise<void>;
  /** The MTU of the node's default-route interface (or 1500 when there is none). */
  detectMtu(): Promise<number>;
  /**
   * Creates the veth pair (the pod end named plan.podIf inside plan.netns), writes the host
   * sysctls and brings both ends (and the pod's lo) up, with no address or route yet. Returns the
   * pod interface's MAC. Fails with a message containing "File exists" when the host name is taken.
   */
  createLink(plan: AttachmentPlan): Promise<{ podMac: string }>;
  /** Adds the plan's addresses and routes, on both sides, to a link createLink made. */
  configure(plan: AttachmentPlan): Promise<void>;
  /** Removes the attachment; missing interfaces or namespaces are not errors. */
  remove(target: { hostIf: string; netns: string | undefined; podIf: string }): Promise<void>;
  /** Reads what the kernel has for this attachment (for CHECK and idempotent ADD). */
  observe(plan: AttachmentPlan): Promise<ObservedAttachment>;
  /** Releases what the dataplane holds open (netlink sockets); the process is about to end. */
  close?(): void;
}

/** An observation before anything is looked at: nothing found yet, and whether the netns exists. */
export function emptyObservation(
  plan: AttachmentPlan,
  netnsExists = existsSync(plan.netns),
): ObservedAttachment {
  return {
    hostLink: undefined,
    hostRoutes: [],
    hostSysctls: {},
    netnsExists,
    podLink: undefined,
    podAddresses: [],
    podRoutes: [],
    podNeighbours: [],
  };
}

/**
 * Where a sysctl key (`net/ipv4/conf/X/forwarding`) is written: under /proc/sys, or under a handed
 * `/proc/sys/net` directory (`/proc/self/fd/N`, opened by the root shim on a writable /proc: an
 * unprivileged agent's own /proc/sys is read-only). Lookups through it still resolve in this
 * process's network namespace, the node's.
 */
export function sysctlPath(key: string, netDir?: string): string {
  if (netDir === undefined) return `/proc/sys/${key}`;
  if (!key.startsWith('net/')) {
    throw new CniError(CniErrorCode.DataplaneFailure, `sysctl ${key.replaceAll('/', '.')} is not under net/`);
  }
  return `${netDir}/${key.slice(4)}`;
}

/** Writes the plan's host sysctls in this process's namespace (the node's). */
export function writeHostSysctls(plan: AttachmentPlan, netDir?: string): void {
  for (const s of plan.hostSysctls) {
    try {
      writeFileSync(sysctlPath(s.key, netDir), s.value);
    } catch (err) {
      throw new CniError(
        CniErrorCode.DataplaneFailure,
        `writing sysctl ${s.key.replaceAll('/', '.')}=${s.value}: ${(err as Error).message}`,
      );
    }
  }
}

/** Reads the plan's host sysctls; one that cannot be read is undefined. */
export function readHostSysctls(plan: AttachmentPlan, netDir?: string): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const s of plan.hostSysctls) {
    try {
      out[s.key] = readFileSync(sysctlPath(s.key, netDir), 'utf8').trim();
    } catch {
      out[s.key] = undefined;
    }
  }
  return out;
}
