// A minimal Kubernetes API client for the plugin's few calls, over node:http(s) with keep-alive.
// @kubernetes/client-node takes 100-200 ms to load, longer than the whole ADD; this loads in a
// few milliseconds. It reads a kubeconfig (server, CA, token or client certificate) or the
// in-cluster service account, and maps failures onto CNI codes: unreachable or timed out → 11.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { CniError, CniErrorCode } from './errors.js';

export interface KubeTarget {
  server: URL;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  token?: string;
  insecure?: boolean;
}

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user?: string } }[];
  clusters?: {
    name: string;
    cluster: {
      server: string;
      'certificate-authority'?: string;
      'certificate-authority-data'?: string;
      'insecure-skip-tls-verify'?: boolean;
    };
  }[];
  users?: {
    name: string;
    user?: {
      token?: string;
      tokenFile?: string;
      'client-certificate'?: string;
      'client-certificate-data'?: string;
      'client-key'?: string;
      'client-key-data'?: string;
    };
  }[];
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

/** Reads the cluster to talk to: the kubeconfig file, else the in-cluster service account. */
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
  let doc: KubeconfigFile;
  try {
    doc = readKubeconfig(kubeconfig, cacheDir);
  } catch (err) {
    throw configError(kubeconfig, `cannot be read: ${(err as Error).message}`);
  }
  const ctxName = doc['current-context'];
  const ctx = doc.contexts?.find((c) => c.name === ctxName)?.context ?? doc.contexts?.[0]?.context;
  const cluster = doc.clusters?.find((c) => c.name === ctx?.cluster)?.cluster ?? doc.clusters?.[0]?.cluster;
  if (!cluster?.server) throw configError(kubeconfig, 'names no cluster with a server');
  const user = doc.users?.find((u) => u.name === ctx?.user)?.user ?? {};
  const fileOrData = (file?: string, data?: string) =>
    data ? Buffer.from(data, 'base64') : file ? readFileSync(file) : undefined;
  const t: KubeTarget = { server: new URL(cluster.server) };
  const ca = fileOrData(cluster['certificate-authority'], cluster['certificate-authority-data']);
  if (ca) t.ca = ca;
  const cert = fileOrData(user['client-certificate'], user['client-certificate-data']);
  if (cert) t.cert = cert;
  const key = fileOrData(user['client-key'], user['client-key-data']);
  if (key) t.key = key;
  const token = user.token ?? (user.tokenFile ? readFileSync(user.tokenFile, 'utf8').trim() : undefined);
  if (token) t.token = token;
  if (cluster['insecure-skip-tls-verify']) t.insecure = true;
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

export class MiniKube {
  /** Requests sent and the time spent waiting for them (logged with each ADD). */
  readonly stats = { requests: 0, ms: 0 };
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly https: boolean;

  constructor(
    readonly target: KubeTarget,
    private readonly timeoutMs: number,
  ) {
    this.https = target.server.protocol === 'https:';
    const opts = { keepAlive: true, maxSockets: 4 };
    this.agent = this.https
      ? new HttpsAgent({
          ...opts,
          ...(target.ca ? { ca: target.ca } : {}),
          ...(target.cert ? { cert: target.cert } : {}),
          ...(target.key ? { key: target.key } : {}),
          rejectUnauthorized: !target.insecure,
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
    const what = `${method} ${url.pathname}`;
    const t0 = performance.now();
    this.stats.requests += 1;
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = (this.https ? httpsRequest : httpRequest)(
        url,
        { method, headers, agent: this.agent, timeout: this.timeoutMs },
        (r: IncomingMessage) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () =>
            resolve({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          r.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    }).catch((err: NodeJS.ErrnoException) => {
      throw new CniError(
        CniErrorCode.TryAgainLater,
        `Kubernetes API ${this.target.server.origin} unreachable (${what}): ${err.code ?? err.message}`,
        undefined,
        { cause: err },
      );
    });
    this.stats.ms += performance.now() - t0;
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
