// The network configuration the runtime writes on stdin (SPEC.md section 1, plugin configuration
// object), validated with zod. Unknown keys are kept: runtimes add their own (args, capabilities…).
import { hostname } from 'node:os';
import { z } from 'zod';
import { CniError, CniErrorCode } from './errors.js';
import { isSupportedVersion, SUPPORTED_VERSIONS } from './version.js';

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
    datastoreTimeoutMs: z.number().int().positive().optional(),
    prevResult: z.unknown().optional(),
    runtimeConfig: z.record(z.string(), z.unknown()).optional(),
    'cni.dev/valid-attachments': z.array(attachment).optional(),
    'cni.dev/attachments': z.array(attachment).optional(),
  })
  .loose();

export type NetConf = z.infer<typeof NetConfSchema>;

/** A config with every default applied: what the commands work with. */
export interface PluginConfig {
  raw: NetConf;
  cniVersion: string;
  name: string;
  kubeconfig: string | undefined;
  nodeName: string;
  mtu: number | undefined;
  assignIpv4: boolean;
  assignIpv6: boolean;
  ipv4Pools: string[];
  ipv6Pools: string[];
  arpMode: 'userspace' | 'kernel';
  dataplane: 'netlink' | 'iproute2';
  logLevel: NonNullable<NetConf['logLevel']>;
  logFile: string | undefined;
  cacheDir: string;
  datastoreTimeoutMs: number;
  prevResult: unknown;
  validAttachments: { containerID: string; ifname: string }[] | undefined;
}

export const DEFAULT_CACHE_DIR = '/var/lib/cni/podnet';

function formatIssuePath(path: readonly PropertyKey[]): string {
  return path.length === 0
    ? '(root)'
    : path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.');
}

function valueAt(obj: unknown, path: readonly PropertyKey[]): unknown {
  let cur = obj;
  for (const p of path) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

/** Reads just the cniVersion of a config, for error objects written before full validation. */
export function peekVersion(stdin: string): string | undefined {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Parses and validates the stdin config. Errors name the field and its value:
 * code 6 for bad JSON, 1 for an unsupported cniVersion, 7 for any invalid field.
 */
export function parseConfig(stdin: string, env: NodeJS.ProcessEnv = process.env): PluginConfig {
  let json: unknown;
  try {
    json = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(
      CniErrorCode.DecodeFailure,
      `network configuration on stdin is not valid JSON: ${(err as Error).message}`,
    );
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CniError(CniErrorCode.DecodeFailure, 'network configuration on stdin must be a JSON object');
  }
  const version = (json as { cniVersion?: unknown }).cniVersion;
  if (typeof version === 'string' && !isSupportedVersion(version)) {
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `cniVersion "${version}" is not supported; this plugin supports ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  const parsed = NetConfSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = formatIssuePath(issue.path);
    const value = valueAt(json, issue.path);
    throw new CniError(
      CniErrorCode.InvalidConfig,
      `invalid network configuration: field ${field} = ${JSON.stringify(value) ?? 'undefined'}: ${issue.message}`,
      parsed.error.issues.map((i) => `${formatIssuePath(i.path)}: ${i.message}`).join('; '),
    );
  }
  const c = parsed.data;
  const assignIpv6 = c.ipam?.assign_ipv6 ?? (c.ipam?.ipv6_pools?.length ?? 0) > 0;
  const assignIpv4 = c.ipam?.assign_ipv4 ?? true;
  if (!assignIpv4 && !assignIpv6) {
    throw new CniError(
      CniErrorCode.InvalidConfig,
      'invalid network configuration: field ipam.assign_ipv4 = false and no IPv6 assignment: nothing to allocate',
    );
  }
  return {
    raw: c,
    cniVersion: c.cniVersion,
    name: c.name,
    kubeconfig: c.kubeconfig ?? env.KUBECONFIG,
    nodeName: c.nodeName ?? env.PODNET_NODENAME ?? env.NODENAME ?? hostname(),
    mtu: c.mtu,
    assignIpv4,
    assignIpv6,
    ipv4Pools: c.ipam?.ipv4_pools ?? [],
    ipv6Pools: c.ipam?.ipv6_pools ?? [],
    arpMode: c.arpMode ?? 'userspace',
    dataplane: c.dataplane ?? 'netlink',
    logLevel: c.logLevel ?? 'warn',
    logFile: c.logFile,
    cacheDir: c.cacheDir ?? DEFAULT_CACHE_DIR,
    datastoreTimeoutMs: c.datastoreTimeoutMs ?? 10_000,
    prevResult: c.prevResult,
    validAttachments: c['cni.dev/valid-attachments'],
  };
}
