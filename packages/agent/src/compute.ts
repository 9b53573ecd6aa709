// desired = compute(inputs): the agent's pure core (docs/architecture.md, "Inside the agent"). No I/O, no clocks, no randomness:
// the same inputs always give the same, sorted output, so reconcilers can diff it cheaply.
import { peerKey } from '@podnet/bgp';
import { compareStrings } from '@podnet/k8s';
import { resolveBfd } from './bfd-config.js';
import {
  addressOf,
  type Cidr,
  cidrContains,
  compareIp,
  hostCidr,
  isIPv4,
  parseCidr,
  splitAddrPort,
} from './ip.js';
import type {
  Advertisement,
  BgpConfigView,
  ComputeInputs,
  Desired,
  DesiredBfd,
  DesiredPeer,
  DesiredRoute,
  NodeView,
  PeerType,
  PrefixRule,
} from './model.js';
import { compileSelector } from './selector.js';
import { type ServiceProblem, serviceRoutes, union } from './service-routes.js';

export const DEFAULT_AS_NUMBER = 64512;
export const DEFAULT_BGP_PORT = 179;
export const DEFAULT_HOLD_TIME = 90;
export const DEFAULT_GR_RESTART_TIME = 120;
/** Receive limit of an external BGPPeer without maxPrefixes (agent option --bgp-max-prefixes). */
export const DEFAULT_EXTERNAL_MAX_PREFIXES = 10_000;
/** Ceiling of the receive limit derived from the pools (an IPv6 pool holds 2^n blocks). */
export const NODE_MAX_PREFIXES_CAP = 1_000_000;

/**
 * Receive limit of a node peer (mesh, route reflector, client): every block the pools can hold,
 * the same again (at least 1024) for borrowed /32s, plus the service ranges.
 */
export function nodeMaxPrefixes(pools: { cidr: Cidr; blockSize: number }[], serviceRanges: number): number {
  let blocks = 0;
  for (const p of pools) blocks += 2 ** Math.max(0, p.blockSize - p.cidr.prefixLen);
  return Math.min(NODE_MAX_PREFIXES_CAP, blocks + Math.max(1024, blocks) + serviceRanges);
}

/**
 * Import list of a node peer: only prefixes inside the pools and the advertised service ranges
 * (reject everything when there are none).
 */
export function nodeImportFilter(ranges: Cidr[]): PrefixRule[] {
  if (ranges.length === 0) return REJECT_ALL;
  return ranges.map((c) => ({
    action: 'accept' as const,
    cidr: c.text,
    ge: c.prefixLen,
    le: c.family === 4 ? 32 : 128,
  }));
}

function bfdOf(b: DesiredBfd | undefined): { bfd?: DesiredBfd } {
  return b ? { bfd: b } : {};
}

function configFor(configs: BgpConfigView[], nodeName: string) {
  return {
    node: configs.find((c) => c.name === `node.${nodeName}`),
    global: configs.find((c) => c.name === 'default'),
  };
}

/** AS number precedence: Node annotation > BGPConfiguration node.<name> > default > 64512. */
export function resolveAsNumber(
  node: NodeView | undefined,
  nodeName: string,
  configs: BgpConfigView[],
): number {
  if (node?.asNumber !== undefined) return node.asNumber;
  const { node: n, global: g } = configFor(configs, nodeName);
  return n?.asNumber ?? g?.asNumber ?? DEFAULT_AS_NUMBER;
}

function listenPortFor(nodeName: string, configs: BgpConfigView[], override?: number): number {
  if (override !== undefined) return override;
  const { node: n, global: g } = configFor(configs, nodeName);
  return n?.listenPort ?? g?.listenPort ?? DEFAULT_BGP_PORT;
}

/** Splits `a.b.c.d`, `a.b.c.d:port`, `[v6]:port` or a bare v6 address (@podnet/net's grammar). */
export function splitPeerIP(text: string): { address: string; port?: number } | undefined {
  return splitAddrPort(text);
}

/** Rejects every prefix of both families (a node peer's import list when nothing may be learned). */
export const REJECT_ALL: PrefixRule[] = [
  { action: 'reject', cidr: '0.0.0.0/0', ge: 0, le: 32 },
  { action: 'reject', cidr: '::/0', ge: 0, le: 128 },
];

const PRIORITY: Record<PeerType, number> = {
  node: 0,
  global: 1,
  'rr-client': 2,
  'route-reflector': 3,
  mesh: 4,
};

