// The status endpoint: /livez, /readyz, /metrics and /status (the JSON podnetctl reads).
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import { type HttpListener, listenHttp } from './http-listener.js';
import type { Advertisement, NodeIdentity, PeerType } from './model.js';
import type { NetfilterStatus } from './netfilter-sync.js';
import type { Condition, KernelRouteState, PeerState } from './ports.js';

/** One BGP session as /status reports it. */
export interface PeerStatusView {
  address: string;
  port: number;
  type: PeerType;
  /** The BGPPeer, `node-to-node-mesh` or `route-reflector`. */
  source: string;
  nodeName?: string;
  localAs: number;
  remoteAs: number;
  passive: boolean;
  state: PeerState;
  /** ISO time the session entered its state. */
  since: string;
  prefixesReceived: number;
  prefixesAdvertised: number;
  lastError?: string;
}

export interface RouteStatusView {
  dst: string;
  type: 'local' | 'blackhole' | 'remote';
  /** Where the route comes from: a pod, an owned block, or a BGP path. */
  source: string;
  iface?: string;
  via?: string[];
  /** For a BGP route: the peer (address:port) its best path came from. */
  peer?: string;
  /**
   * From the kernel's answers (see RoutesStatus): `installed` only once the kernel acknowledged
   * the route and a later dump holds it; `not-started` before the first reconcile.
   */
  state: KernelRouteState | 'not-started';
  /** Why, when not installed (the kernel's error, the interface it waits for, …). */
  detail?: string;
}

/** The JSON document served at /status (the contract with podnetctl). */
export interface AgentStatus {
  version: 1;
  node: NodeIdentity;
  ready: boolean;
  readiness: { synced: boolean; routesApplied: boolean; sessionsUp: boolean; reasons: string[] };
  datastore: { synced: boolean; reachable: boolean };
  routeProtocol: { number: number; name: string };
  peers: PeerStatusView[];
  routes: RouteStatusView[];
  advertisements: Advertisement[];
  arp: { mode: 'userspace' | 'kernel'; interfaces: string[]; replies: number };
  problems: string[];
  /**
   * States of the node's data path worth acting on: a sysctl /proc/sys refuses to set (fails
   * /readyz), a next hop with no route in the kernel (its paths are left out of best-path).
   */
  conditions: Condition[];
  /** The `inet podnet` nf_tables table (absent with --netfilter off). */
  netfilter?: NetfilterStatus;
  /** The IPAM blocks affine to this node and the addresses allocated in them. */
  ipam?: { blocks: { cidr: string; inUse: number; free: number }[]; addressesInUse: number };
  /** The last timer-driven resync (`--resync-interval`): kernel dump, recompute, apply. */
  lastResync?: { time: string; durationSeconds: number };
  startedAt: string;
}

export interface StatusSource {
  live(): boolean;
  status(): AgentStatus;
  metrics(): Promise<{ contentType: string; body: string }>;
}

export type StatusServer = HttpListener;

/** Starts the HTTP endpoint on `host:port` (`[v6]:port` accepted). */
export async function startStatusServer(
  listen: string,
  src: StatusSource,
  log: Logger,
): Promise<StatusServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return send(405, 'text/plain', 'method not allowed\n');
      switch (path) {
        case '/livez':
          return src.live()
            ? send(200, 'text/plain', 'ok\n')
            : send(503, 'text/plain', 'event loop stalled\n');
        case '/readyz': {
          const s = src.status();
          return s.ready
            ? send(200, 'text/plain', 'ok\n')
            : send(503, 'text/plain', `not ready: ${s.readiness.reasons.join('; ')}\n`);
        }
        case '/status':
          return send(200, 'application/json', `${JSON.stringify(src.status(), null, 2)}\n`);
        case '/metrics':
          src.metrics().then(
            (r) => send(200, r.contentType, r.body),
            (err) => send(500, 'text/plain', `metrics failed: ${(err as Error).message}\n`),
          );
          return;
        default:
          return send(404, 'text/plain', 'not found: try /livez /readyz /metrics /status\n');
      }
    } catch (err) {
      log.error({ err, path }, 'status request failed');
      send(500, 'text/plain', `${(err as Error).message}\n`);
    }
  });
  return listenHttp(
    server,
    { flag: '--status-listen', code: 'AGENT_ERR_STATUS_LISTEN' },
    listen,
    'status endpoint',
    log,
  );
}
