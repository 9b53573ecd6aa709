// @podnet/apiserver: an embedded Kubernetes API server for the lab and tests.
// Serves core/v1 Nodes, Pods, Namespaces, Secrets, Services (cluster IPs and node ports allocated),
// discovery.k8s.io/v1 EndpointSlices, ServiceAccounts (with TokenRequest), the kinds
// deploy/ installs, apiextensions/v1 CRDs and their custom resources with kube-apiserver semantics,
// over HTTPS (self-signed) or HTTP, with bearer-token auth (its own token, or service account tokens).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { kubeconfigYaml } from './kubeconfig.js';
import { ApiCore, generateToken, type LoggerLike, listen, silentLogger } from './server.js';
import { serviceNetwork as buildServiceNetwork } from './service-alloc.js';
import { Store } from './store.js';
import { altNames, selfSignedCert, type TlsMaterial } from './tls.js';
import { type StaticToken, staticTokenUsers } from './tokens.js';

export { ApiError, ApiErrorCode, type Status, type StatusCause } from './errors.js';
export { kubeconfigYaml } from './kubeconfig.js';
export { jsonPatch, mergePatch } from './patch.js';
export { type LabelRequirement, matchesLabels, parseLabelSelector } from './selectors.js';
export type { LoggerLike, RequestCount } from './server.js';
export { parseTokenAuthFile, type StaticToken } from './tokens.js';

export interface ApiServerOptions {
  /** 0 (the default) picks an ephemeral port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Serve HTTPS with a generated self-signed certificate (default true). */
  tls?: boolean;
  /** Bearer token clients must present; generated when absent (and kept in dataFile if there is one). */
  token?: string;
  /** Persist objects here (atomic writes, debounced); a restart resumes objects and resourceVersion. */
  dataFile?: string;
  /** Write the kubeconfig here. */
  kubeconfigPath?: string;
  /** Extra names or addresses for the certificate and the kubeconfig's server (first one) — e.g. the lab's address. */
  advertise?: string[];
  logger?: LoggerLike;
  /** Events kept for watch resumption; older resourceVersions get 410 Gone. Default 10000. */
  historySize?: number;
  /** How often a watch with allowWatchBookmarks gets a BOOKMARK. Default 10 s. */
  bookmarkIntervalMs?: number;
  /**
   * `interval` (default): a BOOKMARK every bookmarkIntervalMs. `before-timeout`: only one, 2 s before
   * the watch's `timeoutSeconds` ends, like kube-apiserver 1.20 (for tests that must hold on both).
   */
  bookmarkMode?: 'interval' | 'before-timeout';
  /**
   * Service cluster IPs (kube-apiserver's `--service-cluster-ip-range`): one CIDR, or one per IP
   * family with the primary family first. Default 10.96.0.0/12 and fd00:10:96::/108 (dual-stack).
   */
  serviceClusterIPRange?: string[];
  /** Service node ports (`--service-node-port-range`). Default 30000-32767. */
  serviceNodePortRange?: string;
  /**
   * More bearer tokens, each naming a user (kube-apiserver's --token-auth-file). Requests are
   * counted per user either way: GET /debug/podnet/requests.
   */
  staticTokens?: StaticToken[];
}

export interface ApiServer {
  url: string;
  token: string;
  kubeconfigPath?: string;
  /** The kubeconfig, as YAML text. */
  kubeconfig: string;
  close(): Promise<void>;
}

export async function startApiServer(opts: ApiServerOptions = {}): Promise<ApiServer> {
  const log = (opts.logger ?? silentLogger).child({ component: 'apiserver' });
  const serviceNetwork = buildServiceNetwork(
    opts.serviceClusterIPRange ?? ['10.96.0.0/12', 'fd00:10:96::/108'],
    opts.serviceNodePortRange,
  );
  const host = opts.host ?? '127.0.0.1';
  const store = new Store({
    historySize: opts.historySize ?? 10_000,
    ...(opts.dataFile ? { dataFile: opts.dataFile } : {}),
    onPersistError: (err) =>
      log.error({ err: String(err), file: opts.dataFile }, 'cannot write the data file'),
  });
  if (store.load()) log.info({ file: opts.dataFile, revision: store.revision }, 'loaded the data file');

  const token = opts.token ?? (typeof store.extra.token === 'string' ? store.extra.token : generateToken());
  let tls: TlsMaterial | undefined;
  if (opts.tls !== false) {
    const saved = store.extra.tls as (TlsMaterial & { sans?: string[] }) | undefined;
    const sans = altNames(host, opts.advertise ?? []);
    if (saved && Array.isArray(saved.sans) && sans.every((s) => saved.sans!.includes(s))) tls = saved;
    else {
      tls = await selfSignedCert(sans);
      store.extra.tls = { ...tls, sans };
    }
  }
  if (opts.dataFile && (store.extra.token !== token || opts.tls !== false)) {
    store.extra.token = token;
    store.markDirty();
  }

  const core = new ApiCore({
    token,
    store,
    logger: log,
    bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 10_000,
    ...(opts.bookmarkMode ? { bookmarkMode: opts.bookmarkMode } : {}),
    maxBodyBytes: 3 * 1024 * 1024,
    serviceNetwork,
    ...(opts.staticTokens?.length ? { staticTokens: staticTokenUsers(opts.staticTokens) } : {}),
  });
  const listener = await listen(core, { host, port: opts.port ?? 0, ...(tls ? { tls } : {}) });
  const port = listener.address.port;
  const urlHost = opts.advertise?.[0] ?? (host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host);
  const url = `${tls ? 'https' : 'http'}://${urlHost.includes(':') ? `[${urlHost}]` : urlHost}:${port}`;
  const kubeconfig = kubeconfigYaml({ server: url, token, ...(tls ? { caPem: tls.cert } : {}) });
  if (opts.kubeconfigPath) {
    mkdirSync(dirname(opts.kubeconfigPath), { recursive: true });
    writeFileSync(opts.kubeconfigPath, kubeconfig, { mode: 0o600 });
  }
  log.info({ url, tls: !!tls, dataFile: opts.dataFile, kubeconfig: opts.kubeconfigPath }, 'listening');

  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      core.endWatches();
      await new Promise<void>((resolve) => {
        listener.server.close(() => resolve());
        listener.server.closeIdleConnections();
        setTimeout(() => {
          for (const s of listener.sockets) s.destroy();
        }, 1000).unref();
      });
      await store.drain();
      log.info({ url }, 'stopped');
    })();
    return closed;
  };
  const server: ApiServer = { url, token, kubeconfig, close };
  if (opts.kubeconfigPath) server.kubeconfigPath = opts.kubeconfigPath;
  return server;
}
