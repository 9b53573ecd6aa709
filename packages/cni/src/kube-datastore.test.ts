import { IPAM_ERR, IpamError, type IpamErrorCode } from '@podnet/ipam';
import { describe, expect, it } from 'vitest';
import { CniError } from './errors.js';
import { toCniIpamError } from './kube-datastore.js';

describe('IPAM failures as CNI error codes', () => {
  const cases: [IpamErrorCode, number][] = [
    [IPAM_ERR.POOL_EXHAUSTED, 100],
    [IPAM_ERR.NO_POOL_FOR_NODE, 100],
    [IPAM_ERR.TOO_MANY_CONFLICTS, 11],
    [IPAM_ERR.HANDLE_BUSY, 11],
    [IPAM_ERR.INVALID_CIDR, 101],
  ];
  it.each(cases)('maps %s to CNI code %i and keeps the IPAM code in details', (code, cni) => {
    const e = toCniIpamError(new IpamError(code, 'boom'), 'allocate for default/p');
    expect(e).toBeInstanceOf(CniError);
    expect(e.code).toBe(cni);
    expect(e.message).toBe('allocate for default/p: boom');
    expect(e.details).toBe(code);
  });
});
