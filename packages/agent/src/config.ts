// Agent configuration: command-line flags > environment > YAML file > defaults, validated by one zod
// schema. Errors name the field, where its value came from and the value itself.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { parseCidr } from '@podnet/k8s';
import { PODNET_PROTO } from '@podnet/routes';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseAutodetectionMethod } from './autodetect.js';
import { ConfigError } from './errors.js';

/** Parses `30s`, `2m`, `1h`, `500ms` or a bare number of seconds into milliseconds. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  switch (m[2]) {
    case 'ms':
      return n;
    case 'm':
      return n * 60_000;
    case 'h':
      return n * 3_600_000;
    default:
      return n * 1000;
  }
}

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a duration like 30s, 2m or 500ms, got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
  return ms;
});

const port = z.coerce.number().int().min(1).max(65535);

/**
 * A boolean option's value: true/false/1/0, case-insensitive, as a string (flag, environment, a
 * quoted YAML value) or a YAML boolean or number; undefined for anything else (never a truthy guess:
 * `z.coerce.boolean` reads the string "false" as true).
 */
export function parseBoolean(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (v === 1 || v === 0) return v === 1;
  if (typeof v !== 'string') return undefined;
  const s = v.trim().toLowerCase();
  if (s === 'true' || s === '1') return true;
  if (s === 'false' || s === '0') return false;
  return undefined;
}

const bool = z.union([z.boolean(), z.string(), z.number()]).transform((v, ctx) => {
  const b = parseBoolean(v);
  if (b === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected true, false, 1 or 0, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return b;
});

const listen = z.string().refine((v) => v === 'none' || /^(\[[0-9a-fA-F:]+\]|[^:]+):\d{1,5}$/.test(v), {
  message: 'expected host:port (e.g. 127.0.0.1:9099) or "none"',
});

/** An IPv4 or IPv6 pool CIDR with no host bits set; `none` (or empty) is no pool of that family. */
const poolCidr = (family: 4 | 6, fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      const t = v.trim();
      if (t === '' || t === 'none') return undefined;
      const c = parseCidr(t, { strict: true });
      if (!c || c.family !== family) {
        ctx.addIssue({
          code: 'custom',
          message: `expected an IPv${family} CIDR with no host bits set (e.g. ${family === 4 ? '10.244.0.0/16' : 'fd00:10:244::/48'}) or none`,
        });
        return z.NEVER;
      }
      return t;
    });