/** The Advertisement made from each service-routes advertisement, for the next hops and rules in `key`. */
const serviceAdvertisements = new WeakMap<object, { key: string; out: Advertisement }>();

export function compute(inputs: ComputeInputs): Desired {
  const problems: string[] = [];
  const me = inputs.nodeName;
  const selfNode = inputs.nodes.find((n) => n.name === me);
  const address = inputs.nodeAddress
    ? addressOf(inputs.nodeAddress)
    : selfNode?.ipv4
      ? addressOf(selfNode.ipv4)
      : undefined;
  const addressV6 = selfNode?.ipv6 ? addressOf(selfNode.ipv6) : undefined;
  const localAs = resolveAsNumber(selfNode, me, inputs.bgpConfigs);
  const { node: myCfg, global: globalCfg } = configFor(inputs.bgpConfigs, me);
  const cfg = (k: keyof BgpConfigView) => (myCfg?.[k] ?? globalCfg?.[k]) as never;
  const holdDefault: number = cfg('holdTime') ?? DEFAULT_HOLD_TIME;
  const keepaliveDefault: number = cfg('keepaliveTime') ?? Math.floor(holdDefault / 3);
  const grEnabled: boolean = cfg('gracefulRestart') ?? true;
  const restartTime: number = cfg('restartTime') ?? inputs.gracefulRestartTime ?? DEFAULT_GR_RESTART_TIME;
  const listenPort = listenPortFor(me, inputs.bgpConfigs, inputs.listenPortOverride);
  const myClusterId = selfNode?.rrClusterId;
  const meshBfd = resolveBfd(myCfg?.bfd, globalCfg?.bfd);

  const safeSelector = (src: string | undefined, what: string) => {
    try {
      return compileSelector(src);
    } catch (err) {
      problems.push(`${what}: ${(err as Error).message}`);
      return () => false;
    }
  };

  // ---- Blocks this node owns (confirmed affinity and a block that names us), and pools they are in.
  const confirmed = new Set(
    inputs.affinities
      .filter((a) => a.node === me && a.state === 'confirmed')
      .map((a) => parseCidr(a.cidr)?.text),
  );
  const ownedBlocks = inputs.blocks
    .filter((b) => b.affinity === me && confirmed.has(parseCidr(b.cidr)?.text))
    .map((b) => parseCidr(b.cidr)!)
    .filter(Boolean);
  const pools = inputs.pools
    .map((p) => ({ pool: p, cidr: parseCidr(p.cidr) }))
    .filter((p): p is { pool: typeof p.pool; cidr: NonNullable<typeof p.cidr> } => {
      if (!p.cidr)
        problems.push(`IPPool ${p.pool.name}: invalid cidr ${JSON.stringify(p.pool.cidr)}, skipped`);
      return p.cidr !== undefined;
    });
  const poolOf = (c: NonNullable<ReturnType<typeof parseCidr>>) =>
    pools.find((p) => cidrContains(p.cidr, c))?.pool;

  // ---- Local routes and ARP interfaces from the pods this node hosts.
  const routes: DesiredRoute[] = [];
  const arpInterfaces: Desired['arpInterfaces'] = [];
  const podIps: { ip: string; cidr: NonNullable<ReturnType<typeof parseCidr>> }[] = [];
  for (const pod of inputs.pods) {
    const ips: string[] = [];
    for (const ip of pod.ips) {
      const host = hostCidr(addressOf(ip));
      if (!host) {
        problems.push(`Pod ${pod.namespace}/${pod.name}: invalid IP ${JSON.stringify(ip)}, skipped`);
        continue;
      }
      ips.push(addressOf(ip));
      podIps.push({ ip: host, cidr: parseCidr(host)! });
      routes.push({
        type: 'local',
        dst: host,
        iface: pod.iface,
        source: 'pod',
        pod: `${pod.namespace}/${pod.name}`,
      });
    }
    if (ips.length) arpInterfaces.push({ iface: pod.iface, podIps: ips.sort(compareIp) });
  }
  for (const b of ownedBlocks) routes.push({ type: 'blackhole', dst: b.text, source: 'block' });

  // ---- Advertisements: confirmed blocks, borrowed /32s, service ranges.
  const advertisements: Advertisement[] = [];
  let serviceProblems: ServiceProblem[] = [];
  let serviceAddresses = 0;
  const communityRules = ((cfg('communities') ?? []) as { cidr: string; values: string[] }[]).flatMap((r) => {
    const c = parseCidr(r.cidr);
    return c ? [{ cidr: c, values: r.values }] : [];
  });
  if (address) {
    const adv = (
      prefix: string,
      source: Advertisement['source'],
      extra: Pick<Advertisement, 'communities' | 'largeCommunities' | 'localPref' | 'services'> = {
        communities: [],
        largeCommunities: [],
      },
    ) => {
      const p = parseCidr(prefix)!;
      // IPv6 prefixes go out with the node's IPv6 address as next hop (podnet.io/ipv6-address).
      const nextHop = p.family === 4 ? address : addressV6;
      if (!nextHop) {
        problems.push(`${prefix}: not announced, node ${me} has no podnet.io/ipv6-address annotation`);
        return;
      }
      const values = [
        ...new Set(communityRules.filter((r) => cidrContains(r.cidr, p)).flatMap((r) => r.values)),
      ];
      advertisements.push({
        prefix,
        nextHop,
        communities: union(
          values.filter((v) => v.split(':').length === 2),
          extra.communities,
        ),
        largeCommunities: union(
          values.filter((v) => v.split(':').length === 3),
          extra.largeCommunities,
        ),
        source,
        ...(extra.localPref !== undefined ? { localPref: extra.localPref } : {}),
        ...(extra.services ? { services: extra.services } : {}),
      });
    };
    for (const b of ownedBlocks) {
      if (poolOf(b)?.disableBGPExport) continue;
      adv(b.text, 'block');
    }
    for (const p of podIps) {
      if (ownedBlocks.some((b) => cidrContains(b, p.cidr))) continue;
      if (poolOf(p.cidr)?.disableBGPExport) continue;
      adv(p.ip, 'borrowed');
    }
    const services: [keyof BgpConfigView, Advertisement['source']][] = [
      ['serviceClusterIPs', 'service-cluster-ip'],
      ['serviceExternalIPs', 'service-external-ip'],
      ['serviceLoadBalancerIPs', 'service-loadbalancer-ip'],
    ];
    // Aggregate (default): every node announces the ranges. PerService: each Service address
    // instead (service-routes.ts); externalTrafficPolicy Local addresses go out in both modes.
    const mode = globalCfg?.serviceAdvertisement ?? 'Aggregate';
    for (const [key, source] of services) {
      for (const c of (globalCfg?.[key] as string[] | undefined) ?? []) {
        const parsed = parseCidr(c);
        if (!parsed)
          problems.push(`BGPConfiguration default: ${key} entry ${JSON.stringify(c)} is not a CIDR, skipped`);
        else if (mode === 'Aggregate') adv(parsed.text, source);
      }
    }
    if (inputs.services) {
      const sr = serviceRoutes({
        nodeName: me,
        ...inputs.services,
        ranges: {
          clusterIPs: globalCfg?.serviceClusterIPs ?? [],
          externalIPs: globalCfg?.serviceExternalIPs ?? [],
          loadBalancerIPs: globalCfg?.serviceLoadBalancerIPs ?? [],
        },
        mode,
      });
      serviceProblems = sr.problems;
      const taken = new Set(advertisements.map((a) => a.prefix));
      // service-routes hands out the same object for a Service that did not change: so does this,
      // for the same next hops and community rules, which spares the parse here and the deep
      // comparison in the agent's diff (reconcile.ts) for each of many Services on every pass.
      const key = `${address}|${addressV6 ?? ''}|${JSON.stringify(cfg('communities') ?? [])}`;
      for (const a of sr.advertisements) {
        if (taken.has(a.prefix)) continue;
        const done = serviceAdvertisements.get(a);
        if (done?.key === key) {
          advertisements.push(done.out);
          continue;
        }
        const n = advertisements.length;
        adv(a.prefix, a.source, a);
        const out = advertisements[n];
        if (out) serviceAdvertisements.set(a, { key, out });
      }
      serviceAddresses = inputs.services.services.reduce(
        (n, s) => n + s.clusterIPs.length + s.externalIPs.length + s.loadBalancerIPs.length,
        0,
      );
    }
  }
  const advertised = new Set(advertisements.map((a) => a.prefix));
  // Import from other nodes: inside the pools and the service ranges (any mode: their per-Service
  // addresses are inside them).
  const serviceRanges = (
    ['serviceClusterIPs', 'serviceExternalIPs', 'serviceLoadBalancerIPs'] as const
  ).flatMap((k) => (globalCfg?.[k] ?? []).flatMap((c) => parseCidr(c) ?? []));
  // Other nodes may each send every Service address: room for them, rounded up to a power of two
  // so that a Service more or less does not change every node peer's limit.
  const serviceRoom = serviceAddresses ? 2 ** Math.ceil(Math.log2(serviceAddresses)) : 0;
  const nodeMax = nodeMaxPrefixes(
    pools.map((p) => ({ cidr: p.cidr, blockSize: p.pool.blockSize })),
    serviceRanges.length + serviceRoom,
  );
  const nodeImport = nodeImportFilter([...pools.map((p) => p.cidr), ...serviceRanges]);

  // ---- Remote routes: Loc-RIB best paths inside an IP pool, not our own, via other next hops.
  for (const entry of inputs.rib) {
    const c = parseCidr(entry.prefix);
    if (!c || advertised.has(c.text)) continue;
    if (!poolOf(c)) continue;
    const via = [...new Set(entry.nextHops.map(addressOf))]
      .filter((h) => h !== address && h !== addressV6)
      .sort(compareIp);
    if (via.length === 0) continue;
    routes.push({ type: 'remote', dst: c.text, via, source: 'bgp' });
  }

  // ---- Peers.
  const peers = new Map<string, DesiredPeer>();
  const otherNodes = inputs.nodes.filter((n) => n.name !== me && n.ipv4 && isIPv4(addressOf(n.ipv4)));
  const addPeer = (p: DesiredPeer) => {
    if (p.address === address) return;
    const existing = peers.get(p.key);
    if (!existing || PRIORITY[p.type] < PRIORITY[existing.type]) peers.set(p.key, p);
  };
  const nodePeer = (
    n: NodeView,
    type: PeerType,
    source: string,
    overrides: Partial<DesiredPeer> = {},
  ): DesiredPeer => {
    const a = addressOf(n.ipv4!);
    const port = listenPortFor(n.name, inputs.bgpConfigs);
    return {
      key: peerKey(a, port),
      source,
      nodeName: n.name,
      type,
      address: a,
      port,
      remoteAs: resolveAsNumber(n, n.name, inputs.bgpConfigs),
      localAs,
      passive: compareIp(address ?? '', a) < 0,
      localAddress: address,
      holdTime: holdDefault,
      keepaliveTime: keepaliveDefault,
      gracefulRestart: { enabled: grEnabled, restartTime },
      routeReflectorClient: false,
      importFilter: nodeImport,
      exportFilter: [],
      maxPrefixes: nodeMax,
      ...(meshBfd ? { bfd: meshBfd } : {}),
      ...overrides,
    };
  };
  if (address) {
    const mesh: boolean = globalCfg?.nodeToNodeMesh ?? true;
    const reflectors = otherNodes.filter((n) => n.rrClusterId);
    const clients = otherNodes.filter((n) => !n.rrClusterId);
    if (myClusterId) {
      for (const n of clients)
        addPeer(nodePeer(n, 'rr-client', 'route-reflector', { routeReflectorClient: true }));
      for (const n of reflectors) addPeer(nodePeer(n, 'mesh', 'route-reflector'));
    } else {
      for (const n of reflectors) addPeer(nodePeer(n, 'route-reflector', 'route-reflector'));
      if (mesh) for (const n of clients) addPeer(nodePeer(n, 'mesh', 'node-to-node-mesh'));
    }

    const myLabels = selfNode?.labels ?? {};
    for (const peer of [...inputs.peers].sort((a, b) => compareStrings(a.name, b.name))) {
      const what = `BGPPeer ${peer.name}`;
      let applies: boolean;
      if (peer.node) applies = peer.node === me;
      else if (peer.nodeSelector) applies = safeSelector(peer.nodeSelector, `${what} nodeSelector`)(myLabels);
      else applies = true;
      if (!applies) continue;
      const type: PeerType = peer.node || peer.nodeSelector ? 'node' : 'global';
      let password: string | undefined;
      if (peer.password) {
        password = inputs.secrets[`${peer.password.secretName}/${peer.password.key}`];
        if (password === undefined) {
          problems.push(
            `${what}: password secret ${peer.password.secretName} key ${peer.password.key} not found; session not configured`,
          );
          continue;
        }
      }
      // The source address is of the peer's family: an IPv6 session binds the node's IPv6 address
      // (podnet.io/ipv6-address), never its IPv4 one; without one the kernel picks.
      const sourceFor = (peerAddress: string) =>
        peer.sourceAddress === 'None'
          ? undefined
          : peer.sourceAddress && peer.sourceAddress !== 'UseNodeIP'
            ? peer.sourceAddress
            : isIPv4(peerAddress)
              ? address
              : addressV6;
      const common = {
        source: peer.name,
        localAs,
        holdTime: peer.holdTime ?? holdDefault,
        keepaliveTime:
          peer.keepaliveTime ??
          (peer.holdTime !== undefined ? Math.floor(peer.holdTime / 3) : keepaliveDefault),
        // We announce our own restart time; maxRestartTime caps the one the peer announces.
        gracefulRestart: { enabled: grEnabled, restartTime },
        ...(peer.maxRestartTime !== undefined ? { maxRestartTime: peer.maxRestartTime } : {}),
        ...(peer.gracefulRestartNotification ? { gracefulRestartNotification: true } : {}),
        ...(peer.longLivedGracefulRestart ? { longLivedGracefulRestart: peer.longLivedGracefulRestart } : {}),
        routeReflectorClient: peer.routeReflectorClient ?? false,
        importFilter: peer.importFilter ?? [],
        exportFilter: peer.exportFilter ?? [],
        ...(password !== undefined ? { password } : {}),
        ...bfdOf(resolveBfd(peer.bfd, myCfg?.bfd, globalCfg?.bfd)),
      };
      if (peer.peerSelector) {
        const sel = safeSelector(peer.peerSelector, `${what} peerSelector`);
        for (const n of otherNodes) {
          if (!sel(n.labels)) continue;
          const localAddress = sourceFor(addressOf(n.ipv4!));
          const np = nodePeer(n, type, peer.name, {
            ...common,
            type,
            localAddress,
            maxPrefixes: peer.maxPrefixes ?? nodeMax,
          });
          // The BGPPeer's BFD (resolved above) replaces the mesh's, off included.
          if (!('bfd' in common)) delete np.bfd;
          addPeer(np);
        }
        continue;
      }
      const split = peer.peerIP ? splitPeerIP(peer.peerIP) : undefined;
      if (!split) {
        problems.push(`${what}: peerIP ${JSON.stringify(peer.peerIP ?? '')} is not an address; skipped`);
        continue;
      }
      if (peer.asNumber === undefined) {
        problems.push(`${what}: asNumber is missing; skipped`);
        continue;
      }
      const port = split.port ?? DEFAULT_BGP_PORT;
      const localAddress = sourceFor(split.address);
      // An external peer (not a node, not our route-reflector client) gets only what this node
      // originates: its blocks, borrowed /32s and service routes, never routes learned from others.
      // The speaker applies that rule itself, so the peer's policy does not change with each
      // prefix the node originates.
      addPeer({
        ...common,
        ...(localAddress ? { localAddress } : {}),
        ...(peer.routeReflectorClient ? {} : { exportOriginatedOnly: true }),
        maxPrefixes: peer.maxPrefixes ?? inputs.externalMaxPrefixes ?? DEFAULT_EXTERNAL_MAX_PREFIXES,
        key: peerKey(split.address, port),
        type,
        address: split.address,
        port,
        remoteAs: peer.asNumber,
        passive: false,
      });
    }
  }

  const sortedRoutes = routes.sort((a, b) => compareIp(a.dst, b.dst) || compareStrings(a.type, b.type));
  // Families in use: those of the pools (a disabled pool's pods keep their addresses).
  const families = [...new Set(pools.map((p) => p.cidr.family))].sort();
  return {
    node: {
      name: me,
      ...(address ? { address, routerId: address } : {}),
      asNumber: localAs,
      listenPort,
      ...(myClusterId ? { clusterId: myClusterId } : {}),
    },
    routes: sortedRoutes,
    families,
    arpInterfaces: arpInterfaces.sort((a, b) => compareStrings(a.iface, b.iface)),
    peers: [...peers.values()].sort((a, b) => compareIp(a.address, b.address) || a.port - b.port),
    advertisements: advertisements.sort((a, b) => compareIp(a.prefix, b.prefix)),
    problems,
    ...(inputs.services ? { serviceProblems } : {}),
  };
}
