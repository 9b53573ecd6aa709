import { describe, expect, it } from 'vitest';
import { compute } from '../compute.js';
import type { DesiredPeer } from '../model.js';
import { toPeerConfig } from './bgp.js';

const base: DesiredPeer = {
  key: '10.0.0.1:179',
  source: 'tor',
  type: 'global',
  address: '10.0.0.1',
  port: 179,
  remoteAs: 65000,
  localAs: 64512,
  passive: false,
  localAddress: '10.0.0.11',
  holdTime: 9,
  keepaliveTime: 3,
  gracefulRestart: { enabled: true, restartTime: 120 },
  routeReflectorClient: false,
  importFilter: [],
  exportFilter: [],
  maxPrefixes: 10_000,
};

describe('toPeerConfig', () => {
  it('maps a desired peer onto a bgp-ts peer config', () => {
    expect(toPeerConfig({ ...base, password: 'pw', maxPrefixes: 100 })).toMatchObject({
      address: '10.0.0.1',
      port: 179,
      asn: 65000,
      passive: false,
      holdTime: 9,
      keepalive: 3,
      md5Password: 'pw',
      sourceAddress: '10.0.0.11',
      maxPrefixes: 100,
      gracefulRestart: { restartTime: 120 },
      description: 'global tor',
    });
  });

  it('turns prefix filters into a prefix list: accept-lists reject the rest, reject-lists accept the rest', () => {
    const c = toPeerConfig({
      ...base,
      importFilter: [{ action: 'accept', cidr: '10.244.0.0/16', ge: 16, le: 32 }],
      exportFilter: [{ action: 'reject', cidr: '10.96.0.0/12' }],
    });
    expect(c.import).toEqual({
      prefixList: [{ prefix: '10.244.0.0/16', action: 'accept', ge: 16, le: 32 }],
      defaultAction: 'reject',
    });
    expect(c.export).toEqual({
      prefixList: [{ prefix: '10.96.0.0/12', action: 'reject' }],
      defaultAction: 'accept',
    });
    expect(toPeerConfig(base).import).toBeUndefined();
  });

  it('gives an external peer the originated-only export rule, without a list of the prefixes', () => {
    const d = compute({
      nodeName: 'node-a',
      nodes: [
        { name: 'node-a', labels: {}, ipv4: '10.0.0.11/24' },
        { name: 'node-b', labels: {}, ipv4: '10.0.0.12/24' },
      ],
      pools: [{ name: 'p', cidr: '10.244.0.0/16', blockSize: 26, disabled: false, disableBGPExport: false }],
      bgpConfigs: [],
      peers: [{ name: 'tor', peerIP: '10.0.0.1', asNumber: 65000 }],
      secrets: {},
      blocks: [{ cidr: '10.244.1.0/26', affinity: 'node-a' }],
      affinities: [{ node: 'node-a', cidr: '10.244.1.0/26', state: 'confirmed' }],
      pods: [],
      rib: [{ prefix: '10.244.2.0/26', nextHops: ['10.0.0.12'] }],
    });
    const tor = toPeerConfig(d.peers.find((p) => p.source === 'tor')!);
    expect(tor.export).toEqual({ originatedOnly: true });
    // A BGPPeer export filter rides along with the rule.
    const filtered = toPeerConfig({
      ...d.peers.find((p) => p.source === 'tor')!,
      exportFilter: [{ action: 'reject', cidr: '10.244.1.0/24', ge: 26 }],
    });
    expect(filtered.export).toEqual({
      originatedOnly: true,
      prefixList: [{ prefix: '10.244.1.0/24', action: 'reject', ge: 26 }],
      defaultAction: 'accept',
    });
    // Mesh peers keep bgp-ts's default export (iBGP rules already stop re-advertising learned routes).
    expect(toPeerConfig(d.peers.find((p) => p.type === 'mesh')!).export).toBeUndefined();
  });

  it('passes maxRestartTime on as the cap of the peer restart time, apart from the time we announce', () => {
    expect(toPeerConfig({ ...base, maxRestartTime: 30 })).toMatchObject({
      maxRestartTime: 30,
      gracefulRestart: { restartTime: 120 },
    });
  });

  it('sets the RFC 8538 N bit only when the peer asks for it, and only beside graceful restart', () => {
    expect(toPeerConfig({ ...base, gracefulRestartNotification: true }).gracefulRestart).toEqual({
      restartTime: 120,
      notification: true,
    });
    expect(toPeerConfig(base).gracefulRestart).toEqual({ restartTime: 120 });
    const off = toPeerConfig({
      ...base,
      gracefulRestart: { enabled: false, restartTime: 120 },
      gracefulRestartNotification: true,
    });
    expect(off.gracefulRestart).toBeUndefined();
  });

  it('passes longLivedGracefulRestart on (RFC 9494) only beside graceful restart, whose restart time may then be 0', () => {
    const llgr = { staleTime: 86400, maxStaleTime: 3600 };
    expect(
      toPeerConfig({
        ...base,
        gracefulRestart: { enabled: true, restartTime: 0 },
        longLivedGracefulRestart: llgr,
      }),
    ).toMatchObject({
      gracefulRestart: { restartTime: 0 },
      longLivedGracefulRestart: { staleTime: 86400 },
      maxLongLivedStaleTime: 3600,
    });
    const off = toPeerConfig({
      ...base,
      gracefulRestart: { enabled: false, restartTime: 120 },
      longLivedGracefulRestart: llgr,
    });
    expect(off.longLivedGracefulRestart).toBeUndefined();
    expect(off.maxLongLivedStaleTime).toBeUndefined();
    expect(toPeerConfig(base).longLivedGracefulRestart).toBeUndefined();
  });

  it('leaves graceful restart out when disabled and clamps the restart time to 12 bits', () => {
    expect(
      toPeerConfig({ ...base, gracefulRestart: { enabled: false, restartTime: 120 } }).gracefulRestart,
    ).toBeUndefined();
    expect(
      toPeerConfig({ ...base, gracefulRestart: { enabled: true, restartTime: 9999 } }).gracefulRestart,
    ).toEqual({
      restartTime: 4095,
    });
  });
});
