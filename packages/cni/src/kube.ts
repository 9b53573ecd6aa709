// A minimal Kubernetes API client for the plugin's few calls, over node:http(s) with keep-alive.
// @kubernetes/client-node takes 100-200 ms to load, longer than the whole ADD; this loads in a
// few milliseconds. It reads a kubeconfig (server, CA, token or client certificate) or the
// in-cluster service account, and maps failures onto CNI codes: unreachable or timed out → 11.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { now } from './clock.js';
import { CniError, CniErrorCode } from './errors.js';

export interface KubeTarget {
  server: URL;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  token?: string;
  /** HTTP basic credentials (kubeconfig username/password; deprecated by Kubernetes, still read). */
  basic?: { username: string; password: string };
  insecure?: boolean;
  /**
   * kubeconfig `tls-server-name`: the name sent in SNI and checked against the server's
   * certificate instead of the server URL's host (an IP name is checked but not sent: SNI carries
   * host names only, RFC 6066 section 3).
   */
  tlsServerName?: string;
}

type Entry<K extends string, V> = { name: string } & { [P in K]?: V };

interface ClusterFields {
  server?: string;
  'tls-server-name'?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'proxy-url'?: string;
}

interface UserFields {
  token?: string;
  tokenFile?: string;
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  username?: string;
  password?: string;
  exec?: unknown;
  'auth-provider'?: unknown;
}

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: Entry<'context', { cluster?: string; user?: string }>[];
  clusters?: Entry<'cluster', ClusterFields>[];
  users?: Entry<'user', UserFields>[];
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

function configError(path: string, msg: string): CniError {
  return new CniError(CniErrorCode.InvalidConfig, `kubeconfig ${path}: ${msg}`);
}
/** The yaml parser, loaded on first use (see loadPino in log.ts for the pattern). */
function parseYaml(text: string): unknown {
  const yaml = (
    typeof require === 'function' ? require('yaml') : createRequire(import.meta.url)('yaml')
  ) as typeof import('yaml');
  return yaml.parse(text);
}

/**
 * Parses a kubeconfig, reusing the parse of an unchanged file: YAML parsing costs more than the
 * rest of a DEL. The parsed form is kept in the plugin's cache dir (mode 0600, like the file it
 * mirrors), keyed by path, size, mtime and inode.
 */
function readKubeconfig(path: string, cacheDir: string | undefined): KubeconfigFile {
  const st = statSync(path);
  const key = `${st.size}:${st.mtimeMs}:${st.ino}`;
  const sub = cacheDir ? join(cacheDir, 'kubeconfig') : undefined;
  const cacheFile = sub
    ? join(sub, `${createHash('sha1').update(path).digest('hex').slice(0, 16)}.json`)
    : undefined;
  if (cacheFile) {
    try {
      const c = JSON.parse(readFileSync(cacheFile, 'utf8')) as { key: string; doc: KubeconfigFile };
      if (c.key === key) return c.doc;
    } catch {
      // No cache yet, or a torn one: parse the file.
    }
  }
  const text = readFileSync(path, 'utf8');
  const doc = (text.trimStart().startsWith('{') ? JSON.parse(text) : parseYaml(text)) as KubeconfigFile;
  if (cacheFile && sub) {
    try {
      mkdirSync(sub, { recursive: true, mode: 0o700 });
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify({ key, doc }), { mode: 0o600 });
      renameSync(tmp, cacheFile);
    } catch {
      // A read-only cache dir only costs the next call a parse.
    }
  }
  return doc;
}

/** One named entry of a (merged) kubeconfig, with the file it came from (relative paths are resolved from there). */
interface Found<V> {
  value: V;
  file: string;
  field: string;
}

/**
 * The merged view of the kubeconfig files, as kubectl merges KUBECONFIG: the first file that sets
 * current-context wins, and the first entry with a given name wins.
 */