export const agentConfigSchema = z
  .object({
    nodeName: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a lowercase DNS subdomain (RFC 1123)'),
    kubeconfig: z.string().min(1).optional(),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    statusListen: listen.default('127.0.0.1:9099'),
    bgpListenPort: port.optional(),
    ipv4Address: z
      .string()
      .regex(/^\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/, 'expected an IPv4 address, optionally with a /prefix')
      .optional(),
    ipAutodetectionMethod: z
      .string()
      .default('first-found')
      .superRefine((v, ctx) => {
        try {
          parseAutodetectionMethod(v);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      }),
    arpMode: z.enum(['userspace', 'kernel']).default('userspace'),
    resyncInterval: duration.default(30_000),
    // 0-4 are the kernel's own (unspec, redirect, kernel, boot, static): owning them would mean
    // removing routes nobody gave podnet.
    routeProtocol: z.coerce
      .number()
      .int()
      .min(5, "must be 5..255 (0-4 are the kernel's: unspec, redirect, kernel, boot, static)")
      .max(255, 'must be 5..255 (rtm_protocol is one byte)')
      .default(PODNET_PROTO),
    gracefulRestartTime: duration.default(120_000),
    netfilter: z.enum(['on', 'off']).default('on'),
    netfilterResyncInterval: duration.default(30_000).refine((ms) => ms >= 1000, {
      message: 'must be at least 1s',
    }),
    networkPolicy: z.enum(['on', 'off']).default('on'),
    networkPolicyDebounce: duration.default(20),
    networkPolicyMaxDelay: duration.default(200),
    bgpMaxPrefixes: z.coerce.number().int().min(1).default(10_000),
    bgpAttrCacheBytes: z.coerce
      .number()
      .int()
      .min(0)
      .default(4 * 1024 * 1024),
    bgpRefusalsPerMinute: z.coerce.number().min(0).default(10),
    apiRetryInterval: duration.default(5_000),
    cniBinDir: z.string().min(1).default('/opt/cni/bin'),
    cniConfDir: z.string().min(1).default('/etc/cni/net.d'),
    /** Where the host sees cniConfDir (install-cni in a container mounts it elsewhere); default cniConfDir. */
    cniHostConfDir: z.string().min(1).optional(),
    /** The unix socket the CNI shim hands commands to (cni-server.ts); 'none': not served. */
    cniSocket: z.string().min(1).default('none'),
    /** Where the standalone CNI plugin leaves its timing records (cni-timings.ts); 'none': not read. */
    cniTimingDir: z.string().min(1).default('none'),
    /** Addresses allocated ahead for ADDs served on cniSocket (cni-spares.ts); 0: none. */
    cniSpareAddresses: z.coerce.number().int().min(0).max(64).default(0),
    removeUnownedPodRoutes: bool.default(false),
    namespace: z.string().min(1).default('podnet-system'),
    ipamGcInterval: duration.default(300_000),
    ipamGcGrace: duration.default(60_000),
    ipamGcKeepLastBlock: bool.default(true),
    loadBalancerAllocation: bool.default(true),
    leaderElectionLeaseDuration: duration.default(15_000),
    leaderElectionRenewDeadline: duration.default(10_000),
    leaderElectionRetryPeriod: duration.default(2_000),
    statusWriteRate: z.coerce.number().positive().default(5),
    statusWriteBurst: z.coerce.number().int().min(1).default(10),
    nodeStatusInterval: duration
      .default(10_000)
      .refine((ms) => ms >= 1000, { message: 'must be at least 1s' }),
    nodeStatusHeartbeat: duration
      .default(60_000)
      .refine((ms) => ms >= 1000, { message: 'must be at least 1s' }),
    poolUsageWarning: z.coerce.number().gt(0).max(1).default(0.9),
    metricsListen: listen.default('0.0.0.0:9091'),
    podName: z.string().min(1).optional(),
    cniServiceAccount: z.string().min(1).default('podnet-cni'),
    cniTokenExpiration: duration.default(3_600_000).refine((ms) => ms >= 600_000, {
      message: 'must be at least 10m (the API server refuses shorter tokens)',
    }),
    cniTokenAudience: z.string().min(1).optional(),
    // Created at start-up when absent (defaults.ts): kubectl cannot apply them with their CRDs.
    defaultIpv4PoolCidr: poolCidr(4, '10.244.0.0/16'),
    defaultIpv4PoolBlockSize: z.coerce.number().int().min(0).max(32).default(26),
    defaultIpv6PoolCidr: poolCidr(6, 'none'),
    defaultIpv6PoolBlockSize: z.coerce.number().int().min(0).max(128).default(122),
    defaultAsNumber: z.coerce.number().int().min(1).max(4294967295).default(64512),
    defaultNodeToNodeMesh: bool.default(true),
  })
  .superRefine((c, ctx) => {
    if (c.networkPolicyMaxDelay < c.networkPolicyDebounce)
      ctx.addIssue({
        code: 'custom',
        path: ['networkPolicyMaxDelay'],
        message: `must be at least the debounce (${c.networkPolicyDebounce} ms)`,
      });
    if (!(c.leaderElectionRenewDeadline < c.leaderElectionLeaseDuration))
      ctx.addIssue({
        code: 'custom',
        path: ['leaderElectionRenewDeadline'],
        message: `must be shorter than the lease duration (${c.leaderElectionLeaseDuration} ms)`,
      });
    if (!(c.leaderElectionRetryPeriod < c.leaderElectionRenewDeadline))
      ctx.addIssue({
        code: 'custom',
        path: ['leaderElectionRetryPeriod'],
        message: `must be shorter than the renew deadline (${c.leaderElectionRenewDeadline} ms)`,
      });
  });

export type AgentConfig = z.output<typeof agentConfigSchema>;
type Field = keyof z.input<typeof agentConfigSchema>;

interface FieldSpec {
  flag: string;
  env: string;
  type: 'string' | 'boolean';
  help: string;
}

/** Every field, its flag, its environment variable and its help text (README documents the same). */
export const FIELDS: Record<Field, FieldSpec> = {
  nodeName: { flag: 'node-name', env: 'NODENAME', type: 'string', help: 'this node (default: hostname)' },
  kubeconfig: {
    flag: 'kubeconfig',
    env: 'KUBECONFIG',
    type: 'string',
    help: 'kubeconfig path (default: in-cluster service account)',
  },
  logLevel: {
    flag: 'log-level',
    env: 'PODNET_LOG_LEVEL',
    type: 'string',
    help: 'trace|debug|info|warn|error|fatal|silent',
  },
  statusListen: {
    flag: 'status-listen',
    env: 'PODNET_STATUS_LISTEN',
    type: 'string',
    help: 'loopback host:port for /livez /readyz /status (and /metrics), or none',
  },
  bgpListenPort: {
    flag: 'bgp-listen-port',
    env: 'PODNET_BGP_LISTEN_PORT',
    type: 'string',
    help: 'BGP port (overrides BGPConfiguration listenPort; default 179)',
  },
  ipv4Address: {
    flag: 'ipv4-address',
    env: 'IP',
    type: 'string',
    help: 'node IPv4 address (CIDR); skips autodetection',
  },
  ipAutodetectionMethod: {
    flag: 'ip-autodetection-method',
    env: 'IP_AUTODETECTION_METHOD',
    type: 'string',
    help: 'first-found | interface=REGEX | skip-interface=REGEX | can-reach=IP | cidr=CIDR[,CIDR]',
  },
  arpMode: { flag: 'arp-mode', env: 'PODNET_ARP_MODE', type: 'string', help: 'userspace | kernel' },
  resyncInterval: {
    flag: 'resync-interval',
    env: 'PODNET_RESYNC_INTERVAL',
    type: 'string',
    help: 'full route/peer resync period (default 30s)',
  },
  routeProtocol: {
    flag: 'route-protocol',
    env: 'PODNET_ROUTE_PROTOCOL',
    type: 'string',
    help: `rtm_protocol number marking podnet's routes; only they are changed (default ${PODNET_PROTO}; not 80, Calico felix's)`,
  },
  netfilter: {
    flag: 'netfilter',
    env: 'PODNET_NETFILTER',
    type: 'string',
    help: 'on | off: keep the inet podnet nf_tables table (natOutgoing, isolated pools) (default on)',
  },
  networkPolicy: {
    flag: 'network-policy',
    env: 'PODNET_NETWORK_POLICY',
    type: 'string',
    help: "on | off: enforce Kubernetes NetworkPolicies for this node's pods in inet podnet (needs --netfilter on) (default on)",
  },
  networkPolicyDebounce: {
    flag: 'network-policy-debounce',
    env: 'PODNET_NETWORK_POLICY_DEBOUNCE',
    type: 'string',
    help: 'a change after a quiet spell is applied at once; further changes within this time are held and applied together this long after the last (default 20ms)',
  },
  networkPolicyMaxDelay: {
    flag: 'network-policy-max-delay',
    env: 'PODNET_NETWORK_POLICY_MAX_DELAY',
    type: 'string',
    help: 'longest a held change waits while changes keep coming (default 200ms)',
  },
  netfilterResyncInterval: {
    flag: 'netfilter-resync-interval',
    env: 'PODNET_NETFILTER_RESYNC_INTERVAL',
    type: 'string',
    help: 'how often inet podnet is read back and drift repaired (default 30s)',
  },
  gracefulRestartTime: {
    flag: 'graceful-restart-time',
    env: 'PODNET_GRACEFUL_RESTART_TIME',
    type: 'string',
    help: 'restart time announced to peers (default 120s)',
  },
  bgpMaxPrefixes: {
    flag: 'bgp-max-prefixes',
    env: 'PODNET_BGP_MAX_PREFIXES',
    type: 'string',
    help: 'receive limit of an external BGPPeer without maxPrefixes (default 10000)',
  },
  bgpAttrCacheBytes: {
    flag: 'bgp-attr-cache-bytes',
    env: 'PODNET_BGP_ATTR_CACHE_BYTES',
    type: 'string',
    help: "bytes of each peer's raw BGP attribute cache (default 4194304)",
  },
  bgpRefusalsPerMinute: {
    flag: 'bgp-refusals-per-minute',
    env: 'PODNET_BGP_REFUSALS_PER_MINUTE',
    type: 'string',
    help: 'refused BGP connections answered and logged per source and minute (default 10)',
  },
  apiRetryInterval: {
    flag: 'api-retry-interval',
    env: 'PODNET_API_RETRY_INTERVAL',
    type: 'string',
    help: 'wait between start-up datastore retries (default 5s)',
  },
  cniBinDir: { flag: 'cni-bin-dir', env: 'PODNET_CNI_BIN_DIR', type: 'string', help: 'default /opt/cni/bin' },
  cniConfDir: {
    flag: 'cni-conf-dir',
    env: 'PODNET_CNI_CONF_DIR',
    type: 'string',
    help: 'default /etc/cni/net.d',
  },
  cniHostConfDir: {
    flag: 'host-cni-conf-dir',
    env: 'PODNET_CNI_HOST_CONF_DIR',
    type: 'string',
    help: 'the CNI config dir as the host (kubelet, runtime) sees it, written into the conflist (default --cni-conf-dir)',
  },
  cniSocket: {
    flag: 'cni-socket',
    env: 'PODNET_CNI_SOCKET',
    type: 'string',
    help: "unix socket on which the agent runs the CNI shim's ADD/DEL/CHECK (the DaemonSet: /var/run/podnet/cni.sock; default none: not served)",
  },
  cniSpareAddresses: {
    flag: 'cni-spare-addresses',
    env: 'PODNET_CNI_SPARE_ADDRESSES',
    type: 'string',
    help: "addresses of this node's blocks kept allocated ahead, per address family set, so that an ADD served on --cni-socket answers without waiting on the API server (0-64; default 0: every ADD allocates through the API)",
  },
  cniTimingDir: {
    flag: 'cni-timing-dir',
    env: 'PODNET_CNI_TIMING_DIR',
    type: 'string',
    help: 'directory where the standalone CNI plugin leaves its timing records for podnet_cni_duration_seconds{via="plugin"} (the DaemonSet: /var/run/podnet/cni-timings; default none: not read)',
  },
  namespace: {
    flag: 'namespace',
    env: 'PODNET_NAMESPACE',
    type: 'string',
    help: 'namespace of the Secrets BGPPeers reference (default podnet-system)',
  },
  ipamGcInterval: {
    flag: 'ipam-gc-interval',
    env: 'PODNET_IPAM_GC_INTERVAL',
    type: 'string',
    help: 'how often to release leaked addresses and empty blocks (default 5m; 0 disables)',
  },
  ipamGcGrace: {
    flag: 'ipam-gc-grace',
    env: 'PODNET_IPAM_GC_GRACE',
    type: 'string',
    help: 'how long a leak or an empty block must last before it is released (default 60s)',
  },
  ipamGcKeepLastBlock: {
    flag: 'ipam-gc-keep-last-block',
    env: 'PODNET_IPAM_GC_KEEP_LAST_BLOCK',
    type: 'boolean',
    help: "keep each node's last block of each family even when empty (default true)",
  },
  loadBalancerAllocation: {
    flag: 'load-balancer-allocation',
    env: 'PODNET_LOAD_BALANCER_ALLOCATION',
    type: 'boolean',
    help: 'give Services of type LoadBalancer addresses from LoadBalancerPools, on the agent holding the status Lease (default true)',
  },
  leaderElectionLeaseDuration: {
    flag: 'leader-election-lease-duration',
    env: 'PODNET_LEADER_ELECTION_LEASE_DURATION',
    type: 'string',
    help: 'how long the status writer lease holds without renewal (default 15s)',
  },
  leaderElectionRenewDeadline: {
    flag: 'leader-election-renew-deadline',
    env: 'PODNET_LEADER_ELECTION_RENEW_DEADLINE',
    type: 'string',
    help: 'the holder stops writing if it could not renew for this long (default 10s)',
  },
  leaderElectionRetryPeriod: {
    flag: 'leader-election-retry-period',
    env: 'PODNET_LEADER_ELECTION_RETRY_PERIOD',
    type: 'string',
    help: 'how often to try to acquire or renew the lease (default 2s)',
  },
  statusWriteRate: {
    flag: 'status-write-rate',
    env: 'PODNET_STATUS_WRITE_RATE',
    type: 'string',
    help: 'status conditions and Events written per second, at most (default 5)',
  },
  statusWriteBurst: {
    flag: 'status-write-burst',
    env: 'PODNET_STATUS_WRITE_BURST',
    type: 'string',
    help: 'writes allowed at once before the rate applies (default 10)',
  },
  nodeStatusInterval: {
    flag: 'node-status-interval',
    env: 'PODNET_NODE_STATUS_INTERVAL',
    type: 'string',
    help: 'the NodeStatus of this node is written at most this often, when it changed (default 10s)',
  },
  nodeStatusHeartbeat: {
    flag: 'node-status-heartbeat',
    env: 'PODNET_NODE_STATUS_HEARTBEAT',
    type: 'string',
    help: 'and at least this often, unchanged, to refresh status.lastUpdate (default 1m)',
  },
  poolUsageWarning: {
    flag: 'pool-usage-warning',
    env: 'PODNET_POOL_USAGE_WARNING',
    type: 'string',
    help: 'share of an IPPool in use (0-1] at which the elected writer sets Exhausted=True with reason NearlyFull and records a Warning Event (default 0.9)',
  },
  removeUnownedPodRoutes: {
    flag: 'remove-unowned-pod-routes',
    env: 'PODNET_REMOVE_UNOWNED_POD_ROUTES',
    type: 'boolean',
    help: 'remove routes on pn* interfaces podnet did not create',
  },
  metricsListen: {
    flag: 'metrics-listen',
    env: 'PODNET_METRICS_LISTEN',
    type: 'string',
    help: 'host:port serving /metrics only, for Prometheus on the node address (default 0.0.0.0:9091), or none',
  },
  podName: {
    flag: 'pod-name',
    env: 'POD_NAME',
    type: 'string',
    help: "this agent's pod; set (in the DaemonSet), the agent keeps the CNI plugin's token fresh",
  },
  cniServiceAccount: {
    flag: 'cni-service-account',
    env: 'PODNET_CNI_SERVICE_ACCOUNT',
    type: 'string',
    help: 'service account (in --namespace) whose token the CNI plugin uses (default podnet-cni)',
  },
  cniTokenExpiration: {
    flag: 'cni-token-expiration',
    env: 'PODNET_CNI_TOKEN_EXPIRATION',
    type: 'string',
    help: "lifetime asked for the CNI plugin's token, renewed at 80% (default 1h, at least 10m)",
  },
  cniTokenAudience: {
    flag: 'cni-token-audience',
    env: 'PODNET_CNI_TOKEN_AUDIENCE',
    type: 'string',
    help: "the CNI token's audience (default: the API server's own)",
  },
  defaultIpv4PoolCidr: {
    flag: 'default-ipv4-pool-cidr',
    env: 'PODNET_DEFAULT_IPV4_POOL_CIDR',
    type: 'string',
    help: 'IPPool default-ipv4 created at start-up when no IPPool exists (default 10.244.0.0/16; none: no pool)',
  },
  defaultIpv4PoolBlockSize: {
    flag: 'default-ipv4-pool-block-size',
    env: 'PODNET_DEFAULT_IPV4_POOL_BLOCK_SIZE',
    type: 'string',
    help: 'blockSize of that pool (default 26)',
  },
  defaultIpv6PoolCidr: {
    flag: 'default-ipv6-pool-cidr',
    env: 'PODNET_DEFAULT_IPV6_POOL_CIDR',
    type: 'string',
    help: 'IPPool default-ipv6 created with the IPv4 one (default none: no pool)',
  },
  defaultIpv6PoolBlockSize: {
    flag: 'default-ipv6-pool-block-size',
    env: 'PODNET_DEFAULT_IPV6_POOL_BLOCK_SIZE',
    type: 'string',
    help: 'blockSize of that pool (default 122)',
  },
  defaultAsNumber: {
    flag: 'default-as-number',
    env: 'PODNET_DEFAULT_AS_NUMBER',
    type: 'string',
    help: 'asNumber of the BGPConfiguration default, created at start-up when absent (default 64512)',
  },
  defaultNodeToNodeMesh: {
    flag: 'default-node-to-node-mesh',
    env: 'PODNET_DEFAULT_NODE_TO_NODE_MESH',
    type: 'boolean',
    help: 'nodeToNodeMesh of that BGPConfiguration (default true)',
  },
};

export interface ConfigSources {
  argv?: string[];
  env?: Record<string, string | undefined>;
  /** Read the YAML file named by --config / PODNET_CONFIG with this (tests inject it). */
  readFile?: (path: string) => string;
  hostname?: () => string;
}

export interface LoadedConfig {
  config: AgentConfig;
  /** Where each field's value came from: flag, env, file or default. */
  origin: Partial<Record<Field, string>>;
  /** Positional arguments left over (a subcommand such as `install-cni`). */
  positionals: string[];
  help: boolean;
}

const fileSchemaKeys = new Set(Object.keys(FIELDS));

/** Loads and validates the configuration; throws ConfigError naming the first bad field. */
export function loadConfig(sources: ConfigSources = {}): LoadedConfig {
  const argv = sources.argv ?? process.argv.slice(2);
  const env = sources.env ?? process.env;
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    config: { type: 'string' },
    help: { type: 'boolean' },
  };
  for (const spec of Object.values(FIELDS)) options[spec.flag] = { type: spec.type };
  // A boolean flag is `--flag` (true) or `--flag=VALUE`; parseArgs refuses a value on a boolean,
  // so those are taken out here and checked by the schema like any other value.
  const boolFlags = new Set(Object.values(FIELDS).flatMap((s) => (s.type === 'boolean' ? [s.flag] : [])));
  const flagValues: Record<string, string> = {};
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      args.push(...argv.slice(i));
      break;
    }
    const m = /^--([^=]+)=(.*)$/s.exec(a);
    if (m && boolFlags.has(m[1]!)) flagValues[m[1]!] = m[2]!;
    else args.push(a);
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigError('arguments', 'command line', `${(err as Error).message}; run with --help`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;

  const raw: Record<string, unknown> = {};
  const origin: Partial<Record<Field, string>> = {};

  const configPath = (values.config as string | undefined) ?? env.PODNET_CONFIG;
  if (configPath) {
    let text: string;
    try {
      text = (sources.readFile ?? ((p) => readFileSync(p, 'utf8')))(configPath);
    } catch (err) {
      throw new ConfigError('config', 'command line', `cannot read ${configPath}: ${(err as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      throw new ConfigError('config', configPath, `not valid YAML: ${(err as Error).message}`);
    }
    if (doc !== null && doc !== undefined) {
      if (typeof doc !== 'object' || Array.isArray(doc))
        throw new ConfigError('config', configPath, 'expected a YAML mapping of option: value');
      for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
        if (!fileSchemaKeys.has(k))
          throw new ConfigError(
            k,
            configPath,
            `unknown option; known options: ${[...fileSchemaKeys].sort().join(', ')}`,
          );
        raw[k] = v;
        origin[k as Field] = `file ${configPath}`;
      }
    }
  }
  for (const [field, spec] of Object.entries(FIELDS) as [Field, FieldSpec][]) {
    const e = env[spec.env];
    if (e !== undefined && e !== '') {
      raw[field] = e;
      origin[field] = `env ${spec.env}`;
    }
    const f = values[spec.flag] ?? flagValues[spec.flag];
    if (f !== undefined) {
      raw[field] = f;
      origin[field] = `flag --${spec.flag}`;
    }
  }
  if (raw.nodeName === undefined) {
    raw.nodeName = (sources.hostname ?? hostname)().toLowerCase();
    origin.nodeName = 'hostname';
  }

  const result = agentConfigSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const field = String(issue.path[0] ?? 'config') as Field;
    const spec = FIELDS[field];
    const name = spec ? `--${spec.flag}` : field;
    const value = raw[field];
    throw new ConfigError(
      name,
      origin[field] ?? 'default',
      `${issue.message} (value ${JSON.stringify(value)})`,
    );
  }
  checkDefaultPoolBlockSizes(result.data, origin);
  return { config: result.data, origin, positionals: parsed.positionals, help: values.help === true };
}

/** A default pool's block size lies between the pool's prefix length and the family's width. */
function checkDefaultPoolBlockSizes(config: AgentConfig, origin: Partial<Record<Field, string>>): void {
  const pools = [
    ['defaultIpv4PoolCidr', 'defaultIpv4PoolBlockSize', 32],
    ['defaultIpv6PoolCidr', 'defaultIpv6PoolBlockSize', 128],
  ] as const;
  for (const [cidrField, sizeField, bits] of pools) {
    const cidr = config[cidrField];
    if (cidr === undefined) continue;
    const prefix = parseCidr(cidr)!.prefixLength;
    const size = config[sizeField];
    if (size < prefix || size > bits)
      throw new ConfigError(
        `--${FIELDS[sizeField].flag}`,
        origin[sizeField] ?? 'default',
        `block size ${size} must be between the prefix length of --${FIELDS[cidrField].flag} ${cidr} (/${prefix}) and /${bits} (value ${JSON.stringify(size)})`,
      );
  }
}

/** The --help text, generated from FIELDS so it never drifts from the parser. */
export function helpText(): string {
  const rows = Object.values(FIELDS).map((s) => [`--${s.flag}`, s.env, s.help]);
  rows.unshift(['--config', 'PODNET_CONFIG', 'YAML file with the same options (camelCase keys)']);
  const w0 = Math.max(...rows.map((r) => r[0]!.length));
  const w1 = Math.max(...rows.map((r) => r[1]!.length));
  return [
    'usage: podnet-agent [options]            run the node agent',
    '       podnet-agent install-cni [options] install the CNI binary and conflist, then exit',
    '       podnet-agent node-sysctls [FILE]   write the sysctls of FILE (sysctl.d syntax), then exit',
    '',
    'Options (flag > environment > config file > default):',
    ...rows.map((r) => `  ${r[0]!.padEnd(w0)}  ${r[1]!.padEnd(w1)}  ${r[2]}`),
  ].join('\n');
}
