#!/usr/bin/env node
// podnet-agent: the node daemon's entry point. See README.md for the options.
import { readFileSync } from 'node:fs';
import { Ipam } from '@podnet/ipam';
import { KubeClient } from '@podnet/k8s';
import { PODNET_PROTO, procSysctl } from '@podnet/routes';
import { Rtnl } from '@podnet/rtnetlink';
import pino from 'pino';
import { ArpAdapter } from './adapters/arp.js';
import { BgpAdapter } from './adapters/bgp.js';
import { KubeDatastore } from './adapters/datastore.js';
import { canReach, listInterfaces, ROUTE_PROTOCOL, RoutesAdapter } from './adapters/routes.js';
import { Agent } from './agent.js';
import { CNI_TOKEN_NAME, CniTokenRefresher, requestTokenVia, type TokenRequestSpec } from './cni-token.js';
import { type AgentConfig, helpText, type LoadedConfig, loadConfig } from './config.js';
import { startDefaultObjects } from './defaults.js';
import { installCni } from './install-cni.js';
import { createMetrics } from './metrics.js';
import { startMetricsListener } from './metrics-listener.js';
import { parseSysctlConf } from './node-sysctls.js';
import { startStatusServer } from './status.js';

/** True when podnet's routes are already in the kernel: we are coming back from a graceful stop. */
async function hasPodnetRoutes(): Promise<boolean> {
  try {
    const nl = await Rtnl.open({});
    try {
      return (await nl.routes.list({ protocol: PODNET_PROTO })).length > 0;
    } finally {
      nl.close();
    }
  } catch {
    return false;
  }
}

/** What the CNI token is asked for, or undefined outside a pod (no --pod-name: the lab, tests). */
function cniTokenSpec(config: AgentConfig): TokenRequestSpec | undefined {
  if (!config.podName) return undefined;
  return {
    namespace: config.namespace,
    serviceAccount: config.cniServiceAccount,
    pod: { name: config.podName, ...(config.podUid ? { uid: config.podUid } : {}) },
    audiences: config.cniTokenAudience ? [config.cniTokenAudience] : [],
    expirationSeconds: Math.round(config.cniTokenExpiration / 1000),
  };
}

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
  const log = pino({ level: config.logLevel, base: { node: config.nodeName } });

  const sub = loaded.positionals[0];
  if (sub === 'install-cni') {
    // In the DaemonSet: the first pod-bound token goes in before the conflist, so the plugin has a
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
          request: requestTokenVia(client.core),
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
      ...(process.env.PODNET_CNI_TOKEN_DIR ? { tokenDir: process.env.PODNET_CNI_TOKEN_DIR } : {}),
      ...(spec ? { tokenFile: CNI_TOKEN_NAME } : {}),
      ...(config.kubeconfig ? { kubeconfigPath: config.kubeconfig } : {}),
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
  const metrics = createMetrics({ defaultMetrics: true });
  // The default IPPool(s) and BGPConfiguration, when absent (deploy/ cannot apply them with the CRDs).
  const defaults = startDefaultObjects(
    client,
    config,
    log.child({ component: 'defaults' }),
    config.apiRetryInterval,
  );
  const ipam = new Ipam({ client, logger: log });
  const restarting = await hasPodnetRoutes();
  const agent = new Agent({
    config,
    log,
    metrics,
    datastore: new KubeDatastore(client, {
      nodeName: config.nodeName,
      namespace: config.namespace,
      logger: log,
    }),
    bgp: new BgpAdapter({ logger: log, restarting }),
    routes: new RoutesAdapter({
      logger: log,
      registry: metrics.registry,
      resyncIntervalMs: config.resyncInterval,
      removeForeignOnPodIfaces: config.removeUnownedPodRoutes,
    }),
    arp: new ArpAdapter({ mode: config.arpMode, logger: log, registry: metrics.registry }),
    routeProtocol: ROUTE_PROTOCOL,
    // Node objects are authoritative here: a deleted node's last blocks go too.
    ipamGc: (graceMs) => ipam.gc({ graceMs, deletedNodes: true, keepLastBlock: config.ipamGcKeepLastBlock }),
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
  const metricsListener =
    config.metricsListen === 'none'
      ? undefined
      : await startMetricsListener(
          config.metricsListen,
          async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
          log.child({ component: 'metrics' }),
        );
  const tokenSpec = cniTokenSpec(config);
  const cniToken = tokenSpec
    ? new CniTokenRefresher({
        spec: tokenSpec,
        request: requestTokenVia(client.core),
        dir: config.cniConfDir,
        log: log.child({ component: 'cni-token' }),
        registry: metrics.registry,
      })
    : undefined;
  // A failed first request is logged and retried by the refresher; the agent goes on.
  cniToken?.start().catch(() => {});
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection (continuing)'));
  await agent.start();
  log.info({ restarting }, 'podnet-agent running');

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
      log.info({ signal }, 'graceful stop: keeping kernel routes, graceful restart towards peers');
      const force = setTimeout(() => resolve(1), 20_000);
      force.unref();
      void agent
        .stop({ graceful: true })
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