function mergeKubeconfigs(files: string[], cacheDir: string | undefined) {
  let current: string | undefined;
  const contexts = new Map<string, Found<{ cluster?: string; user?: string }>>();
  const clusters = new Map<string, Found<ClusterFields>>();
  const users = new Map<string, Found<UserFields>>();
  for (const file of files) {
    let doc: KubeconfigFile;
    try {
      doc = (readKubeconfig(file, cacheDir) ?? {}) as KubeconfigFile;
    } catch (err) {
      throw configError(file, `cannot be read: ${(err as Error).message}`);
    }
    if (typeof doc !== 'object' || doc === null) throw configError(file, 'is not a kubeconfig object');
    current ??= doc['current-context'] || undefined;
    const add = <V>(
      map: Map<string, Found<V>>,
      list: unknown,
      kind: 'contexts' | 'clusters' | 'users',
      key: string,
    ) => {
      if (list === undefined || list === null) return;
      if (!Array.isArray(list))
        throw configError(file, `${kind} must be a list, not ${JSON.stringify(list)}`);
      for (const e of list as Record<string, unknown>[]) {
        const name = e?.name;
        if (typeof name !== 'string') throw configError(file, `${kind}: an entry has no name`);
        if (map.has(name)) continue;
        map.set(name, { value: (e[key] ?? {}) as V, file, field: `${kind}[name=${name}].${key}` });
      }
    };
    add(contexts, doc.contexts, 'contexts', 'context');
    add(clusters, doc.clusters, 'clusters', 'cluster');
    add(users, doc.users, 'users', 'user');
  }
  return { current, contexts, clusters, users };
}

function decodeData(file: string, field: string, data: string): Buffer {
  const compact = String(data).replace(/\s+/g, '');
  if (compact === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) {
    throw configError(file, `${field} is not base64: ${JSON.stringify(String(data).slice(0, 40))}`);
  }
  return Buffer.from(compact, 'base64');
}

function readRef(file: string, field: string, ref: string): Buffer {
  const path = isAbsolute(ref) ? ref : resolve(dirname(file), ref);
  try {
    return readFileSync(path);
  } catch (err) {
    throw configError(file, `${field} = ${JSON.stringify(ref)} cannot be read: ${(err as Error).message}`);
  }
}

function fileOrData<V>(
  e: Found<V>,
  fileKey: keyof V & string,
  dataKey: keyof V & string,
): Buffer | undefined {
  const v = e.value as Record<string, unknown>;
  const data = v[dataKey];
  if (typeof data === 'string' && data !== '') return decodeData(e.file, `${e.field}.${dataKey}`, data);
  const ref = v[fileKey];
  if (typeof ref === 'string' && ref !== '') return readRef(e.file, `${e.field}.${fileKey}`, ref);
  return undefined;
}

/**
 * Reads the cluster to talk to: the kubeconfig file(s) (a KUBECONFIG-style list separated by ':'),
 * else the in-cluster service account. Reads what kubeconfigs for real clusters carry: server,
 * tls-server-name, certificate-authority(-data), insecure-skip-tls-verify, token / tokenFile,
 * client-certificate(-data) / client-key(-data), username/password. Credential plugins (exec,
 * auth-provider) and proxy-url are refused with code 7 naming the field: the plugin runs without
 * a shell environment and must not depend on one.
 */
