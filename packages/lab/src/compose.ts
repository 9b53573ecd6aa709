// compose.yaml → a typed, normalised project: the subset of the Compose Specification the lab
// realises, plus the `x-podnet` extension fields. Pure: `parseCompose(text)` does no I/O.
import * as net from '@podnet/net';
import { parse as parseYaml } from 'yaml';
import { LabError, LabErrorCode } from './errors.js';
import { type NetworkModel, parseModels } from './models.js';
import { validateComposeSpec } from './spec.js';

export type ServiceRole = 'apiserver' | 'tor' | 'node' | 'client';
export type TorDaemon = 'bird' | 'frr';

export interface Cidr {
  address: string;
  prefixLength: number;
  family: 4 | 6;
}

export interface ComposeNetwork {
  name: string;
  ipv4?: Cidr;
  ipv6?: Cidr;
}

export interface Attachment {
  network: string;
  ipv4?: string;
  ipv6?: string;
}

export interface Volume {
  source: string;
  target: string;
  readOnly: boolean;
}

export interface ComposeService {
  name: string;
  role: ServiceRole;
  profiles: string[];
  command: string[];
  environment: Record<string, string>;
  volumes: Volume[];
  sysctls: Record<string, string>;
  dependsOn: string[];
  /** In compose order; the first is eth0 inside the service's namespace. */
  networks: Attachment[];
  asNumber?: number;
  /** A node that is a BGP route reflector (Node annotation podnet.io/route-reflector-cluster-id). */
  routeReflectorClusterId?: string;
  daemon?: TorDaemon;
  gateway: { ipv4?: string; ipv6?: string };
}

export interface IpPoolSetting {
  name: string;
  cidr: string;
  blockSize: number;
}

export interface LabSettings {
  podsPerNode: number;
  podNamespace: string;
  apiServer: { service: string; port: number; token: string };
  ipPools: IpPoolSetting[];
  bgp: {
    nodeAsNumber: number;
    nodeToNodeMesh: boolean;
    keepaliveTime: number;
    holdTime: number;
    /** Graceful restart time the nodes announce (seconds). */
    restartTime: number;
    /** BFD on the ToR and the nodes (x-podnet.bgp.bfd; default on, 300 ms x 3). */
    bfd: { enabled: boolean; minTx: number; minRx: number; multiplier: number };
  };
  /** The network models (`x-podnet.models`), in file order; `--model` picks one (default flat). */
  models: NetworkModel[];
}

export interface ComposeProject {
  networks: ComposeNetwork[];
  /** Every service in the file, in file order. */
  services: ComposeService[];
  settings: LabSettings;
}

type Dict = Record<string, unknown>;
const isDict = (v: unknown): v is Dict => typeof v === 'object' && v !== null && !Array.isArray(v);

function invalid(field: string, value: unknown, why: string): never {
  throw new LabError(LabErrorCode.composeInvalid, `compose: ${field} = ${JSON.stringify(value)}: ${why}`);
}

export function parseCidr(field: string, text: unknown): Cidr {
  if (typeof text !== 'string') invalid(field, text, 'expected a CIDR string');
  const r = net.parseCidrResult(text, { hostBits: 'keep' });
  if (!r.ok) invalid(field, text, `not an IP prefix (${r.reason})`);
  const { family, addr, len } = r.value;
  return { address: net.formatIp({ family, value: addr }), prefixLength: len, family };
}

function stringList(field: string, v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) invalid(field, v, 'expected a list');
  return v.map((x, i) => (typeof x === 'string' ? x : invalid(`${field}[${i}]`, x, 'expected a string')));
}

function keyValues(field: string, v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  const out: Record<string, string> = {};
  if (Array.isArray(v)) {
    for (const [i, item] of v.entries()) {
      if (typeof item !== 'string') invalid(`${field}[${i}]`, item, 'expected KEY=VALUE');
      const eq = item.indexOf('=');
      if (eq <= 0) invalid(`${field}[${i}]`, item, 'expected KEY=VALUE');
      out[item.slice(0, eq)] = item.slice(eq + 1);
    }
    return out;
  }
  if (!isDict(v)) invalid(field, v, 'expected a map or a list of KEY=VALUE');
  for (const [k, x] of Object.entries(v)) out[k] = x === null || x === undefined ? '' : String(x);
  return out;
}

function command(field: string, v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (typeof v === 'string') return v.split(/\s+/).filter(Boolean);
  return stringList(field, v);
}

function volumes(field: string, v: unknown): Volume[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) invalid(field, v, 'expected a list');
  return v.map((item, i) => {
    const f = `${field}[${i}]`;
    if (typeof item === 'string') {
      const [source = '', target, mode] = item.split(':');
      if (!target) invalid(f, item, 'expected SOURCE:TARGET[:ro]');
      return { source, target, readOnly: mode === 'ro' };
    }
    if (!isDict(item) || typeof item.source !== 'string' || typeof item.target !== 'string') {
      invalid(f, item, 'expected {source, target}');
    }
    return { source: item.source, target: item.target, readOnly: item.read_only === true };
  });
}

