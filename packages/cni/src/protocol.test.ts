import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from './config.js';
import { parseCniArgs, parseEnv } from './env.js';
import { CniError, CniErrorCode } from './errors.js';
import { convertResult, mergeResults, parseResult } from './result.js';
import { compareVersions, requireVersionFor, SUPPORTED_VERSIONS, versionInfo } from './version.js';

const base = { cniVersion: '1.1.0', name: 'k8s-pod-network', type: 'podnet', nodeName: 'node-a' };

function cniErr(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return err;
    throw err;
  }
  throw new Error('expected a CniError');
}

describe('parseConfig', () => {
  it('applies defaults to a minimal config', () => {
    const c = parseConfig(JSON.stringify(base), {});
    expect(c).toMatchObject({
      cniVersion: '1.1.0',
      name: 'k8s-pod-network',
      nodeName: 'node-a',
      assignIpv4: true,
      assignIpv6: false,
      arpMode: 'userspace',
      cacheDir: '/var/lib/cni/podnet',
      logLevel: 'warn',
    });
  });

  it('takes the node name from the environment when the config has none', () => {
    const { nodeName: _, ...noNode } = base;
    expect(parseConfig(JSON.stringify(noNode), { PODNET_NODENAME: 'from-env' }).nodeName).toBe('from-env');
  });

  it('turns IPv6 on when ipv6 pools are named or assign_ipv6 is "true"', () => {
    expect(parseConfig(JSON.stringify({ ...base, ipam: { ipv6_pools: ['fd00::/48'] } }), {}).assignIpv6).toBe(
      true,
    );
    expect(parseConfig(JSON.stringify({ ...base, ipam: { assign_ipv6: 'true' } }), {}).assignIpv6).toBe(true);
  });

  it('keeps unknown keys a runtime adds', () => {
    const c = parseConfig(
      JSON.stringify({ ...base, args: { cni: { x: 1 } }, capabilities: { portMappings: true } }),
      {},
    );
    expect((c.raw as Record<string, unknown>).capabilities).toEqual({ portMappings: true });
  });

  it.each([
    ['not JSON', '{bad', CniErrorCode.DecodeFailure, /not valid JSON/],
    ['a JSON array', '[]', CniErrorCode.DecodeFailure, /JSON object/],
    [
      'an unknown cniVersion',
      JSON.stringify({ ...base, cniVersion: '9.9.9' }),
      CniErrorCode.IncompatibleVersion,
      /"9.9.9" is not supported/,
    ],
    [
      'a wrong type',
      JSON.stringify({ ...base, type: 'bridge' }),
      CniErrorCode.InvalidConfig,
      /field type = "bridge"/,
    ],
    [
      'an MTU out of range',
      JSON.stringify({ ...base, mtu: 20 }),
      CniErrorCode.InvalidConfig,
      /field mtu = 20/,
    ],
    [
      'a bad arpMode',
      JSON.stringify({ ...base, arpMode: 'magic' }),
      CniErrorCode.InvalidConfig,
      /field arpMode = "magic"/,
    ],
    [
      'a missing name',
      JSON.stringify({ ...base, name: undefined }),
      CniErrorCode.InvalidConfig,
      /field name = undefined/,
    ],
    [
      'nothing to allocate',
      JSON.stringify({ ...base, ipam: { assign_ipv4: false } }),
      CniErrorCode.InvalidConfig,
      /nothing to allocate/,
    ],
    [
      'a bad valid-attachments list',
      JSON.stringify({ ...base, 'cni.dev/valid-attachments': [{ containerID: 1 }] }),
      CniErrorCode.InvalidConfig,
      /cni.dev\/valid-attachments\.\[0\]\.containerID/,
    ],
  ])('rejects %s with code and a message naming the field', (_, input, code, msg) => {
    const e = cniErr(() => parseConfig(input, {}));
    expect(e.code).toBe(code);
    expect(e.message).toMatch(msg);
  });

  it('accepts every supported spec version', () => {
    for (const v of SUPPORTED_VERSIONS)
      expect(parseConfig(JSON.stringify({ ...base, cniVersion: v }), {}).cniVersion).toBe(v);
  });
});

