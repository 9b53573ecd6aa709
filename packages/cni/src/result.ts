// CNI results: the internal (1.1.0) shape, conversion to the shape each spec version expects, and
// parsing of a prevResult written by any supported version.
import { CniError, CniErrorCode } from './errors.js';
import { compareVersions } from './version.js';

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

export interface CniIpConfig {
  /** CIDR notation, e.g. 10.244.1.5/32. */
  address: string;
  gateway?: string;
  /** Index into interfaces. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A result in the 1.1.0 shape; older shapes are produced from it on output. */
export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

function ipFamily(cidr: string): '4' | '6' {
  return cidr.includes(':') ? '6' : '4';
}

/** Converts an internal result to the shape defined by `version` (0.3.0 … 1.1.0). */
export function convertResult(result: CniResult, version: string): Record<string, unknown> {
  const v11 = compareVersions(version, '1.1.0') >= 0;
  const v1 = compareVersions(version, '1.0.0') >= 0;
  const out: Record<string, unknown> = { cniVersion: version };
  if (result.interfaces) {
    out.interfaces = result.interfaces.map((i) => {
      const o: Record<string, unknown> = { name: i.name };
      if (i.mac !== undefined) o.mac = i.mac;
      if (v11 && i.mtu !== undefined) o.mtu = i.mtu;
      if (i.sandbox !== undefined) o.sandbox = i.sandbox;
      return o;
    });
  }
  if (result.ips) {
    out.ips = result.ips.map((ip) => {
      const o: Record<string, unknown> = {};
      // 0.3.x and 0.4.0 carry the IP family as "version"; 1.0.0 removed it.
      if (!v1) o.version = ipFamily(ip.address);
      o.address = ip.address;
      if (ip.gateway !== undefined) o.gateway = ip.gateway;
      if (ip.interface !== undefined) o.interface = ip.interface;
      return o;
    });
  }
  if (result.routes) {
    out.routes = result.routes.map((r) => {
      const o: Record<string, unknown> = { dst: r.dst };
      if (r.gw !== undefined) o.gw = r.gw;
      if (v11) {
        for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
          if (r[k] !== undefined) o[k] = r[k];
        }
      }
      return o;
    });
  }
  out.dns = result.dns ?? {};
  return out;
}

function bad(field: string, value: unknown): CniError {
  return new CniError(CniErrorCode.DecodeFailure, `prevResult.${field} is invalid: ${JSON.stringify(value)}`);
}

/** Reads a prevResult of any supported version into the internal shape. */
export function parseResult(raw: unknown, fallbackVersion: string): CniResult {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('', raw);
  const r = raw as Record<string, unknown>;
  const result: CniResult = {
    cniVersion: typeof r.cniVersion === 'string' ? r.cniVersion : fallbackVersion,
  };
  if (r.interfaces !== undefined) {
    if (!Array.isArray(r.interfaces)) throw bad('interfaces', r.interfaces);
    result.interfaces = r.interfaces.map((i, n) => {
      if (typeof i !== 'object' || i === null || typeof (i as { name?: unknown }).name !== 'string')
        throw bad(`interfaces[${n}]`, i);
      const src = i as Record<string, unknown>;
      const o: CniInterface = { name: src.name as string };
      if (typeof src.mac === 'string') o.mac = src.mac;
      if (typeof src.mtu === 'number') o.mtu = src.mtu;
      if (typeof src.sandbox === 'string') o.sandbox = src.sandbox;
      return o;
    });
  }
  if (r.ips !== undefined) {
    if (!Array.isArray(r.ips)) throw bad('ips', r.ips);
    result.ips = r.ips.map((ip, n) => {
      if (typeof ip !== 'object' || ip === null || typeof (ip as { address?: unknown }).address !== 'string')
        throw bad(`ips[${n}]`, ip);
      const src = ip as Record<string, unknown>;
      const o: CniIpConfig = { address: src.address as string };
      if (typeof src.gateway === 'string') o.gateway = src.gateway;
      if (typeof src.interface === 'number') o.interface = src.interface;
      return o;
    });
  }
  if (r.routes !== undefined) {
    if (!Array.isArray(r.routes)) throw bad('routes', r.routes);
    result.routes = r.routes.map((rt, n) => {
      if (typeof rt !== 'object' || rt === null || typeof (rt as { dst?: unknown }).dst !== 'string')
        throw bad(`routes[${n}]`, rt);
      const src = rt as Record<string, unknown>;
      const o: CniRoute = { dst: src.dst as string };
      if (typeof src.gw === 'string') o.gw = src.gw;
      for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
        if (typeof src[k] === 'number') o[k] = src[k] as number;
      }
      return o;
    });
  }
  if (r.dns !== undefined && typeof r.dns === 'object' && r.dns !== null) result.dns = r.dns as CniDns;
  return result;
}

/**
 * Appends this plugin's result to a previous plugin's result in a chain: interfaces are appended
 * and this plugin's ip.interface indexes shift by the number of interfaces already present.
 */
export function mergeResults(prev: CniResult | undefined, mine: CniResult): CniResult {
  if (!prev) return mine;
  const offset = prev.interfaces?.length ?? 0;
  return {
    cniVersion: mine.cniVersion,
    interfaces: [...(prev.interfaces ?? []), ...(mine.interfaces ?? [])],
    ips: [
      ...(prev.ips ?? []),
      ...(mine.ips ?? []).map((ip) =>
        ip.interface === undefined ? ip : { ...ip, interface: ip.interface + offset },
      ),
    ],
    routes: [...(prev.routes ?? []), ...(mine.routes ?? [])],
    dns: mine.dns && Object.keys(mine.dns).length > 0 ? mine.dns : (prev.dns ?? {}),
  };
}
