// The pure "compute desired" layer: the agent's view of pods, blocks and BGP best paths in, the
// set of routes podnet wants in the kernel out. No I/O; unit-tested without a kernel.
import {
  canonicalAddr,
  type Family,
  type Prefix,
  parseAddr,
  parsePrefix,
  prefixContains,
  tryParsePrefix,
} from './ip.js';
import { type DesiredNextHop, type DesiredRoute, defaultMetric, RT_TABLE_MAIN, slotKey } from './model.js';
import type { DesiredNeighbour } from './neigh.js';

export interface LocalPodInput {
  /** The host side of the pod's veth (pn + 11 hex characters). */
  ifname: string;
  /** The pod's addresses, bare (`10.65.0.7`) or as host prefixes (`10.65.0.7/32`). */
  ips: string[];
  /** The pod's own MAC (its eth0): when given, a permanent neighbour entry is kept for each IP. */
  mac?: string;
}

export interface RemoteRouteInput {
  /** A remote block, or a /32 (/128) another node borrowed, as learned from BGP. */
  prefix: string;
  /** The best paths' next hops (several for ECMP). */
  nextHops: string[];
}

export interface RouteInputs {
  /** Routing table for every route (default main, 254). */
  table?: number;
  /** Metric for IPv4 routes (default 0) and IPv6 routes (default 1024, the kernel's own default). */
  metric?: { v4?: number; v6?: number };
  localPods?: LocalPodInput[];
  /** Blocks affine to this node: each gets a blackhole route. */
  ownedBlocks?: string[];
  /** Remote blocks and borrowed /32s learned from BGP. */
  remote?: RemoteRouteInput[];
}

/** An input the layer could not use, named by field path and value. */
export interface RejectedInput {
  field: string;
  value: string;
  message: string;
}

/** A route that lost to a stronger one on the same destination (local > blackhole > via). */
export interface ShadowedRoute {
  route: DesiredRoute;
  by: DesiredRoute;
}

export interface DesiredSet {
  routes: DesiredRoute[];
  /** Permanent neighbour entries for local pods that came with a MAC. */
  neighbours: DesiredNeighbour[];
  rejected: RejectedInput[];
  shadowed: ShadowedRoute[];
}

/** Linux interface names: 1-15 bytes, no '/', ':' or whitespace (dev_valid_name). */
export function validIfname(name: string): boolean {
  return name.length > 0 && name.length < 16 && name !== '.' && name !== '..' && !/[/:\s]/.test(name);
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

const strength: Record<DesiredRoute['type'], number> = { local: 3, blackhole: 2, via: 1 };

/**
 * Computes the routes podnet wants. Bad entries are skipped and listed in `rejected` (one bad pod
 * never blocks the others); when two inputs give the same destination the stronger wins (a local
 * pod over an owned block over a BGP route) and the loser is listed in `shadowed`.
 */
export function computeDesired(inputs: RouteInputs): DesiredSet {
  const table = inputs.table ?? RT_TABLE_MAIN;
  const metricOf = (f: Family) => (f === 4 ? inputs.metric?.v4 : inputs.metric?.v6) ?? defaultMetric(f);
  const rejected: RejectedInput[] = [];
  const shadowed: ShadowedRoute[] = [];
  const neighbours: DesiredNeighbour[] = [];
  const bySlot = new Map<string, DesiredRoute>();
  const reject = (field: string, value: string, message: string) => rejected.push({ field, value, message });

  const put = (r: DesiredRoute) => {
    const key = slotKey(r);
    const cur = bySlot.get(key);
    if (!cur) {
      bySlot.set(key, r);
      return;
    }
    if (strength[r.type] > strength[cur.type]) {
      bySlot.set(key, r);
      shadowed.push({ route: cur, by: r });
    } else {
      shadowed.push({ route: r, by: cur });
    }
  };

  (inputs.localPods ?? []).forEach((pod, i) => {
    if (!validIfname(pod.ifname)) {
      reject(`localPods[${i}].ifname`, pod.ifname, 'not a valid interface name');
      return;
    }
    let mac: string | undefined;
    if (pod.mac !== undefined) {
      if (typeof pod.mac === 'string' && MAC_RE.test(pod.mac)) mac = pod.mac.toLowerCase();
      else reject(`localPods[${i}].mac`, String(pod.mac), 'not a MAC address (xx:xx:xx:xx:xx:xx)');
    }
    pod.ips.forEach((ip, j) => {
      const field = `localPods[${i}].ips[${j}]`;
      const p = hostPrefix(ip);
      if (typeof p === 'string') {
        reject(field, ip, p);
        return;
      }
      put({
        type: 'local',
        dst: p.text,
        family: p.family,
        table,
        metric: metricOf(p.family),
        ifname: pod.ifname,
      });
      if (mac)
        neighbours.push({
          ifname: pod.ifname,
          ip: p.text.slice(0, p.text.indexOf('/')),
          family: p.family,
          mac,
        });
    });
  });

  (inputs.ownedBlocks ?? []).forEach((cidr, i) => {
    const p = prefixOf(cidr);
    if (!p) {
      reject(`ownedBlocks[${i}]`, cidr, 'not an IPv4 or IPv6 prefix');
      return;
    }
    put({ type: 'blackhole', dst: p.text, family: p.family, table, metric: metricOf(p.family) });
  });

  // Next hops repeat across thousands of routes: parse each text once per call.
  const addrCache = new Map<string, ReturnType<typeof parseAddr>>();
  const addrOf = (s: string) => {
    if (!addrCache.has(s)) addrCache.set(s, typeof s === 'string' ? parseAddr(s) : undefined);
    return addrCache.get(s);
  };
  (inputs.remote ?? []).forEach((r, i) => {
    const p = prefixOf(r.prefix);
    if (!p) {
      reject(`remote[${i}].prefix`, r.prefix, 'not an IPv4 or IPv6 prefix');
      return;
    }
    const hops = new Set<string>();
    r.nextHops.forEach((nh, j) => {
      const a = addrOf(nh);
      if (!a) reject(`remote[${i}].nextHops[${j}]`, nh, 'not an IPv4 or IPv6 address');
      else if (a.family !== p.family)
        reject(`remote[${i}].nextHops[${j}]`, nh, `not an IPv${p.family} address`);
      else hops.add(a.text);
    });
    if (hops.size === 0) {
      if (r.nextHops.length === 0) reject(`remote[${i}].nextHops`, '[]', 'no next hop');
      return;
    }
    const nexthops: DesiredNextHop[] = [...hops].sort().map((gateway) => ({ gateway }));
    put({ type: 'via', dst: p.text, family: p.family, table, metric: metricOf(p.family), nexthops });
  });

  const routes = [...bySlot.values()].sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0));
  return { routes, neighbours, rejected, shadowed };
}

function prefixOf(s: string): Prefix | undefined {
  return typeof s === 'string' ? tryParsePrefix(s) : undefined;
}

function hostPrefix(ip: string): Prefix | string {
  const p = prefixOf(ip);
  if (!p) return 'not an IPv4 or IPv6 address';
  const full = p.family === 4 ? 32 : 128;
  if (p.len !== full) return `a pod address must be a host prefix (/${full})`;
  return p;
}

/** True when `addr` lies inside one of `blocks` (for callers checking borrowed addresses). */
export function inAnyBlock(addr: string, blocks: string[]): boolean {
  const a = parsePrefix(canonicalAddr(addr));
  return blocks.some((b) => {
    const p = prefixOf(b);
    return p !== undefined && prefixContains(p, a);
  });
}