export function loadKubeTarget(
  kubeconfig: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  cacheDir?: string,
): KubeTarget {
  if (!kubeconfig) {
    const host = env.KUBERNETES_SERVICE_HOST;
    const port = env.KUBERNETES_SERVICE_PORT ?? '443';
    if (!host) {
      throw new CniError(
        CniErrorCode.InvalidConfig,
        'no kubeconfig: set "kubeconfig" in the network configuration or KUBECONFIG',
      );
    }
    return {
      server: new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`),
      ca: readFileSync(`${SA_DIR}/ca.crt`),
      token: readFileSync(`${SA_DIR}/token`, 'utf8').trim(),
    };
  }
  const files = kubeconfig.split(':').filter((f) => f !== '');
  const where = files.join(':');
  const m = mergeKubeconfigs(files, cacheDir);
  const ctx = m.current !== undefined ? m.contexts.get(m.current) : m.contexts.values().next().value;
  if (m.current !== undefined && !ctx)
    throw configError(where, `current-context ${JSON.stringify(m.current)} is not among contexts`);
  const clusterName = ctx?.value.cluster;
  const cluster = clusterName !== undefined ? m.clusters.get(clusterName) : m.clusters.values().next().value;
  if (!cluster) {
    throw configError(
      where,
      clusterName !== undefined
        ? `${ctx?.field}.cluster names ${JSON.stringify(clusterName)}, which is not among clusters`
        : 'names no cluster with a server',
    );
  }
  const c = cluster.value;
  if (typeof c.server !== 'string' || c.server === '')
    throw configError(cluster.file, `${cluster.field}.server is missing: names no cluster with a server`);
  let server: URL;
  try {
    server = new URL(c.server);
  } catch {
    throw configError(cluster.file, `${cluster.field}.server = ${JSON.stringify(c.server)} is not a URL`);
  }
  if (server.protocol !== 'https:' && server.protocol !== 'http:') {
    throw configError(
      cluster.file,
      `${cluster.field}.server = ${JSON.stringify(c.server)} must be https:// or http://`,
    );
  }
  if (c['proxy-url']) {
    throw configError(
      cluster.file,
      `${cluster.field}.proxy-url = ${JSON.stringify(c['proxy-url'])}: proxies are not supported by podnet-cni`,
    );
  }
  const t: KubeTarget = { server };
  const ca = fileOrData(cluster, 'certificate-authority', 'certificate-authority-data');
  if (ca) t.ca = ca;
  const insecure = c['insecure-skip-tls-verify'];
  if (insecure === true || String(insecure) === 'true') t.insecure = true;
  const sni = c['tls-server-name'];
  if (sni !== undefined && sni !== '') {
    if (typeof sni !== 'string' || /[\s/@]/.test(sni)) {
      throw configError(
        cluster.file,
        `${cluster.field}.tls-server-name = ${JSON.stringify(sni)} is not a host name`,
      );
    }
    t.tlsServerName = sni;
  }

  const userName = ctx?.value.user;
  const user = userName !== undefined ? m.users.get(userName) : undefined;
  if (userName !== undefined && userName !== '' && !user) {
    throw configError(
      where,
      `${ctx?.field}.user names ${JSON.stringify(userName)}, which is not among users`,
    );
  }
  if (user) {
    const u = user.value;
    const cert = fileOrData(user, 'client-certificate', 'client-certificate-data');
    const key = fileOrData(user, 'client-key', 'client-key-data');
    if ((cert === undefined) !== (key === undefined)) {
      throw configError(
        user.file,
        `${user.field} has a client ${cert ? 'certificate but no key' : 'key but no certificate'}`,
      );
    }
    if (cert && key) {
      t.cert = cert;
      t.key = key;
    }
    if (typeof u.token === 'string' && u.token !== '') t.token = u.token;
    else if (typeof u.tokenFile === 'string' && u.tokenFile !== '') {
      const token = readRef(user.file, `${user.field}.tokenFile`, u.tokenFile).toString('utf8').trim();
      if (token === '')
        throw configError(user.file, `${user.field}.tokenFile = ${JSON.stringify(u.tokenFile)} is empty`);
      t.token = token;
    }
    if (typeof u.username === 'string' && u.username !== '' && !t.token) {
      t.basic = { username: u.username, password: String(u.password ?? '') };
    }
    const plugin = u.exec ? 'exec' : u['auth-provider'] ? 'auth-provider' : undefined;
    if (plugin && !t.token && !t.cert && !t.basic) {
      throw configError(
        user.file,
        `${user.field}.${plugin}: credential plugins are not supported by podnet-cni; give it a kubeconfig with a token, tokenFile or client certificate (e.g. a service account's)`,
      );
    }
  }
  return t;
}

/** An HTTP error answered by the API server, with its Status reason. */
export class KubeHttpError extends Error {
  override readonly name = 'KubeHttpError';
  constructor(
    readonly status: number,
    readonly reason: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

export interface KubeResponse<T> {
  status: number;
  body: T;
}

/** Agent options for a kubeconfig tls-server-name: SNI for a host name, and the certificate check for either. */
export function tlsNameOptions(name: string | undefined): {
  servername?: string;
  checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined;
} {
  if (!name) return {};
  const bare = name.replace(/^\[(.*)\]$/, '$1');
  return {
    ...(isIP(bare) ? {} : { servername: bare }),
    checkServerIdentity: (_host, cert) => checkServerIdentity(bare, cert),
  };
}

/** A connection failure, named; a certificate that does not verify says what to check in the kubeconfig. */
function describeNetError(err: NodeJS.ErrnoException, target: KubeTarget): string {
  const code = err.code ?? '';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `${code}: ${err.message} (the certificate is checked against ${target.tlsServerName ? `tls-server-name ${target.tlsServerName}` : `the server's host ${target.server.hostname}; set tls-server-name in the kubeconfig if the certificate names the server otherwise`})`;
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    return `${code}: ${err.message} (check certificate-authority in the kubeconfig)`;
  }
  return code || err.message;
}

/** Connections kept per API server. */
const MAX_SOCKETS = 4;

export class MiniKube {
  /** Requests sent and the time spent waiting for them (logged with each ADD). */
  readonly stats = { requests: 0, ms: 0, calls: [] as string[] };
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly https: boolean;

