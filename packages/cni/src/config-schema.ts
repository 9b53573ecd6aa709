// The network configuration as a zod schema: the typed, documented form for the agent, the lab and
// tests. The plugin itself validates with the hand-written validateNetConf (config.ts), which names
// the same fields and accepts the same configurations (a property test holds them together),
// without building zod schemas at each process start.
import { z } from 'zod';

const attachment = z.object({ containerID: z.string().min(1), ifname: z.string().min(1) }).loose();

const boolish = z.union([z.boolean(), z.enum(['true', 'false']).transform((s) => s === 'true')]);

export const IpamConfigSchema = z
  .object({
    type: z.string().optional(),
    /** Pools (IPPool names or CIDRs) to allocate IPv4 from; empty means any enabled pool. */
    ipv4_pools: z.array(z.string()).optional(),
    ipv6_pools: z.array(z.string()).optional(),
    assign_ipv4: boolish.optional(),
    assign_ipv6: boolish.optional(),
  })
  .loose();

export const NetConfSchema = z
  .object({
    cniVersion: z.string().min(1),
    name: z.string().min(1),
    type: z.literal('podnet'),
    kubeconfig: z.string().min(1).optional(),
    nodeName: z.string().min(1).optional(),
    mtu: z.number().int().min(68).max(65535).optional(),
    ipam: IpamConfigSchema.optional(),
    arpMode: z.enum(['userspace', 'kernel']).optional(),
    /** How the kernel is programmed: rtnetlink-ts (default) or iproute2 processes. */
    dataplane: z.enum(['netlink', 'iproute2']).optional(),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).optional(),
    logFile: z.string().min(1).optional(),
    cacheDir: z.string().min(1).optional(),
    /** Where the plugin leaves its timing records for the agent (default /var/run/podnet/cni-timings; "none": not at all). */
    timingDir: z.string().min(1).optional(),
    datastoreTimeoutMs: z.number().int().positive().optional(),
    /** CNI 1.1: GC does nothing for this network. */
    disableGC: z.boolean().optional(),
    /** GC keeps completed attachments younger than this many seconds. */
    gcGracePeriodSeconds: z.number().int().min(0).max(86_400).optional(),
    prevResult: z.unknown().optional(),
    runtimeConfig: z.record(z.string(), z.unknown()).optional(),
    'cni.dev/valid-attachments': z.array(attachment).optional(),
    'cni.dev/attachments': z.array(attachment).optional(),
  })
  .loose();
