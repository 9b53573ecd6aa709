#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=50 --max-opt=2
// podnet-agent: the node daemon's entry point. See README.md for the options.
// The young generation is capped at 2 x 4 MiB: with Node's default (up to 2 x 32 MiB on a large
// host) connection churn from BGP peers grows the agent's RSS by ~60 MiB of mostly empty heap.
// The old generation grows by half of what survived a full collection, not 4x. --max-opt=2: V8
// stops at Maglev, no TurboFan (its code pages were ~8 MB of a running agent; README.md).
import { readFileSync } from 'node:fs';
import { Ipam } from '@podnet/ipam';
import { KubeClient } from '@podnet/k8s';
import { mallocTrim, mallocTune } from '@podnet/native';
import { NftTable, nftCli } from '@podnet/nft';
import { procSysctl } from '@podnet/routes';
import { Rtnl } from '@podnet/rtnetlink';
import { ArpAdapter } from './adapters/arp.js';
import { BgpAdapter } from './adapters/bgp.js';
import { KubeDatastore } from './adapters/datastore.js';
import { canReach, listInterfaces, ROUTE_PROTOCOL, RoutesAdapter } from './adapters/routes.js';
import { Agent } from './agent.js';
import { startClusterStatus } from './cluster-status.js';
import { CNI_TOKEN_NAME, CniTokenRefresher, requestTokenVia, type TokenRequestSpec } from './cni-token.js';
import { type AgentConfig, helpText, type LoadedConfig, loadConfig } from './config.js';
import { startDefaultObjects } from './defaults.js';
import { EventRecorder, TokenBucket } from './events.js';
import { scheduleFootprintTrim } from './footprint.js';
import { installCni } from './install-cni.js';
import { LbAllocator } from './lb-controller.js';
import { LogLevelController, liveLogger } from './log-level.js';
import { createMetrics } from './metrics.js';
import { startMetricsListener } from './metrics-listener.js';
import { NetfilterReconciler } from './netfilter-sync.js';
import { parseSysctlConf } from './node-sysctls.js';
import { PolicySync } from './policy-sync.js';
import { ServiceSync } from './service-sync.js';
import { startStatusServer } from './status.js';

/**
 * The AFIs (1 IPv4, 2 IPv6) of which podnet's routes are still in the kernel: when any, we are
 * coming back from a graceful stop, and forwarding was preserved for those families (the F bit).
 */
async function keptFamilies(protocol: number): Promise<number[]> {
  try {
    const nl = await Rtnl.open({});
    try {
      const kept: number[] = [];
      if ((await nl.routes.list({ protocol, family: 4 })).length > 0) kept.push(1);
      if ((await nl.routes.list({ protocol, family: 6 })).length > 0) kept.push(2);
      return kept;
    } finally {
      nl.close();
    }
  } catch {
    return [];
  }
}

/** What the CNI token is asked for, or undefined outside a pod (no --pod-name: the lab, tests). */
function cniTokenSpec(config: AgentConfig): TokenRequestSpec | undefined {
  if (!config.podName) return undefined;
  return {
    namespace: config.namespace,
    serviceAccount: config.cniServiceAccount,
    audiences: config.cniTokenAudience ? [config.cniTokenAudience] : [],
    expirationSeconds: Math.round(config.cniTokenExpiration / 1000),
  };
}

/** How often freed malloc memory is given back to the kernel (malloc_trim). */
const MALLOC_TRIM_INTERVAL_MS = 30_000;
/** The memory trim (footprint.ts): once start-up is a minute behind, then every 10 minutes. */
const FOOTPRINT_TRIM_FIRST_MS = 60_000;
const FOOTPRINT_TRIM_INTERVAL_MS = 600_000;