function dependsOn(field: string, v: unknown): string[] {
  if (isDict(v)) return Object.keys(v);
  return stringList(field, v);
}

function attachments(field: string, v: unknown, networks: Map<string, ComposeNetwork>): Attachment[] {
  const entries: [string, unknown][] = Array.isArray(v)
    ? stringList(field, v).map((n) => [n, null])
    : isDict(v)
      ? Object.entries(v)
      : []; // no networks: the lab gives the service a namespace with only loopback
  return entries.map(([name, cfg]) => {
    const f = `${field}.${name}`;
    const net = networks.get(name) ?? invalid(field, name, 'no such network under top-level networks');
    const a: Attachment = { network: name };
    if (isDict(cfg)) {
      if (cfg.ipv4_address !== undefined) a.ipv4 = address(`${f}.ipv4_address`, cfg.ipv4_address, net.ipv4);
      if (cfg.ipv6_address !== undefined) a.ipv6 = address(`${f}.ipv6_address`, cfg.ipv6_address, net.ipv6);
    }
    return a;
  });
}

function address(field: string, v: unknown, subnet: Cidr | undefined): string {
  if (typeof v !== 'string') invalid(field, v, 'expected an IP address');
  const r = net.parseIpResult(v);
  if (!r.ok) invalid(field, v, `not an IP address (${r.reason})`);
  const family = r.value.family;
  if (!subnet) invalid(field, v, `the network has no IPv${family} subnet in its ipam config`);
  if (!inSubnet(v, subnet))
    invalid(field, v, `outside the network's subnet ${subnet.address}/${subnet.prefixLength}`);
  return v;
}

/** The address as a bigint (IPv4 or IPv6); throws naming the value when it is not an address. */
export function ipToBigInt(ip: string): bigint {
  return net.mustParseIp(ip, 'address').value;
}

export function inSubnet(ip: string, subnet: Cidr): boolean {
  const a = net.parseIp(ip);
  const s = net.parseIp(subnet.address);
  return !!a && !!s && net.cidrContains({ family: s.family, addr: s.value, len: subnet.prefixLength }, a);
}

function num(field: string, v: unknown, dflt: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    invalid(field, v, `expected an integer ${min}..${max}`);
  }
  return v;
}

function str(field: string, v: unknown, dflt: string): string {
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !v) invalid(field, v, 'expected a non-empty string');
  return v;
}

function bfdSettings(b: Record<string, unknown>): LabSettings['bgp']['bfd'] {
  return {
    enabled: b.enabled === undefined ? true : b.enabled === true,
    minTx: num('x-podnet.bgp.bfd.minTx', b.minTx, 300, 10, 60000),
    minRx: num('x-podnet.bgp.bfd.minRx', b.minRx, 300, 10, 60000),
    multiplier: num('x-podnet.bgp.bfd.multiplier', b.multiplier, 3, 1, 255),
  };
}

const roles: readonly ServiceRole[] = ['apiserver', 'tor', 'node', 'client'];

function settings(x: unknown): LabSettings {
  const p = isDict(x) ? x : {};
  const api = isDict(p.apiServer) ? p.apiServer : {};
  const bgp = isDict(p.bgp) ? p.bgp : {};
  const pools = p.ipPools === undefined ? [] : p.ipPools;
  if (!Array.isArray(pools)) invalid('x-podnet.ipPools', pools, 'expected a list');
  return {
    podsPerNode: num('x-podnet.podsPerNode', p.podsPerNode, 2, 0, 200),
    podNamespace: str('x-podnet.podNamespace', p.podNamespace, 'default'),
    apiServer: {
      service: str('x-podnet.apiServer.service', api.service, 'apiserver'),
      port: num('x-podnet.apiServer.port', api.port, 6443, 1, 65535),
      token: str('x-podnet.apiServer.token', api.token, 'podnet-lab-token'),
    },
    ipPools: pools.map((pool, i) => {
      const f = `x-podnet.ipPools[${i}]`;
      if (!isDict(pool)) invalid(f, pool, 'expected {name, cidr, blockSize}');
      const cidr = parseCidr(`${f}.cidr`, pool.cidr);
      return {
        name: str(`${f}.name`, pool.name, `pool-${i}`),
        cidr: `${cidr.address}/${cidr.prefixLength}`,
        blockSize: num(
          `${f}.blockSize`,
          pool.blockSize,
          cidr.family === 4 ? 26 : 122,
          cidr.prefixLength,
          cidr.family === 4 ? 32 : 128,
        ),
      };
    }),
    bgp: {
      nodeAsNumber: num('x-podnet.bgp.nodeAsNumber', bgp.nodeAsNumber, 64512, 1, 4294967295),
      nodeToNodeMesh: bgp.nodeToNodeMesh === undefined ? true : bgp.nodeToNodeMesh === true,
      keepaliveTime: num('x-podnet.bgp.keepaliveTime', bgp.keepaliveTime, 3, 1, 21845),
      holdTime: num('x-podnet.bgp.holdTime', bgp.holdTime, 9, 3, 65535),
      restartTime: num('x-podnet.bgp.restartTime', bgp.restartTime, 120, 1, 4095),
      bfd: bfdSettings(isDict(bgp.bfd) ? bgp.bfd : {}),
    },
    models: parseModels(p.models),
  };
}

