import { describe, expect, it } from 'vitest';
import { helpText, loadConfig, parseDuration } from './config.js';

const base = { hostname: () => 'Node-X', env: {} };

describe('loadConfig', () => {
  it('applies defaults and takes the node name from the hostname, lowercased', () => {
    const { config, origin } = loadConfig({ ...base, argv: [] });
    expect(config).toMatchObject({
      nodeName: 'node-x',
      logLevel: 'info',
      statusListen: '127.0.0.1:9099',
      ipAutodetectionMethod: 'first-found',
      arpMode: 'userspace',
      resyncInterval: 30_000,
    });
    expect(origin.nodeName).toBe('hostname');
  });

  it('keeps inet podnet by default, resynced every 30s; --netfilter off and the environment change it', () => {
    expect(loadConfig({ ...base, argv: [] }).config).toMatchObject({
      netfilter: 'on',
      netfilterResyncInterval: 30_000,
    });
    const { config, origin } = loadConfig({
      ...base,
      argv: ['--netfilter', 'off'],
      env: { PODNET_NETFILTER_RESYNC_INTERVAL: '5s' },
    });
    expect(config).toMatchObject({ netfilter: 'off', netfilterResyncInterval: 5000 });
    expect(origin.netfilterResyncInterval).toBe('env PODNET_NETFILTER_RESYNC_INTERVAL');
    expect(() => loadConfig({ ...base, argv: ['--netfilter', 'maybe'] })).toThrow(/--netfilter.*"maybe"/);
    expect(() => loadConfig({ ...base, argv: ['--netfilter-resync-interval', '10ms'] })).toThrow(
      /--netfilter-resync-interval.*at least 1s/,
    );
  });

  it('enforces NetworkPolicies by default; --network-policy off and PODNET_NETWORK_POLICY turn it off', () => {
    expect(loadConfig({ ...base, argv: [] }).config).toMatchObject({
      networkPolicy: 'on',
      networkPolicyDebounce: 20,
      networkPolicyMaxDelay: 200,
    });
    expect(loadConfig({ ...base, argv: ['--network-policy', 'off'] }).config.networkPolicy).toBe('off');
    const { config, origin } = loadConfig({
      ...base,
      argv: ['--network-policy-debounce', '50ms'],
      env: { PODNET_NETWORK_POLICY: 'off', PODNET_NETWORK_POLICY_MAX_DELAY: '1s' },
    });
    expect(config).toMatchObject({
      networkPolicy: 'off',
      networkPolicyDebounce: 50,
      networkPolicyMaxDelay: 1000,
    });
    expect(origin.networkPolicy).toBe('env PODNET_NETWORK_POLICY');
    expect(() => loadConfig({ ...base, argv: ['--network-policy', 'yes'] })).toThrow(
      /--network-policy.*"yes"/,
    );
    expect(() =>
      loadConfig({
        ...base,
        argv: ['--network-policy-debounce', '1s', '--network-policy-max-delay', '100ms'],
      }),
    ).toThrow(/--network-policy-max-delay.*at least the debounce/);
  });

  it('prefers flags over environment over the config file', () => {
    const { config, origin } = loadConfig({
      argv: ['--config', '/etc/podnet.yaml', '--log-level', 'debug'],
      env: { PODNET_LOG_LEVEL: 'warn', NODENAME: 'node-env', PODNET_ARP_MODE: 'kernel' },
      readFile: () => 'logLevel: error\nnodeName: node-file\nresyncInterval: 2m\nbgpListenPort: 1179\n',
      hostname: () => 'h',
    });
    expect(config.logLevel).toBe('debug');
    expect(config.nodeName).toBe('node-env');
    expect(config.arpMode).toBe('kernel');
    expect(config.resyncInterval).toBe(120_000);
    expect(config.bgpListenPort).toBe(1179);
    expect(origin).toMatchObject({
      logLevel: 'flag --log-level',
      nodeName: 'env NODENAME',
      resyncInterval: 'file /etc/podnet.yaml',
    });
  });

  it.each([
    [['--arp-mode', 'magic'], /--arp-mode \(from flag --arp-mode\).*"magic"/],
    [['--bgp-listen-port', '70000'], /--bgp-listen-port.*70000/],
    [['--status-listen', 'localhost'], /--status-listen.*host:port/],
    [['--resync-interval', 'soon'], /--resync-interval.*duration.*"soon"/],
    [['--ip-autodetection-method', 'guess'], /--ip-autodetection-method.*unknown IP autodetection method/],
    [['--node-name', 'Node_A'], /--node-name.*RFC 1123.*"Node_A"/],
    [['--no-such-flag'], /arguments.*no-such-flag/],
  ])('rejects %j naming the field and value', (argv, msg) => {
    expect(() => loadConfig({ ...base, argv })).toThrow(msg);
  });

  it('rejects an unknown key in the config file, naming the file', () => {
    expect(() =>
      loadConfig({ ...base, argv: ['--config', 'c.yaml'], readFile: () => 'logLevl: info\n' }),
    ).toThrow(/logLevl \(from c\.yaml\): unknown option/);
  });

  it("takes --route-protocol (default podnet's 213, not felix's 80) and refuses the kernel's 0-4 and > 255", () => {
    const base = { env: { NODENAME: 'n1' }, argv: [] as string[] };
    expect(loadConfig(base).config.routeProtocol).toBe(213);
    expect(loadConfig({ ...base, argv: ['--route-protocol', '150'] }).config.routeProtocol).toBe(150);
    expect(
      loadConfig({ ...base, env: { ...base.env, PODNET_ROUTE_PROTOCOL: '80' } }).config.routeProtocol,
    ).toBe(80);
    expect(() => loadConfig({ ...base, argv: ['--route-protocol', '3'] })).toThrow(
      /--route-protocol.*must be 5\.\.255.*"3"/,
    );
    expect(() => loadConfig({ ...base, argv: ['--route-protocol', '256'] })).toThrow(
      /--route-protocol.*"256"/,
    );
  });

  it('names the environment variable a bad value came from', () => {
    expect(() => loadConfig({ argv: [], env: { PODNET_LOG_LEVEL: 'loud' }, hostname: () => 'h' })).toThrow(
      /env PODNET_LOG_LEVEL.*"loud"/,
    );
  });

  describe('boolean options accept exactly true/false/1/0 (any case)', () => {
    const env = (v: string) => ({ PODNET_REMOVE_UNOWNED_POD_ROUTES: v });
    it.each([
      ['true', true],
      ['TRUE', true],
      ['1', true],
      ['false', false],
      ['False', false],
      ['0', false],
    ])('env %j is %s', (v, want) => {
      expect(loadConfig({ ...base, argv: [], env: env(v) }).config.removeUnownedPodRoutes).toBe(want);
    });

    it.each([['yes'], ['on'], ['no'], ['2'], ['flase']])(
      'env %j is an error naming the option and the value',
      (v) => {
        expect(() => loadConfig({ ...base, argv: [], env: env(v) })).toThrow(
          new RegExp(`--remove-unowned-pod-routes \\(from env PODNET_REMOVE_UNOWNED_POD_ROUTES\\).*"${v}"`),
        );
      },
    );

    it('reads the YAML string "false" from a config file (a ConfigMap) as false', () => {
      const file = (text: string) =>
        loadConfig({ ...base, argv: ['--config', 'c.yaml'], readFile: () => text }).config;
      expect(file('removeUnownedPodRoutes: "false"\n').removeUnownedPodRoutes).toBe(false);
      expect(file('removeUnownedPodRoutes: "0"\n').removeUnownedPodRoutes).toBe(false);
      expect(file('removeUnownedPodRoutes: true\n').removeUnownedPodRoutes).toBe(true);
      expect(file('ipamGcKeepLastBlock: "false"\n').ipamGcKeepLastBlock).toBe(false);
      expect(file('ipamGcKeepLastBlock: 0\n').ipamGcKeepLastBlock).toBe(false);
      expect(() => file('removeUnownedPodRoutes: "off"\n')).toThrow(
        /--remove-unowned-pod-routes \(from file c\.yaml\).*"off"/,
      );
      expect(() => file('ipamGcKeepLastBlock: 2\n')).toThrow(
        /--ipam-gc-keep-last-block \(from file c\.yaml\).*2/,
      );
    });

    it('takes a bare flag as true and --flag=VALUE with the same four words', () => {
      const flags = (...argv: string[]) => loadConfig({ ...base, argv }).config;
      expect(flags('--remove-unowned-pod-routes').removeUnownedPodRoutes).toBe(true);
      expect(flags('--remove-unowned-pod-routes=false').removeUnownedPodRoutes).toBe(false);
      expect(flags('--ipam-gc-keep-last-block=0').ipamGcKeepLastBlock).toBe(false);
      expect(flags('--ipam-gc-keep-last-block=True').ipamGcKeepLastBlock).toBe(true);
      expect(() => flags('--ipam-gc-keep-last-block=nope')).toThrow(
        /--ipam-gc-keep-last-block \(from flag --ipam-gc-keep-last-block\).*"nope"/,
      );
    });

    it('lets a flag override an environment boolean', () => {
      const { config } = loadConfig({
        ...base,
        argv: ['--remove-unowned-pod-routes=0'],
        env: env('1'),
      });
      expect(config.removeUnownedPodRoutes).toBe(false);
    });
  });

  it('takes leader election durations and the status write rate, and keeps their order', () => {
    const { config } = loadConfig({
      ...base,
      argv: ['--leader-election-lease-duration', '30s', '--status-write-rate', '2.5'],
    });
    expect(config).toMatchObject({
      leaderElectionLeaseDuration: 30_000,
      leaderElectionRenewDeadline: 10_000,
      leaderElectionRetryPeriod: 2_000,
      statusWriteRate: 2.5,
      statusWriteBurst: 10,
    });
    expect(() => loadConfig({ ...base, argv: ['--leader-election-renew-deadline', '20s'] })).toThrow(
      /--leader-election-renew-deadline.*shorter than the lease duration.*"20s"/,
    );
    expect(() => loadConfig({ ...base, argv: ['--status-write-rate', '0'] })).toThrow(
      /--status-write-rate.*"0"/,
    );
  });

  it('reads the default-object options: an IPv4 pool by default, none for IPv6, none disables', () => {
    expect(loadConfig({ ...base, argv: [] }).config).toMatchObject({
      defaultIpv4PoolCidr: '10.244.0.0/16',
      defaultIpv4PoolBlockSize: 26,
      defaultIpv6PoolCidr: undefined,
      defaultIpv6PoolBlockSize: 122,
      defaultAsNumber: 64512,
      defaultNodeToNodeMesh: true,
    });
    const { config } = loadConfig({
      ...base,
      argv: ['--config', 'c.yaml'],
      env: { PODNET_DEFAULT_IPV6_POOL_CIDR: 'fd00:10:244::/48', PODNET_DEFAULT_AS_NUMBER: '65010' },
      readFile: () =>
        'defaultIpv4PoolCidr: none\ndefaultIpv6PoolBlockSize: 120\ndefaultNodeToNodeMesh: false\n',
    });
    expect(config).toMatchObject({
      defaultIpv4PoolCidr: undefined,
      defaultIpv6PoolCidr: 'fd00:10:244::/48',
      defaultIpv6PoolBlockSize: 120,
      defaultAsNumber: 65010,
      defaultNodeToNodeMesh: false,
    });
  });

  it.each([
    [
      { PODNET_DEFAULT_IPV4_POOL_CIDR: '10.244.0.1/16' },
      /--default-ipv4-pool-cidr \(from env PODNET_DEFAULT_IPV4_POOL_CIDR\): expected an IPv4 CIDR.*"10\.244\.0\.1\/16"/,
    ],
    [{ PODNET_DEFAULT_IPV4_POOL_CIDR: 'fd00::/48' }, /--default-ipv4-pool-cidr.*IPv4 CIDR.*"fd00::\/48"/],
    [
      { PODNET_DEFAULT_IPV6_POOL_CIDR: '10.0.0.0/8' },
      /--default-ipv6-pool-cidr.*IPv6 CIDR.*"10\.0\.0\.0\/8"/,
    ],
    [{ PODNET_DEFAULT_IPV4_POOL_CIDR: '10.244.0.0/33' }, /--default-ipv4-pool-cidr.*"10\.244\.0\.0\/33"/],
    [
      { PODNET_DEFAULT_IPV4_POOL_CIDR: '10.244.0.0/16', PODNET_DEFAULT_IPV4_POOL_BLOCK_SIZE: '12' },
      /--default-ipv4-pool-block-size \(from env PODNET_DEFAULT_IPV4_POOL_BLOCK_SIZE\): block size 12 .*--default-ipv4-pool-cidr 10\.244\.0\.0\/16/,
    ],
    [{ PODNET_DEFAULT_AS_NUMBER: '0' }, /--default-as-number.*"0"/],
  ])('rejects the default-object options %j naming the option and value', (env, msg) => {
    expect(() => loadConfig({ argv: [], env, hostname: () => 'h' })).toThrow(msg);
  });

  it('keeps a subcommand as a positional argument', () => {
    expect(loadConfig({ ...base, argv: ['install-cni'] }).positionals).toEqual(['install-cni']);
  });

  it('documents every flag in --help', () => {
    for (const flag of ['--node-name', '--kubeconfig', '--status-listen', '--arp-mode', '--resync-interval'])
      expect(helpText()).toContain(flag);
  });
});

describe('parseDuration', () => {
  it.each([
    ['30s', 30_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['250ms', 250],
    ['5', 5000],
    [3, 3000],
    ['x', undefined],
  ] as const)('%s → %s', (v, want) => {
    expect(parseDuration(v)).toBe(want);
  });
});
