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

  it('names the environment variable a bad value came from', () => {
    expect(() => loadConfig({ argv: [], env: { PODNET_LOG_LEVEL: 'loud' }, hostname: () => 'h' })).toThrow(
      /env PODNET_LOG_LEVEL.*"loud"/,
    );
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
