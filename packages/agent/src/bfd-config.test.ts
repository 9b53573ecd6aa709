import { describe, expect, it } from 'vitest';
import { DEFAULT_BFD, resolveBfd } from './bfd-config.js';
import { compute } from './compute.js';
import type { ComputeInputs } from './model.js';

const inputs = (over: Partial<ComputeInputs>): ComputeInputs => ({
  nodeName: 'node-a',
  nodes: [
    { name: 'node-a', labels: {}, ipv4: '10.0.0.11/24' },
    { name: 'node-b', labels: { rack: 'r1' }, ipv4: '10.0.0.12/24' },
  ],
  pools: [{ name: 'p', cidr: '10.244.0.0/16', blockSize: 26, disabled: false, disableBGPExport: false }],
  bgpConfigs: [],
  peers: [],
  secrets: {},
  blocks: [],
  affinities: [],
  pods: [],
  rib: [],
  ...over,
});

describe('BFD configuration', () => {
  it('layers the peer over the node config over the default config over 300 ms x 3, and is off unless enabled', () => {
    expect(resolveBfd(undefined, undefined)).toBeUndefined();
    expect(resolveBfd({ minTx: 100 }, { enabled: false })).toBeUndefined();
    expect(resolveBfd(undefined, { enabled: true })).toEqual(DEFAULT_BFD);
    expect(resolveBfd({ minTx: 100 }, { multiplier: 5 }, { enabled: true, minTx: 50, minRx: 200 })).toEqual({
      minTx: 100,
      minRx: 200,
      multiplier: 5,
      controlPlaneCheck: false,
    });
    expect(resolveBfd({ enabled: false }, { enabled: true })).toBeUndefined();
  });

  it('gives mesh sessions the BGPConfiguration bfd, and a BGPPeer its own over it', () => {
    const d = compute(
      inputs({
        bgpConfigs: [{ name: 'default', bfd: { enabled: true, minTx: 200 } }],
        peers: [
          { name: 'tor', peerIP: '10.0.0.254', asNumber: 65000, bfd: { multiplier: 4 } },
          { name: 'quiet', peerIP: '10.0.0.253', asNumber: 65000, bfd: { enabled: false } },
        ],
      }),
    );
    const by = (a: string) => d.peers.find((p) => p.address === a)?.bfd;
    expect(by('10.0.0.12')).toEqual({ minTx: 200, minRx: 300, multiplier: 3, controlPlaneCheck: false });
    expect(by('10.0.0.254')).toEqual({ minTx: 200, minRx: 300, multiplier: 4, controlPlaneCheck: false });
    expect(by('10.0.0.253')).toBeUndefined();
  });

  it('lets a peerSelector BGPPeer turn the mesh BFD off for the nodes it selects', () => {
    const d = compute(
      inputs({
        bgpConfigs: [{ name: 'default', bfd: { enabled: true } }],
        peers: [{ name: 'rack', peerSelector: 'rack == r1', bfd: { enabled: false } }],
      }),
    );
    expect(d.peers.find((p) => p.address === '10.0.0.12')?.bfd).toBeUndefined();
  });
});
