// The agent's path to the API server without loading all of @kubernetes/client-node.
//
// Importing the package's index (or its config.js, which imports the generated index) loads every
// generated API class and model: about 80 MB of RSS in a process that uses a dozen requests. This
// reads the kubeconfig with client-node's own parts that stand alone (config_types.js for the
// clusters, users and contexts; file_auth.js for the in-cluster token file, re-read as it rotates;
// exec_auth.js for exec credential plugins) and sends requests over node:https with one pooled
// keep-alive agent per TLS material. A kubeconfig this does not cover (auth-provider plugins such as
// oidc, azure, gcp; proxies) gives `undefined`, and KubeClient then loads client-node in full.
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import {
  ActionOnInvalid,
  type Cluster,
  type Context,
  newClusters,
  newContexts,
  newUsers,
  type User,
} from '@kubernetes/client-node/dist/config_types.js';
import { ExecAuth } from '@kubernetes/client-node/dist/exec_auth.js';
import { FileAuth } from '@kubernetes/client-node/dist/file_auth.js';
import { parse as parseYaml } from 'yaml';

const SA = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The current cluster and user of a kubeconfig, as client-node's KubeConfig reads them. */
export interface KubeTarget {
  cluster: Cluster;
  user: User;
}

function fromFile(file: string): {
  clusters: Cluster[];
  users: User[];
  contexts: Context[];
  current?: string;
} {
  const obj = (parseYaml(readFileSync(file, 'utf8')) ?? {}) as Record<string, unknown>;
  const opts = { onInvalidEntry: ActionOnInvalid.FILTER };
  const abs = (p: string | undefined) => (p && !isAbsolute(p) ? join(dirname(file), p) : p);
  const clusters = newClusters(obj.clusters as never, opts).map((c) => ({ ...c, caFile: abs(c.caFile) }));
  const users = newUsers(obj.users as never, opts).map((u) => ({
    ...u,
    certFile: abs(u.certFile),
    keyFile: abs(u.keyFile),
  }));
  return {
    clusters,
    users,
    contexts: newContexts(obj.contexts as never, opts),
    current: obj['current-context'] as string | undefined,
  };
}

/**
 * The cluster and user the same search as loadKubeConfig finds (the given file, else $KUBECONFIG,
 * else in-cluster, else ~/.kube/config), or undefined when this module cannot serve them.
 */
export function loadKubeTarget(kubeconfigPath?: string): KubeTarget | undefined {
  if (!kubeconfigPath && !process.env.KUBECONFIG && process.env.KUBERNETES_SERVICE_HOST) {
    const host = process.env.KUBERNETES_SERVICE_HOST;
    const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
    return {
      cluster: {
        name: 'inCluster',
        server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
        caFile: `${SA}/ca.crt`,
        skipTLSVerify: false,
      },
      user: {
        name: 'inClusterUser',
        authProvider: { name: 'tokenFile', config: { tokenFile: `${SA}/token` } },
      },
    };
  }
  const files = kubeconfigPath
    ? [kubeconfigPath]
    : (process.env.KUBECONFIG?.split(':').filter(Boolean) ?? [join(homedir(), '.kube', 'config')]);
  const merged = { clusters: [] as Cluster[], users: [] as User[], contexts: [] as Context[], current: '' };
  for (const f of files) {
    const c = fromFile(f);
    merged.clusters.push(...c.clusters);
    merged.users.push(...c.users);
    merged.contexts.push(...c.contexts);
    if (!merged.current && c.current) merged.current = c.current;
  }
  const ctx = merged.contexts.find((c) => c.name === merged.current);
  const cluster = merged.clusters.find((c) => c.name === ctx?.cluster);
  const user = merged.users.find((u) => u.name === ctx?.user) ?? { name: 'user' };
  if (!cluster || cluster.proxyUrl) return undefined;
  if (user.authProvider && !user.authProvider.config?.tokenFile) return undefined;
  if (cluster.server.startsWith('http:') && !cluster.skipTLSVerify) return undefined;
  return { cluster, user };
}

/** An HTTP failure with the status and the body, mapped by toK8sError like client-node's ApiException. */
export class HttpStatusError extends Error {
  constructor(
    readonly code: number,
    readonly body: string,
  ) {
    super(`HTTP-Code: ${code}`);
    this.name = 'HttpStatusError';
  }
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
}

