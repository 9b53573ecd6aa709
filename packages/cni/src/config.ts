// The network configuration the runtime writes on stdin (SPEC.md section 1, plugin configuration
// object), validated by hand (config-schema.ts has the same as a zod schema). Unknown keys are kept:
// runtimes add their own (args, capabilities…).

import { hostname } from 'node:os';
import { CniError, CniErrorCode } from './errors.js';
import { DEFAULT_TIMING_DIR } from './timing.js';
import { isSupportedVersion, SUPPORTED_VERSIONS } from './version.js';

type Issue = { path: (string | number)[]; message: string };

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** The network configuration after validation (unknown keys kept, assign_* made booleans). */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: 'podnet';
  kubeconfig?: string;
  nodeName?: string;
  mtu?: number;
  ipam?: {
    type?: string;
    ipv4_pools?: string[];
    ipv6_pools?: string[];
    assign_ipv4?: boolean;
    assign_ipv6?: boolean;
    [k: string]: unknown;
  };
  arpMode?: 'userspace' | 'kernel';
  dataplane?: 'netlink' | 'iproute2';
  logLevel?: (typeof LOG_LEVELS)[number];
  logFile?: string;
  cacheDir?: string;
  timingDir?: string;
  datastoreTimeoutMs?: number;
  disableGC?: boolean;
  gcGracePeriodSeconds?: number;
  prevResult?: unknown;
  runtimeConfig?: Record<string, unknown>;
  'cni.dev/valid-attachments'?: { containerID: string; ifname: string; [k: string]: unknown }[];
  'cni.dev/attachments'?: { containerID: string; ifname: string; [k: string]: unknown }[];
  [k: string]: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Validates the network configuration by hand (no schema to build at process start); returns
 * every problem with its path, or the config with assign_* as booleans.
 */
export function validateNetConf(
  json: Record<string, unknown>,
): { ok: true; value: NetConf } | { ok: false; issues: Issue[] } {
  const issues: Issue[] = [];
  const bad = (path: (string | number)[], message: string) => issues.push({ path, message });
  const str = (o: Record<string, unknown>, k: string, path: (string | number)[], required: boolean) => {
    const v = o[k];
    if (v === undefined) {
      if (required) bad([...path, k], 'required: a non-empty string');
    } else if (typeof v !== 'string' || v === '') bad([...path, k], 'must be a non-empty string');
  };
  const oneOf = (k: string, values: readonly string[]) => {
    const v = json[k];
    if (v !== undefined && !values.includes(v as string)) bad([k], `must be one of ${values.join(', ')}`);
  };
  const int = (k: string, min: number, max: number) => {
    const v = json[k];
    if (v === undefined) return;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      bad([k], `must be an integer from ${min} to ${max}`);
    }
  };
  str(json, 'cniVersion', [], true);
  str(json, 'name', [], true);
  if (json.type !== 'podnet') bad(['type'], 'must be "podnet"');
  for (const k of ['kubeconfig', 'nodeName', 'logFile', 'cacheDir', 'timingDir']) str(json, k, [], false);
  int('mtu', 68, 65535);
  int('datastoreTimeoutMs', 1, Number.MAX_SAFE_INTEGER);
  int('gcGracePeriodSeconds', 0, 86_400);
  if (json.disableGC !== undefined && typeof json.disableGC !== 'boolean')
    bad(['disableGC'], 'must be true or false');
  oneOf('arpMode', ['userspace', 'kernel']);
  oneOf('dataplane', ['netlink', 'iproute2']);
  oneOf('logLevel', LOG_LEVELS);
  if (json.runtimeConfig !== undefined && !isObject(json.runtimeConfig))
    bad(['runtimeConfig'], 'must be an object');
  let ipam: NetConf['ipam'];
  if (json.ipam !== undefined) {
    if (!isObject(json.ipam)) bad(['ipam'], 'must be an object');
    else {
      ipam = { ...json.ipam };
      if (ipam.type !== undefined && typeof ipam.type !== 'string') bad(['ipam', 'type'], 'must be a string');
      for (const k of ['ipv4_pools', 'ipv6_pools'] as const) {
        const v = json.ipam[k];
        if (v === undefined) continue;
        if (!Array.isArray(v)) bad(['ipam', k], 'must be a list of strings');
        else {
          v.forEach((x, i) => {
            if (typeof x !== 'string') bad(['ipam', k, i], 'must be a string');
          });
        }
      }
      for (const k of ['assign_ipv4', 'assign_ipv6'] as const) {
        const v = json.ipam[k];
        if (v === undefined || typeof v === 'boolean') continue;
        if (v === 'true' || v === 'false') ipam[k] = v === 'true';
        else bad(['ipam', k], 'must be true or false');
      }
    }
  }
  for (const k of ['cni.dev/valid-attachments', 'cni.dev/attachments']) {
    const v = json[k];
    if (v === undefined) continue;
    if (!Array.isArray(v)) {
      bad([k], 'must be a list of {containerID, ifname}');
      continue;
    }
    v.forEach((a, i) => {
      if (!isObject(a)) bad([k, i], 'must be an object {containerID, ifname}');
      else {
        str(a, 'containerID', [k, i], true);
        str(a, 'ifname', [k, i], true);
      }
    });
  }
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, value: { ...json, ...(ipam ? { ipam } : {}) } as NetConf };
}

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
  /** Where timing records go for the agent (timing.ts); undefined: none written. */
  timingDir: string | undefined;
  datastoreTimeoutMs: number;
  /** CNI 1.1 `disableGC`: GC does nothing. */
  disableGC: boolean;
  /** GC keeps completed attachments younger than this. */
  gcGracePeriodSeconds: number;
  prevResult: unknown;
  validAttachments: { containerID: string; ifname: string }[] | undefined;
}

export const DEFAULT_CACHE_DIR = '/var/lib/cni/podnet';
export const DEFAULT_GC_GRACE_SECONDS = 60;

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
  const parsed = validateNetConf(json as Record<string, unknown>);
  if (!parsed.ok) {
    const issue = parsed.issues[0]!;
    const field = formatIssuePath(issue.path);
    const value = valueAt(json, issue.path);
    throw new CniError(
      CniErrorCode.InvalidConfig,
      `invalid network configuration: field ${field} = ${JSON.stringify(value) ?? 'undefined'}: ${issue.message}`,
      parsed.issues.map((i) => `${formatIssuePath(i.path)}: ${i.message}`).join('; '),
    );
  }
  const c = parsed.value;
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
    timingDir: c.timingDir === 'none' ? undefined : (c.timingDir ?? DEFAULT_TIMING_DIR),
    datastoreTimeoutMs: c.datastoreTimeoutMs ?? 10_000,
    disableGC: c.disableGC ?? false,
    gcGracePeriodSeconds: c.gcGracePeriodSeconds ?? DEFAULT_GC_GRACE_SECONDS,
    prevResult: c.prevResult,
    validAttachments: c['cni.dev/valid-attachments'],
  };
}
