import { describe, expect, it } from 'vitest';
import {
  decodeShimRequest,
  encodeShimAnswer,
  encodeShimDecline,
  encodeShimRequest,
  type ShimRequest,
} from './shim-protocol.js';

const req: ShimRequest = {
  pid: 4242,
  pidStart: '987654',
  netnsId: '4:4026532281',
  runtime: '/usr/bin/containerd',
  env: {
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: 'abc',
    CNI_NETNS: '/var/run/netns/cni-1',
    CNI_IFNAME: 'eth0',
    CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=p=1',
    CNI_PATH: '/opt/cni/bin',
  },
  stdin: '{"cniVersion":"1.0.0","name":"podnet","type":"podnet","x":"é"}',
};

describe('the shim wire format', () => {
  it('decodes what the shim encodes, values with "=" and non-ASCII configuration included', () => {
    expect(decodeShimRequest(encodeShimRequest(req))).toEqual({ ok: true, request: req });
    const noNetns = { ...req, netnsId: undefined };
    expect(decodeShimRequest(encodeShimRequest(noNetns))).toEqual({ ok: true, request: noNetns });
  });

  it('matches the bytes the C shim sends', () => {
    const bytes = Buffer.from(
      'podnet-cni-shim/1\0pid=7\0start=99\0netns=1:2\0runtime=/usr/bin/crio\0CNI_COMMAND=DEL\0\0{}',
      'latin1',
    );
    expect(decodeShimRequest(bytes)).toEqual({
      ok: true,
      request: {
        pid: 7,
        pidStart: '99',
        netnsId: '1:2',
        runtime: '/usr/bin/crio',
        env: { CNI_COMMAND: 'DEL' },
        stdin: '{}',
      },
    });
  });

  it.each([
    ['an empty request', '', /ends inside its header/],
    ['no end of header', 'podnet-cni-shim/1\0pid=1\0', /ends inside its header/],
    [
      'another magic',
      'podnet-cni-shim/9\0pid=1\0\0{}',
      /does not start with podnet-cni-shim\/1.*podnet-cni-shim\/9/,
    ],
    ['a record without "="', 'podnet-cni-shim/1\0pid=1\0oops\0\0{}', /without NAME=value: "oops"/],
    ['no pid', 'podnet-cni-shim/1\0start=1\0\0{}', /pid "" is not a process id/],
    ['a bad pid', 'podnet-cni-shim/1\0pid=-3\0\0{}', /pid "-3" is not a process id/],
  ])('refuses %s, naming what is wrong', (_, raw, error) => {
    const r = decodeShimRequest(Buffer.from(raw, 'latin1'));
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.error).toMatch(error);
  });

  it('encodes answers and declines as the shim reads them', () => {
    expect(encodeShimAnswer(0, '{"ips":[]}\n').toString()).toBe('0\n{"ips":[]}\n');
    expect(encodeShimDecline('no\0pe').toString()).toBe('Dno pe');
  });
});