/**
 * Parses compose.yaml text: YAML (with merge keys), then the Compose Specification schema, then
 * the lab's own rules (addresses inside their subnets, known roles, unique addresses).
 */
export function parseCompose(text: string): ComposeProject {
  let doc: unknown;
  try {
    doc = parseYaml(text, { merge: true });
  } catch (err) {
    throw new LabError(LabErrorCode.composeInvalid, `compose: not valid YAML: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const problems = validateComposeSpec(doc);
  if (problems.length > 0) {
    const list = problems.map((p) => `  ${p.path}: ${p.message}`).join('\n');
    throw new LabError(LabErrorCode.composeSpec, `compose: not valid Compose Specification:\n${list}`);
  }
  const root = doc as Dict;
  const networks = new Map<string, ComposeNetwork>();
  for (const [name, def] of Object.entries(isDict(root.networks) ? root.networks : {})) {
    const net: ComposeNetwork = { name };
    const ipam = isDict(def) && isDict(def.ipam) ? def.ipam : {};
    const configs = Array.isArray(ipam.config) ? ipam.config : [];
    for (const [i, c] of configs.entries()) {
      if (!isDict(c) || c.subnet === undefined) continue;
      const cidr = parseCidr(`networks.${name}.ipam.config[${i}].subnet`, c.subnet);
      if (cidr.family === 4) net.ipv4 = cidr;
      else net.ipv6 = cidr;
    }
    networks.set(name, net);
  }
  const services: ComposeService[] = [];
  const seen = new Map<string, string>();
  for (const [name, def] of Object.entries(isDict(root.services) ? root.services : {})) {
    const s = isDict(def) ? def : {};
    const x = isDict(s['x-podnet']) ? s['x-podnet'] : {};
    const f = `services.${name}`;
    // Docker's one-shot bootstrap (`podnet-lab bootstrap`): the namespace runner does it itself.
    if (x.role === 'init') continue;
    const role = x.role ?? (name === 'client' ? 'client' : undefined);
    if (!roles.includes(role as ServiceRole)) {
      invalid(`${f}.x-podnet.role`, role, `expected one of ${roles.join(', ')}`);
    }
    const gw = isDict(x.gateway) ? x.gateway : {};
    const svc: ComposeService = {
      name,
      role: role as ServiceRole,
      profiles: stringList(`${f}.profiles`, s.profiles),
      command: command(`${f}.command`, s.command),
      environment: keyValues(`${f}.environment`, s.environment),
      volumes: volumes(`${f}.volumes`, s.volumes),
      sysctls: keyValues(`${f}.sysctls`, s.sysctls),
      dependsOn: dependsOn(`${f}.depends_on`, s.depends_on),
      networks: attachments(`${f}.networks`, s.networks, networks),
      gateway: {},
    };
    if (gw.ipv4 !== undefined) svc.gateway.ipv4 = str(`${f}.x-podnet.gateway.ipv4`, gw.ipv4, '');
    if (gw.ipv6 !== undefined) svc.gateway.ipv6 = str(`${f}.x-podnet.gateway.ipv6`, gw.ipv6, '');
    if (x.asNumber !== undefined) svc.asNumber = num(`${f}.x-podnet.asNumber`, x.asNumber, 0, 1, 4294967295);
    if (x.routeReflectorClusterId !== undefined) {
      svc.routeReflectorClusterId = str(
        `${f}.x-podnet.routeReflectorClusterId`,
        x.routeReflectorClusterId,
        '',
      );
    }
    if (svc.role === 'tor') {
      const d = x.daemon ?? 'bird';
      if (d !== 'bird' && d !== 'frr') invalid(`${f}.x-podnet.daemon`, d, 'expected bird or frr');
      svc.daemon = d;
      if (svc.asNumber === undefined)
        invalid(`${f}.x-podnet.asNumber`, undefined, 'a tor needs an AS number');
    }
    for (const a of svc.networks) {
      for (const ip of [a.ipv4, a.ipv6]) {
        if (!ip) continue;
        const other = seen.get(ip);
        if (other) invalid(`${f}.networks.${a.network}`, ip, `address already used by ${other}`);
        seen.set(ip, name);
      }
    }
    for (const dep of svc.dependsOn) {
      if (!(isDict(root.services) && dep in root.services))
        invalid(`${f}.depends_on`, dep, 'no such service');
    }
    services.push(svc);
  }
  const project: ComposeProject = {
    networks: [...networks.values()],
    services,
    settings: settings(root['x-podnet']),
  };
  const api = project.settings.apiServer.service;
  if (!services.some((s) => s.name === api && s.role === 'apiserver')) {
    invalid('x-podnet.apiServer.service', api, 'no service with that name and role apiserver');
  }
  return project;
}

/** The services a run starts: those without profiles, plus those in an active profile. */
export function activeServices(project: ComposeProject, profiles: readonly string[] = []): ComposeService[] {
  return project.services.filter(
    (s) => s.profiles.length === 0 || s.profiles.some((p) => profiles.includes(p)),
  );
}
