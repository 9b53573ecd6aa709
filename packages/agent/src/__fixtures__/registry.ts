// The agent's metrics registry, wired as cli.ts wires it: createMetrics, the route programmer, the
// ARP responder, the BGP adapter (BFD) and the CNI token refresher all register into one. Only constructors run: no
// socket is opened. docs/metrics.md and deploy/observability/ are checked against it.
import pino from 'pino';
import type { Registry } from 'prom-client';
import { ArpAdapter } from '../adapters/arp.js';
import { BgpAdapter } from '../adapters/bgp.js';
import { RoutesAdapter } from '../adapters/routes.js';
import { CniTokenRefresher } from '../cni-token.js';
import { createMetrics } from '../metrics.js';

/** The agent's registry, wired as cli.ts wires it (no socket is opened: only constructors run). */
export function agentRegistry(defaultMetrics: boolean): Registry {
  const log = pino({ level: 'silent' });
  const metrics = createMetrics({ defaultMetrics });
  const registry = metrics.registry;
  new RoutesAdapter({ logger: log, registry, resyncIntervalMs: 30_000, removeForeignOnPodIfaces: false });
  new ArpAdapter({ mode: 'userspace', logger: log, registry });
  new BgpAdapter({ logger: log, restarting: false, registry });
  new CniTokenRefresher({
    spec: {
      namespace: 'podnet-system',
      serviceAccount: 'podnet-cni',
      audiences: [],
      expirationSeconds: 3600,
    },
    request: async () => {
      throw new Error('not called');
    },
    dir: '/nonexistent',
    log,
    registry,
  });
  return registry;
}
