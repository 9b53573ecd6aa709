// The pure translation of a compose project into what the namespace runner creates: namespaces,
// bridges, veths with the compose addresses, routes and sysctls. No I/O.
import { activeServices, type ComposeProject, type ComposeService, type ServiceRole } from './compose.js';
import { LabError, LabErrorCode } from './errors.js';

export interface PlanOptions {
  /** Prefix of every namespace the lab creates, e.g. `pnl-`. */
  prefix: string;
  profiles?: readonly string[];
  /** Start only these services (and what they depend on), like `docker compose up a b`. */
  only?: readonly string[];
}

export interface PlannedLink {
  network: string;
  /** Interface inside the service's namespace: eth0, eth1… in compose order. */
  ifname: string;
  /** The veth's other end, inside the bridge namespace, enslaved to `bridge`. */
  peer: string;
  bridge: string;
  ipv4?: string;
  ipv6?: string;
}

export interface PlannedService {
  name: string;
  role: ServiceRole;
  ns: string;
  links: PlannedLink[];
  /** `ip route` argument lists, run inside the service's namespace. */
  routes: string[][];
  sysctls: Record<string, string>;
  compose: ComposeService;
}

export interface LabPlan {
  prefix: string;
  bridgeNs: string;
  bridges: { network: string; bridge: string }[];
  /** In start order: dependencies first. */
  services: PlannedService[];
  project: ComposeProject;
}

const reservedNames = new Set(['net']);

function withDeps(
  project: ComposeProject,
  active: ComposeService[],
  only: readonly string[],
): ComposeService[] {
  const byName = new Map(active.map((s) => [s.name, s]));
  const wanted = new Set<string>();
  const visit = (name: string, from: string) => {
    const s = byName.get(name);
    if (!s) {
      const exists = project.services.some((x) => x.name === name);
      throw new LabError(
        LabErrorCode.usage,
        exists
          ? `service ${name} (needed by ${from}) is in an inactive profile`
          : `no service named ${name} in compose.yaml`,
      );
    }
    if (wanted.has(name)) return;
    wanted.add(name);
    for (const d of s.dependsOn) visit(d, name);
  };
  for (const n of only) visit(n, 'the command line');
  return active.filter((s) => wanted.has(s.name));
}

/** Orders services so that each comes after its depends_on (stable otherwise). */
function startOrder(services: ComposeService[]): ComposeService[] {
  const byName = new Map(services.map((s) => [s.name, s]));
  const out: ComposeService[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (s: ComposeService, path: string[]) => {
    const st = state.get(s.name);
    if (st === 'done') return;
    if (st === 'visiting') {
      throw new LabError(
        LabErrorCode.composeInvalid,
        `compose: depends_on cycle: ${[...path, s.name].join(' → ')}`,
      );
    }
    state.set(s.name, 'visiting');
    for (const d of s.dependsOn) {
      const dep = byName.get(d);
      if (dep) visit(dep, [...path, s.name]);
    }
    state.set(s.name, 'done');
    out.push(s);
  };
  for (const s of services) visit(s, []);
  return out;
}

/** Interface names are at most 15 bytes (IFNAMSIZ - 1). */
export function ifname(base: string, suffix: string): string {
  return `${base.slice(0, 15 - suffix.length)}${suffix}`;
}

export function planLab(project: ComposeProject, opts: PlanOptions): LabPlan {
  if (!/^[a-z0-9-]{1,20}$/.test(opts.prefix)) {
    throw new LabError(
      LabErrorCode.usage,
      `prefix ${JSON.stringify(opts.prefix)}: expected 1-20 of [a-z0-9-]`,
    );
  }
  let services = activeServices(project, opts.profiles ?? []);
  if (opts.only && opts.only.length > 0) services = withDeps(project, services, opts.only);
  services = startOrder(services);
  const bridges = project.networks
    .filter((n) => services.some((s) => s.networks.some((a) => a.network === n.name)))
    .map((n) => ({ network: n.name, bridge: ifname(`br-${n.name}`, '') }));
  const peers = new Set<string>();
  const planned = services.map((s): PlannedService => {
    if (reservedNames.has(s.name) || s.name.startsWith('pod-')) {
      throw new LabError(
        LabErrorCode.composeInvalid,
        `compose: service name ${s.name} is reserved by the lab`,
      );
    }
    const links = s.networks.map((a, j): PlannedLink => {
      const net = project.networks.find((n) => n.name === a.network);
      let peer = ifname(s.name, `-${j}`);
      for (let k = 0; peers.has(peer); k++) peer = ifname(`${s.name}${k}`, `-${j}`);
      peers.add(peer);
      const link: PlannedLink = {
        network: a.network,
        ifname: `eth${j}`,
        peer,
        bridge: ifname(`br-${a.network}`, ''),
      };
      if (a.ipv4 && net?.ipv4) link.ipv4 = `${a.ipv4}/${net.ipv4.prefixLength}`;
      if (a.ipv6 && net?.ipv6) link.ipv6 = `${a.ipv6}/${net.ipv6.prefixLength}`;
      return link;
    });
    const routes: string[][] = [];
    if (s.gateway.ipv4) routes.push(['route', 'replace', 'default', 'via', s.gateway.ipv4]);
    if (s.gateway.ipv6) routes.push(['-6', 'route', 'replace', 'default', 'via', s.gateway.ipv6]);
    return {
      name: s.name,
      role: s.role,
      ns: `${opts.prefix}${s.name}`,
      links,
      routes,
      sysctls: s.sysctls,
      compose: s,
    };
  });
  return { prefix: opts.prefix, bridgeNs: `${opts.prefix}net`, bridges, services: planned, project };
}

/** The first address of a service on a network (IPv4 unless asked otherwise), without the length. */
export function serviceAddress(s: PlannedService, family: 4 | 6 = 4, network?: string): string | undefined {
  for (const l of s.links) {
    if (network && l.network !== network) continue;
    const cidr = family === 4 ? l.ipv4 : l.ipv6;
    if (cidr) return cidr.split('/')[0];
  }
  return undefined;
}
