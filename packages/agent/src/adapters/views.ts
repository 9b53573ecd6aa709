// Pure conversions from the API's objects (@podnet/k8s types, core/v1 Nodes and Pods) to the
// agent's views. An object whose podnet annotations are invalid is reported and skipped.
import { createHash } from 'node:crypto';
import type { BGPConfiguration, BGPPeer, BlockAffinity, IPAMBlock, IPPool } from '@podnet/k8s';
import { parseNodeAnnotations } from '@podnet/k8s';
import { formatIp, parseCidr } from '../ip.js';
import type {
  AffinityView,
  BgpConfigView,
  BlockView,
  NodeView,
  PeerView,
  PodView,
  PoolView,
} from '../model.js';

export const POD_IPS_ANNOTATION = 'podnet.io/podIPs';
export const POD_IP_ANNOTATION = 'podnet.io/podIP';

interface CoreMeta {
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
}
export interface CoreNode extends CoreMeta {
  status?: { addresses?: { type?: string; address?: string }[] };
}
export interface CorePod extends CoreMeta {
  spec?: { nodeName?: string; hostNetwork?: boolean };
  status?: { phase?: string; podIPs?: { ip?: string }[]; podIP?: string };
}

/** `pn` + 11 hex characters of sha1("namespace.pod"): the host side of the pod's veth (docs/architecture.md, "One pod, end to end"). */
export function podInterfaceName(namespace: string, name: string): string {
  return `pn${createHash('sha1').update(`${namespace}.${name}`).digest('hex').slice(0, 11)}`;
}

export function nodeView(n: CoreNode, problems: string[]): NodeView | undefined {
  const name = n.metadata?.name;
  if (!name) return undefined;
  let info: ReturnType<typeof parseNodeAnnotations>;
  try {
    info = parseNodeAnnotations(n.metadata?.annotations);
  } catch (err) {
    problems.push(`Node ${name}: ${(err as Error).message}; its podnet annotations are ignored`);
    info = {};
  }
  const internal = (n.status?.addresses ?? [])
    .filter((a) => a.type === 'InternalIP' && a.address)
    .map((a) => a.address!);
  return {
    name,
    labels: n.metadata?.labels ?? {},
    ...(info.ipv4 ? { ipv4: `${info.ipv4.address}/${info.ipv4.prefixLength}` } : {}),
    ...(info.ipv6 ? { ipv6: `${info.ipv6.address}/${info.ipv6.prefixLength}` } : {}),
    ...(info.asNumber !== undefined ? { asNumber: info.asNumber } : {}),
    ...(info.routeReflectorClusterID ? { rrClusterId: info.routeReflectorClusterID } : {}),
    ...(internal.length ? { internalIPs: internal } : {}),
  };
}

/** A pod on this node with its addresses (from the CNI's annotation, else status.podIPs). */
export function podView(p: CorePod): PodView | undefined {
  const ns = p.metadata?.namespace;
  const name = p.metadata?.name;
  if (!ns || !name || p.spec?.hostNetwork) return undefined;
  if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') return undefined;
  const ann = p.metadata?.annotations?.[POD_IPS_ANNOTATION] ?? p.metadata?.annotations?.[POD_IP_ANNOTATION];
  const ips = ann
    ? ann
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : (p.status?.podIPs?.map((x) => x.ip ?? '').filter(Boolean) ?? (p.status?.podIP ? [p.status.podIP] : []));
  if (ips.length === 0) return undefined;
  return { namespace: ns, name, ips, iface: podInterfaceName(ns, name) };
}

export function poolView(p: IPPool): PoolView {
  return {
    name: p.metadata.name,
    cidr: p.spec.cidr,
    blockSize: p.spec.blockSize,
    disabled: p.spec.disabled,
    disableBGPExport: p.spec.disableBGPExport,
    nodeSelector: p.spec.nodeSelector,
    natOutgoing: p.spec.natOutgoing,
    isolated: p.spec.isolated,
  };
}