async function main(): Promise<number> {
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig();
  } catch (err) {
    process.stderr.write(`podnet-agent: ${(err as Error).message}\n`);
    return 2;
  }
  if (loaded.help) {
    process.stdout.write(`${helpText()}\n`);
    return 0;
  }
  const { config } = loaded;
  // Live: BGPConfiguration.logSeverity may change it later, unless a flag or env set it (log-level.ts).
  const { log, setLevel } = liveLogger({ level: config.logLevel, base: { node: config.nodeName } });

  const sub = loaded.positionals[0];
  if (sub === 'install-cni') {
    // In the DaemonSet: the first token goes in before the conflist, so the plugin has a
    // credential as soon as the kubelet sees the network configured; the agent then refreshes it.
    const spec = cniTokenSpec(config);
    if (spec) {
      try {
        const client = new KubeClient({
          ...(config.kubeconfig ? { kubeconfigPath: config.kubeconfig } : {}),
          logger: log,
        });
        const refresher = new CniTokenRefresher({
          spec,
          request: requestTokenVia(tokenApi(client)),
          dir: config.cniConfDir,
          log,
        });
        await refresher.start().finally(() => refresher.stop());
      } catch (err) {
        process.stderr.write(`podnet-agent install-cni: ${(err as Error).message}\n`);
        return 1;
      }
    }
    installCni({
      nodeName: config.nodeName,
      binDir: config.cniBinDir,
      confDir: config.cniConfDir,
      ...(config.cniHostConfDir ? { hostConfDir: config.cniHostConfDir } : {}),
      ...(process.env.PODNET_CNI_TOKEN_DIR ? { tokenDir: process.env.PODNET_CNI_TOKEN_DIR } : {}),
      ...(spec ? { tokenFile: CNI_TOKEN_NAME } : {}),
      ...(config.kubeconfig ? { kubeconfigPath: config.kubeconfig } : {}),
      // The host's own Node instead of a copy: where to look (comma-separated host paths, or none),
      // where the host's root is mounted, and where the host sees the bin directory.
      ...(process.env.PODNET_CNI_HOST_NODES
        ? {
            hostNodes:
              process.env.PODNET_CNI_HOST_NODES === 'none'
                ? []
                : process.env.PODNET_CNI_HOST_NODES.split(',').filter((p) => p !== ''),
          }
        : {}),
      ...(process.env.PODNET_HOST_ROOT ? { hostRoot: process.env.PODNET_HOST_ROOT } : {}),
      ...(process.env.PODNET_CNI_HOST_BIN_DIR ? { hostBinDir: process.env.PODNET_CNI_HOST_BIN_DIR } : {}),
      logger: log,
    });
    return 0;
  }
  if (sub === 'node-sysctls') {
    const file = loaded.positionals[1] ?? '/etc/podnet/node-sysctls.conf';
    try {
      const changed = await procSysctl().apply(parseSysctlConf(readFileSync(file, 'utf8'), file));
      log.info({ file, changed }, 'node sysctls set');
      return 0;
    } catch (err) {
      process.stderr.write(`podnet-agent node-sysctls: ${(err as Error).message}\n`);
      return 1;
    }
  }
  if (sub !== undefined) {
    process.stderr.write(`podnet-agent: unknown command ${JSON.stringify(sub)}; run podnet-agent --help\n`);
    return 2;
  }

  let client: KubeClient;
  try {
    client = new KubeClient({
      ...(config.kubeconfig ? { kubeconfigPath: config.kubeconfig } : {}),
      logger: log,
    });
  } catch (err) {
    process.stderr.write(`podnet-agent: ${(err as Error).message}; pass --kubeconfig or run in a cluster\n`);
    return 2;
  }
  // The agent's threads (a receive thread per pod interface's ARP socket, V8's and libuv's) each
  // allocate little: two malloc arenas serve them all, large blocks get mappings of their own, and
  // what is freed goes back to the kernel every half minute (docs/footprint.md).
  mallocTune({ arenaMax: 2, mmapThreshold: 128 * 1024, trimThreshold: 128 * 1024 });
  setInterval(() => mallocTrim(), MALLOC_TRIM_INTERVAL_MS).unref();
  const metrics = createMetrics({ defaultMetrics: true });
  // The default IPPool(s) and BGPConfiguration, when absent (deploy/ cannot apply them with the CRDs).
  const defaults = startDefaultObjects(
    client,
    config,
    log.child({ component: 'defaults' }),
    config.apiRetryInterval,
  );
  const ipam = new Ipam({ client, logger: log });
  const kept = await keptFamilies(config.routeProtocol);
  const restarting = kept.length > 0;
  const routes = new RoutesAdapter({
    logger: log,
    registry: metrics.registry,
    resyncIntervalMs: config.resyncInterval,
    protocol: config.routeProtocol,
    removeForeignOnPodIfaces: config.removeUnownedPodRoutes,
  });
  // Next hops resolve through the kernel's routes (nodes in other subnets via the ToR); BGP leaves
  // out paths whose next hop has no route, and selects again when the kernel's routes change.
  await routes.startNextHops();
  const bgp = new BgpAdapter({
    logger: log,
    restarting,
    forwardingPreserved: kept,
    attrCacheBytes: config.bgpAttrCacheBytes,
    refusalsPerMinute: config.bgpRefusalsPerMinute,
    nextHopReachable: (addr) => routes.nextHops.reachable(addr),
    registry: metrics.registry,
  });
  // NetworkPolicy: cluster-wide watches of pods, namespaces and policies (projections only).
  const enforcePolicy = config.networkPolicy === 'on' && config.netfilter === 'on';
  if (config.networkPolicy === 'on' && !enforcePolicy)
    log.warn('NetworkPolicies are not enforced: --netfilter off leaves no table to enforce them in');
  let onPolicyChange = () => {};
  const policy = enforcePolicy
    ? new PolicySync(client, {
        node: config.nodeName,
        log,
        onChange: () => onPolicyChange(),
        debounceMs: config.networkPolicyDebounce,
        maxDelayMs: config.networkPolicyMaxDelay,
        events: new EventRecorder({
          client,
          identity: config.nodeName,
          limiter: new TokenBucket(config.statusWriteRate, config.statusWriteBurst),
          logger: log,
        }),
      })
    : undefined;
  const agent = new Agent({
    config,
    log,
    metrics,
    datastore: new KubeDatastore(client, {
      nodeName: config.nodeName,
      namespace: config.namespace,
      logger: log,
    }),
    bgp,
    routes,
    arp: new ArpAdapter({ mode: config.arpMode, logger: log, registry: metrics.registry }),
    routeProtocol: { ...ROUTE_PROTOCOL, number: config.routeProtocol },
    // Node objects are authoritative here: a deleted node's last blocks go too.
    ipamGc: (graceMs) => ipam.gc({ graceMs, deletedNodes: true, keepLastBlock: config.ipamGcKeepLastBlock }),
    ipamGcForget: () => ipam.gcForget(),
    ipamUsage: () => ipam.usage(),
    ...(config.netfilter === 'on'
      ? { netfilter: new NetfilterReconciler({ nft: new NftTable({ exec: nftCli() }), log, metrics }) }
      : {}),
    ...(policy ? { policy } : {}),
    services: new ServiceSync(client, {
      log,
      events: new EventRecorder({
        client,
        identity: config.nodeName,
        limiter: new TokenBucket(config.statusWriteRate, config.statusWriteBurst),
        logger: log,
      }),
    }),
    interfaces: listInterfaces,
    canReach,
    defaultObjects: defaults.done,
  });
  const status =
    config.statusListen === 'none'
      ? undefined
      : await startStatusServer(
          config.statusListen,
          {
            live: () => agent.live(),
            status: () => agent.status(),
            metrics: async () => ({
              contentType: metrics.registry.contentType,
              body: await metrics.registry.metrics(),
            }),
          },
          log.child({ component: 'status' }),
        );
  routes.nextHops.onChange(() => {
    bgp.nextHopsChanged();
    agent.schedule('next-hops');
  });
  const metricsListener =
    config.metricsListen === 'none'
      ? undefined
      : await startMetricsListener(
          config.metricsListen,
          async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
          log.child({ component: 'metrics' }),
        );
  // The CNI shim's socket (loaded only when served: @podnet/cni is not otherwise in the agent).
  const cniServer =
    config.cniSocket === 'none'
      ? undefined
      : await import('./cni-server.js')
          .then(({ startCniServer }) =>
            startCniServer({
              path: config.cniSocket,
              nodeName: config.nodeName,
              log,
              metrics,
              spareAddresses: config.cniSpareAddresses,
              ...(config.cniHostConfDir ? { pathMap: [[config.cniHostConfDir, config.cniConfDir]] } : {}),
            }),
          )
          .catch((err: unknown) => {
            // Pods still start: the shim runs the standalone plugin when nothing answers.
            log.error({ err, path: config.cniSocket }, 'cannot serve the CNI socket');
            return undefined;
          });
  // The standalone plugin's timing records (the CNI latency histogram when the socket is not served).
  const cniTimings =
    config.cniTimingDir === 'none'
      ? undefined
      : await import('./cni-timings.js').then(async ({ CniTimings }) => {
          const t = new CniTimings({
            dir: config.cniTimingDir,
            metrics,
            log: log.child({ component: 'cni-timings' }),
          });
          return t.start().then(
            () => t,
            (err: unknown) => {
              log.error({ err, dir: config.cniTimingDir }, 'cannot read CNI timing records');
              return undefined;
            },
          );
        });
  const tokenSpec = cniTokenSpec(config);
  const cniToken = tokenSpec
    ? new CniTokenRefresher({
        spec: tokenSpec,
        request: requestTokenVia(tokenApi(client)),
        dir: config.cniConfDir,
        log: log.child({ component: 'cni-token' }),
        registry: metrics.registry,
      })
    : undefined;
  // A failed first request is logged and retried by the refresher; the agent goes on.
  cniToken?.start().catch(() => {});
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection (continuing)'));
  onPolicyChange = () => void agent.reconcileNetfilter(false);
  policy?.start();
  await agent.start();
  const logLevel = new LogLevelController({
    client,
    nodeName: config.nodeName,
    configured: config.logLevel,
    fixed: /^(flag|env) /.test(loaded.origin.logLevel ?? ''),
    setLevel,
    logger: log,
  });
  logLevel.start();
  // One elected agent does the cluster-wide work: the status writer, the IPAM garbage collection
  // and the LoadBalancer address allocation.
  const lbAllocator = config.loadBalancerAllocation
    ? new LbAllocator({
        client,
        recorder: new EventRecorder({
          client,
          identity: config.nodeName,
          limiter: new TokenBucket(config.statusWriteRate, config.statusWriteBurst),
          logger: log,
        }),
        logger: log,
      })
    : undefined;
  const clusterStatus = startClusterStatus(
    client,
    config,
    log,
    [
      {
        onStartedLeading: () => agent.setIpamGcLeader(true),
        onStoppedLeading: () => agent.setIpamGcLeader(false),
      },
      ...(lbAllocator ? [lbAllocator] : []),
    ],
    () => agent.status(),
  );
  log.info({ restarting }, 'podnet-agent running');
  const footprint = scheduleFootprintTrim({
    logger: log.child({ component: 'footprint' }),
    firstAfterMs: FOOTPRINT_TRIM_FIRST_MS,
    intervalMs: FOOTPRINT_TRIM_INTERVAL_MS,
  });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now');
        resolve(1);
        return;
      }
      stopping = true;
      defaults.stop();
      footprint.stop();
      log.info({ signal }, 'graceful stop: keeping kernel routes, graceful restart towards peers');
      const force = setTimeout(() => resolve(1), 20_000);
      force.unref();
      void clusterStatus
        .stop()
        .catch((err: unknown) => log.warn({ err }, 'error while stopping the status writer'))
        .then(() => lbAllocator?.stop())
        .then(() => logLevel.stop())
        .then(() => cniServer?.close())
        .then(() => cniTimings?.stop())
        .then(() => agent.stop({ graceful: true }))
        .then(() => policy?.stop())
        .then(() => routes.nextHops.stop())
        .then(() => {
          cniToken?.stop();
          return Promise.all([status?.close(), metricsListener?.close()]);
        })
        .then(() => resolve(0));
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

main().then(
  (code) => {
    // Flush pino before exiting.
    setTimeout(() => process.exit(code), 50);
  },
  (err: unknown) => {
    process.stderr.write(`podnet-agent: fatal: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);

/** TokenRequests over the client's pooled requests (client.core would load client-node in full). */
function tokenApi(client: KubeClient): Parameters<typeof requestTokenVia>[0] {
  return {
    createNamespacedServiceAccountToken: async (p) =>
      (await client.request(
        'POST',
        `/api/v1/namespaces/${encodeURIComponent(p.namespace)}/serviceaccounts/${encodeURIComponent(p.name)}/token`,
        { body: p.body },
      )) as { status?: { token?: string; expirationTimestamp?: string } },
  };
}