  constructor(
    readonly target: KubeTarget,
    private readonly timeoutMs: number,
  ) {
    this.https = target.server.protocol === 'https:';
    const opts = { keepAlive: true, maxSockets: MAX_SOCKETS };
    this.agent = this.https
      ? new HttpsAgent({
          ...opts,
          ...(target.ca ? { ca: target.ca } : {}),
          ...(target.cert ? { cert: target.cert } : {}),
          ...(target.key ? { key: target.key } : {}),
          rejectUnauthorized: !target.insecure,
          ...tlsNameOptions(target.tlsServerName),
        })
      : new HttpAgent(opts);
  }

  /** Sends one request; a 4xx/5xx becomes a KubeHttpError, a network failure a CniError 11. */
  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<T> {
    const url = new URL(path, this.target.server);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { accept: 'application/json' };
    if (payload) {
      headers['content-type'] = contentType;
      headers['content-length'] = String(payload.length);
    }
    if (this.target.token) headers.authorization = `Bearer ${this.target.token}`;
    else if (this.target.basic) {
      const { username, password } = this.target.basic;
      headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    }
    const what = `${method} ${url.pathname}`;
    const t0 = now();
    this.stats.requests += 1;
    const send = () =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        let answered = false;
        const req = (this.https ? httpsRequest : httpRequest)(
          url,
          { method, headers, agent: this.agent, timeout: this.timeoutMs },
          (r: IncomingMessage) => {
            answered = true;
            const chunks: Buffer[] = [];
            r.on('data', (c: Buffer) => chunks.push(c));
            r.on('end', () =>
              resolve({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
            );
            r.on('error', reject);
          },
        );
        req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
        req.on('error', (err: NodeJS.ErrnoException) => {
          // A kept-alive connection the server closed while idle (its keep-alive timeout) fails the
          // next request sent on it before any answer: that request never reached the server.
          if (req.reusedSocket && !answered && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
            reject(Object.assign(err, { staleConnection: true }));
          } else reject(err);
        });
        req.end(payload);
      });
    // Each pooled connection may be stale; a new one is opened once they are used up.
    const sendFresh = async (): Promise<{ status: number; text: string }> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await send();
        } catch (err) {
          const e = err as NodeJS.ErrnoException & { staleConnection?: boolean };
          if (!e.staleConnection || attempt >= MAX_SOCKETS) throw err;
          this.stats.calls.push(`${what} sent again (${e.code} on a kept-alive connection)`);
        }
      }
    };
    const res = await sendFresh().catch((err: NodeJS.ErrnoException) => {
      throw new CniError(
        CniErrorCode.TryAgainLater,
        `Kubernetes API ${this.target.server.origin} unreachable (${what}): ${describeNetError(err, this.target)}`,
        undefined,
        { cause: err },
      );
    });
    this.stats.ms += now() - t0;
    this.stats.calls.push(`${what} ${res.status} ${Math.round(now() - t0)}ms`);
    let parsed: unknown;
    try {
      parsed = res.text ? JSON.parse(res.text) : undefined;
    } catch {
      parsed = res.text;
    }
    if (res.status >= 400) {
      const st = (typeof parsed === 'object' && parsed ? parsed : {}) as {
        reason?: string;
        message?: string;
      };
      if (res.status >= 500 || res.status === 429) {
        throw new CniError(
          CniErrorCode.TryAgainLater,
          `Kubernetes API answered ${res.status} to ${what}: ${st.message ?? res.text}`,
        );
      }
      throw new KubeHttpError(res.status, st.reason, `${what}: ${res.status} ${st.message ?? res.text}`);
    }
    return parsed as T;
  }

  close(): void {
    this.agent.destroy();
  }
}
