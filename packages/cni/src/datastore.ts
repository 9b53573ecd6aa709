// The port between the plugin and the Kubernetes API: IPAM and the pod's annotation.
import type { PodRef } from './env.js';

export interface AllocateRequest {
  handle: string;
  node: string;
  ipv4: boolean;
  ipv6: boolean;
  ipv4Pools: string[];
  ipv6Pools: string[];
  attrs: Record<string, string>;
}

export interface Allocation {
  /** Bare addresses (no prefix length). */
  ipv4: string | undefined;
  ipv6: string | undefined;
}

export interface DatastoreStatus {
  reachable: boolean;
  usablePool: boolean;
  detail: string;
}

/**
 * Errors thrown from a Datastore should be CniErrors: code 11 when the API is unreachable or times
 * out, 100 when the pools are exhausted, 103 otherwise.
 */
export interface Datastore {
  allocate(req: AllocateRequest): Promise<Allocation>;
  /** Releases every address held by the handle; an unknown handle is not an error. */
  releaseByHandle(handle: string): Promise<void>;
  /** Records the pod's IPs (podnet.io/podIP, podnet.io/podIPs); a missing pod is not an error. */
  annotatePod(pod: PodRef, ips: string[]): Promise<void>;
  /** Handles of allocations on this node whose name starts with prefix (for GC). */
  listHandles(node: string, prefix: string): Promise<string[]>;
  status(node: string): Promise<DatastoreStatus>;
  /** API requests made so far and the time spent in them, for logs. */
  /** API requests so far: count, time waited, and each as `METHOD path status time`. */
  stats?(): { requests: number; ms: number; calls?: string[] };
  close(): Promise<void>;
}

export const ANNOTATION_POD_IP = 'podnet.io/podIP';
export const ANNOTATION_POD_IPS = 'podnet.io/podIPs';