export function bgpConfigView(c: BGPConfiguration): BgpConfigView {
  const s = c.spec;
  return {
    name: c.metadata.name,
    asNumber: s.asNumber,
    nodeToNodeMesh: s.nodeToNodeMesh,
    listenPort: s.listenPort,
    keepaliveTime: s.keepaliveTime,
    holdTime: s.holdTime,
    gracefulRestart: s.gracefulRestart.enabled,
    restartTime: s.gracefulRestart.restartTime,
    communities: s.communities,
    serviceClusterIPs: s.serviceClusterIPs.map((e) => e.cidr),
    serviceExternalIPs: s.serviceExternalIPs.map((e) => e.cidr),
    serviceLoadBalancerIPs: s.serviceLoadBalancerIPs.map((e) => e.cidr),
    ...(s.serviceAdvertisement ? { serviceAdvertisement: s.serviceAdvertisement } : {}),
    natOutgoingExclusions: s.natOutgoingExclusions.map((e) => e.cidr),
    ...(s.bfd ? { bfd: s.bfd } : {}),
  };
}

export function peerView(p: BGPPeer): PeerView {
  const s = p.spec;
  const rules = (fs: typeof s.importFilters) =>
    fs.map((f) => ({
      cidr: f.cidr,
      action: f.action === 'Accept' ? ('accept' as const) : ('reject' as const),
      ...(f.ge !== undefined ? { ge: f.ge } : {}),
      ...(f.le !== undefined ? { le: f.le } : {}),
    }));
  return {
    name: p.metadata.name,
    ...(s.peerIP !== undefined ? { peerIP: s.peerIP } : {}),
    ...(s.asNumber !== undefined ? { asNumber: s.asNumber } : {}),
    ...(s.node !== undefined ? { node: s.node } : {}),
    ...(s.nodeSelector !== undefined ? { nodeSelector: s.nodeSelector } : {}),
    ...(s.peerSelector !== undefined ? { peerSelector: s.peerSelector } : {}),
    ...(s.password
      ? { password: { secretName: s.password.secretKeyRef.name, key: s.password.secretKeyRef.key } }
      : {}),
    ...(s.keepaliveTime !== undefined ? { keepaliveTime: s.keepaliveTime } : {}),
    ...(s.holdTime !== undefined ? { holdTime: s.holdTime } : {}),
    ...(s.maxRestartTime !== undefined ? { maxRestartTime: s.maxRestartTime } : {}),
    ...(s.gracefulRestartNotification !== undefined
      ? { gracefulRestartNotification: s.gracefulRestartNotification }
      : {}),
    ...(s.longLivedGracefulRestart ? { longLivedGracefulRestart: s.longLivedGracefulRestart } : {}),
    sourceAddress: s.sourceAddress,
    routeReflectorClient: s.routeReflectorClient,
    importFilter: rules(s.importFilters),
    exportFilter: rules(s.exportFilters),
    ...(s.maxPrefixes !== undefined ? { maxPrefixes: s.maxPrefixes } : {}),
    ...(s.bfd ? { bfd: s.bfd } : {}),
  };
}

/** A block with its affine node (`host:<node>` → `<node>`) and the addresses allocated in it. */
export function blockView(b: IPAMBlock): BlockView {
  const c = parseCidr(b.spec.cidr);
  const allocations: NonNullable<BlockView['allocations']> = [];
  if (c) {
    b.spec.allocations.forEach((a, ordinal) => {
      if (a === null || a === undefined) return;
      const handle = b.spec.attributes[a]?.handleID;
      allocations.push({ ip: formatIp(c.family, c.net + BigInt(ordinal)), ...(handle ? { handle } : {}) });
    });
  }
  const aff = b.spec.affinity;
  return {
    cidr: b.spec.cidr,
    ...(aff?.startsWith('host:') ? { affinity: aff.slice(5) } : {}),
    allocations,
  };
}

export function affinityView(a: BlockAffinity): AffinityView | undefined {
  return { node: a.spec.node, cidr: a.spec.cidr, state: a.spec.state };
}
