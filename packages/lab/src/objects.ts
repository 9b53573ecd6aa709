// The lab's podnet API objects for a compose project and a network model: the IPPools, the default
// BGPConfiguration and one BGPPeer per ToR and address family. Pure; the namespace lab
// (runner.ts) and the real-cluster mode (cluster/real.ts) both write exactly these.
import type { LabSettings } from './compose.js';
import { modelPoolFields, type NetworkModel, torExportFilters } from './models.js';
import { type PlannedService, serviceAddress } from './plan.js';

/** A type, not an interface, so that it fits the appliers' `Record<string, unknown>` parameters. */
export type LabObject = {
  apiVersion: 'podnet.io/v1alpha1';
  kind: 'IPPool' | 'BGPConfiguration' | 'BGPPeer';
  metadata: { name: string };
  spec: Record<string, unknown>;
};

export interface LabObjects {
  ipPools: LabObject[];
  bgpConfiguration: LabObject;
  /** `<tor>-v4` / `<tor>-v6`, for each family the ToR has an address in on its first link. */
  bgpPeers: LabObject[];
}

export function labObjects(
  settings: Pick<LabSettings, 'bgp' | 'ipPools'>,
  model: NetworkModel,
  tors: readonly PlannedService[],
): LabObjects {
  const { bgp, ipPools } = settings;
  const apiVersion = 'podnet.io/v1alpha1' as const;
  const bgpPeers: LabObject[] = [];
  for (const tor of tors) {
    for (const family of [4, 6] as const) {
      const ip = serviceAddress(tor, family, tor.links[0]?.network);
      if (!ip) continue;
      const exportFilters = torExportFilters(model, ipPools, family);
      bgpPeers.push({
        apiVersion,
        kind: 'BGPPeer',
        metadata: { name: `${tor.name}-v${family}` },
        spec: {
          peerIP: ip,
          asNumber: tor.compose.asNumber,
          keepaliveTime: bgp.keepaliveTime,
          holdTime: bgp.holdTime,
          ...(exportFilters.length > 0 ? { exportFilters } : {}),
        },
      });
    }
  }
  return {
    ipPools: ipPools.map((p) => ({
      apiVersion,
      kind: 'IPPool',
      metadata: { name: p.name },
      spec: { cidr: p.cidr, blockSize: p.blockSize, ...modelPoolFields(model) },
    })),
    bgpConfiguration: {
      apiVersion,
      kind: 'BGPConfiguration',
      metadata: { name: 'default' },
      spec: {
        asNumber: bgp.nodeAsNumber,
        nodeToNodeMesh: bgp.nodeToNodeMesh,
        keepaliveTime: bgp.keepaliveTime,
        holdTime: bgp.holdTime,
        gracefulRestart: { enabled: true, restartTime: bgp.restartTime },
        // Mesh-wide BFD, and the default of the ToR BGPPeers.
        ...(bgp.bfd.enabled
          ? {
              bfd: {
                enabled: true,
                minTx: bgp.bfd.minTx,
                minRx: bgp.bfd.minRx,
                multiplier: bgp.bfd.multiplier,
              },
            }
          : {}),
      },
    },
    bgpPeers,
  };
}