const fileOrData = (file?: string, data?: string) =>
  file ? readFileSync(file) : data ? Buffer.from(data, 'base64') : undefined;

/** Headers and a pooled agent for one request. */
export type Authenticate = () => Promise<{ headers: Record<string, string>; agent: HttpAgent }>;

/** Authentication from a KubeTarget with client-node's token-file and exec parts. */
export function targetAuth(target: KubeTarget): Authenticate {
  const exec = new ExecAuth();
  const file = new FileAuth();
  const agents = new Map<string, HttpAgent>();
  const url = new URL(target.cluster.server);
  return async () => {
    const { cluster, user } = target;
    const opts: { headers: Record<string, string>; cert?: string | Buffer; key?: string | Buffer } = {
      headers: {},
    };
    if (exec.isAuthProvider(user)) await exec.applyAuthentication(user, opts as never);
    else if (file.isAuthProvider(user)) await file.applyAuthentication(user, opts as never);
    if (user.token) opts.headers.Authorization = `Bearer ${user.token}`;
    if (user.username)
      opts.headers.Authorization = `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;
    if (user.impersonateUser) opts.headers['Impersonate-User'] = user.impersonateUser;
    const tls = {
      ca: fileOrData(cluster.caFile, cluster.caData),
      cert: opts.cert ?? fileOrData(user.certFile, user.certData),
      key: opts.key ?? fileOrData(user.keyFile, user.keyData),
      ...(cluster.skipTLSVerify ? { rejectUnauthorized: false } : {}),
      ...(cluster.tlsServerName ? { servername: cluster.tlsServerName } : {}),
    };
    const key = JSON.stringify([tls.ca, tls.cert, tls.key].map((b) => b?.toString('base64') ?? ''));
    let agent = agents.get(key);
    if (!agent) {
      agent =
        url.protocol === 'http:'
          ? new HttpAgent({ keepAlive: true, keepAliveMsecs: 30_000 })
          : new HttpsAgent({ keepAlive: true, keepAliveMsecs: 30_000, ...tls });
      agents.set(key, agent);
    }
    return { headers: opts.headers, agent };
  };
}

/** Requests over pooled keep-alive connections, authenticated per request (tokens rotate). */
export class Transport {
  private readonly url: URL;
  private readonly used = new Set<HttpAgent>();

  constructor(
    server: string,
    private readonly authenticate: Authenticate,
  ) {
    this.url = new URL(server);
  }

  private async auth() {
    const a = await this.authenticate();
    this.used.add(a.agent);
    return a;
  }

  /** Opens a request; the response is returned unread (a watch streams it). */
  async open(method: string, path: string, o: RequestOptions = {}): Promise<IncomingMessage> {
    const { headers, agent } = await this.auth();
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined && v !== '') qs.set(k, String(v));
    const prefix = this.url.pathname.replace(/\/+$/, '');
    const text = o.body === undefined ? undefined : JSON.stringify(o.body);
    const h: Record<string, string> = { accept: 'application/json', ...headers };
    if (text !== undefined) {
      h['content-type'] = o.contentType ?? 'application/json';
      h['content-length'] = String(Buffer.byteLength(text));
    }
    const send = this.url.protocol === 'http:' ? httpRequest : httpsRequest;
    return await new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname.replace(/^\[|\]$/g, ''),
          port: this.url.port,
          path: `${prefix}${path}${qs.size ? `?${qs}` : ''}`,
          method,
          headers: h,
          agent,
          ...(o.signal ? { signal: o.signal } : {}),
        },
        resolve,
      );
      req.on('error', reject);
      req.end(text);
    });
  }

  /** One JSON request: the parsed body of a 2xx answer, else HttpStatusError. */
  async request(method: string, path: string, o: RequestOptions = {}): Promise<unknown> {
    const res = await this.open(method, path, o);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const out = Buffer.concat(chunks).toString('utf8');
    const code = res.statusCode ?? 0;
    if (code < 200 || code > 299) throw new HttpStatusError(code, out);
    return out ? JSON.parse(out) : {};
  }

  close(): void {
    for (const a of this.used) a.destroy();
    this.used.clear();
  }
}
