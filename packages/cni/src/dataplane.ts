// The port between the plugin and the kernel: create, observe and remove one attachment.
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
}

export interface Dataplane {
  /** Fails with code 3 (container unknown) when the namespace path does not exist. */
  checkNetns(netns: string): Promise<void>;
  /** The MTU of the node's default-route interface (or 1500 when there is none). */
  detectMtu(): Promise<number>;
  /** Creates the veth pair and programs both sides; returns the pod interface's MAC. */
  create(plan: AttachmentPlan): Promise<{ podMac: string }>;
  /** Removes the attachment; missing interfaces or namespaces are not errors. */
  remove(target: { hostIf: string; netns: string | undefined; podIf: string }): Promise<void>;
  /** Reads what the kernel has for this attachment (for CHECK and idempotent ADD). */
  observe(plan: AttachmentPlan): Promise<ObservedAttachment>;
}