describe('parseEnv', () => {
  const add = {
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: 'c1',
    CNI_NETNS: '/var/run/netns/x',
    CNI_IFNAME: 'eth0',
  };

  it('reads an ADD with the pod from CNI_ARGS', () => {
    const r = parseEnv({
      ...add,
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0',
      CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
    });
    expect(r).toMatchObject({
      type: 'ADD',
      containerId: 'c1',
      ifname: 'eth0',
      pod: { namespace: 'default', name: 'web-0' },
      path: ['/opt/cni/bin', '/usr/lib/cni'],
    });
  });

  it('lets DEL go without CNI_NETNS', () => {
    expect(parseEnv({ ...add, CNI_COMMAND: 'DEL', CNI_NETNS: '' })).toMatchObject({
      type: 'DEL',
      netns: undefined,
    });
  });

  it.each([
    ['no CNI_COMMAND', {}, /CNI_COMMAND is not set/],
    ['an unknown command', { CNI_COMMAND: 'FROB' }, /"FROB" is not a CNI command/],
    [
      'ADD without container and netns',
      { CNI_COMMAND: 'ADD', CNI_IFNAME: 'eth0' },
      /CNI_CONTAINERID, CNI_NETNS/,
    ],
    ['CHECK without CNI_NETNS', { ...add, CNI_COMMAND: 'CHECK', CNI_NETNS: undefined }, /needs CNI_NETNS/],
    [
      'an interface name too long',
      { ...add, CNI_IFNAME: 'a-very-long-interface' },
      /CNI_IFNAME "a-very-long-interface"/,
    ],
    ['CNI_ARGS without KEY=VALUE', { ...add, CNI_ARGS: 'K8S_POD_NAME' }, /"K8S_POD_NAME"/],
  ])('rejects %s with code 4 naming the variable', (_, env, msg) => {
    const e = cniErr(() => parseEnv(env as NodeJS.ProcessEnv));
    expect(e.code).toBe(CniErrorCode.InvalidEnv);
    expect(e.message).toMatch(msg);
  });

  it('parses any well-formed CNI_ARGS back into its pairs', () => {
    const key = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,10}$/);
    const val = fc.stringMatching(/^[A-Za-z0-9_./=-]{0,12}$/);
    fc.assert(
      fc.property(fc.dictionary(key, val), (d) => {
        const s = Object.entries(d)
          .map(([k, v]) => `${k}=${v}`)
          .join(';');
        expect(parseCniArgs(s)).toEqual(d);
      }),
    );
  });
});

describe('versions', () => {
  it('compares numerically', () => {
    expect(compareVersions('0.4.0', '0.3.1')).toBeGreaterThan(0);
    expect(compareVersions('1.0.0', '1.1.0')).toBeLessThan(0);
    expect(compareVersions('1.1.0', '1.1.0')).toBe(0);
  });

  it.each([
    ['CHECK', '0.3.1'],
    ['STATUS', '1.0.0'],
    ['GC', '0.4.0'],
  ])('refuses %s under cniVersion %s with code 1', (cmd, v) => {
    expect(cniErr(() => requireVersionFor(cmd, v)).code).toBe(CniErrorCode.IncompatibleVersion);
  });

  it('answers VERSION with every supported version', () => {
    expect(versionInfo()).toEqual({
      cniVersion: '1.1.0',
      supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    });
  });
});

describe('errors', () => {
  it('renders the spec error object with details from the cause', () => {
    const e = new CniError(CniErrorCode.TryAgainLater, 'API unreachable', undefined, {
      cause: new Error('ECONNREFUSED'),
    });
    expect(e.toObject('1.0.0')).toEqual({
      cniVersion: '1.0.0',
      code: 11,
      msg: 'API unreachable',
      details: 'ECONNREFUSED',
    });
    expect(e.codeName).toBe('TRY_AGAIN_LATER');
  });
});

describe('results', () => {
  const mine = {
    cniVersion: '1.1.0',
    interfaces: [
      { name: 'pnabc', mac: 'ee:ee:ee:ee:ee:ee', mtu: 1500 },
      { name: 'eth0', mac: '02:00:00:00:00:01', mtu: 1500, sandbox: '/var/run/netns/p' },
    ],
    ips: [
      { address: '10.0.0.5/32', gateway: '169.254.1.1', interface: 1 },
      { address: 'fd00::5/128', gateway: 'fe80::ecee:eeff:feee:eeee', interface: 1 },
    ],
    routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
    dns: {},
  };

  it('adds the IP family as "version" for 0.3.x and 0.4.0 and drops 1.1-only fields', () => {
    const r = convertResult(mine, '0.4.0') as {
      ips: { version: string }[];
      interfaces: Record<string, unknown>[];
    };
    expect(r.ips.map((i) => i.version)).toEqual(['4', '6']);
    expect(r.interfaces[0]).not.toHaveProperty('mtu');
  });

  it('has no "version" on ips from 1.0.0 on and keeps the interface MTU only in 1.1.0', () => {
    const r10 = convertResult(mine, '1.0.0') as { ips: object[]; interfaces: object[] };
    expect(r10.ips[0]).not.toHaveProperty('version');
    expect(r10.interfaces[0]).not.toHaveProperty('mtu');
    expect((convertResult(mine, '1.1.0') as { interfaces: object[] }).interfaces[0]).toHaveProperty(
      'mtu',
      1500,
    );
  });

  it('reads a 0.3.1 result back into the internal shape', () => {
    const back = parseResult(convertResult(mine, '0.3.1'), '0.3.1');
    expect(back.ips).toEqual(mine.ips);
    expect(back.cniVersion).toBe('0.3.1');
  });

  it('appends to a previous result and shifts the interface indexes', () => {
    const prev = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'lo' }],
      ips: [{ address: '127.0.0.1/8', interface: 0 }],
    };
    const m = mergeResults(prev, mine);
    expect(m.interfaces?.map((i) => i.name)).toEqual(['lo', 'pnabc', 'eth0']);
    expect(m.ips?.map((i) => i.interface)).toEqual([0, 2, 2]);
  });

  it('rejects a malformed prevResult with code 6 naming the field', () => {
    const e = cniErr(() => parseResult({ ips: [{ gateway: 'x' }] }, '1.0.0'));
    expect(e.code).toBe(CniErrorCode.DecodeFailure);
    expect(e.message).toMatch(/prevResult\.ips\[0\]/);
  });
});
