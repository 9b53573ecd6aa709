import { describe, expect, it } from 'vitest';
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
