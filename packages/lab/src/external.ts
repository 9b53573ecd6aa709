// An outside Kubernetes API server named by a kubeconfig (KUBECONFIG mode): what the runner needs to
// talk to it, and the kubeconfig the lab's nodes use to reach it through the lab's API address.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { LabError, LabErrorCode } from './errors.js';

export interface ExternalApi {
  file: string;
  server: URL;
  caPem?: string;
  certPem?: string;
  keyPem?: string;
  token?: string;
  insecure: boolean;
  tlsServerName?: string;
}

type Dict = Record<string, unknown>;
const named = (list: unknown, name: unknown, what: string, file: string): Dict => {
  const found = Array.isArray(list) ? (list as Dict[]).find((x) => x.name === name) : undefined;
  if (!found)
    throw new LabError(LabErrorCode.usage, `kubeconfig ${file}: no ${what} named ${JSON.stringify(name)}`);
  return found;
};

/** Reads the current context's cluster and user of a kubeconfig file. */
export function readKubeconfig(file: string): ExternalApi {
  let doc: Dict;
  try {
    doc = parse(readFileSync(file, 'utf8')) as Dict;
  } catch (err) {
    throw new LabError(LabErrorCode.usage, `kubeconfig ${file}: ${(err as Error).message}`, { cause: err });
  }
  const ctx = (named(doc.contexts, doc['current-context'], 'context', file).context ?? {}) as Dict;
  const cluster = (named(doc.clusters, ctx.cluster, 'cluster', file).cluster ?? {}) as Dict;
  const user = (named(doc.users, ctx.user, 'user', file).user ?? {}) as Dict;
  const base = dirname(file);
  const data = (inline: unknown, path: unknown): string | undefined => {
    if (typeof inline === 'string') return Buffer.from(inline, 'base64').toString('utf8');
    if (typeof path === 'string') return readFileSync(resolve(base, path), 'utf8');
    return undefined;
  };
  if (typeof cluster.server !== 'string') {
    throw new LabError(
      LabErrorCode.usage,
      `kubeconfig ${file}: cluster ${JSON.stringify(ctx.cluster)} has no server`,
    );
  }
  const api: ExternalApi = {
    file,
    server: new URL(cluster.server),
    insecure: cluster['insecure-skip-tls-verify'] === true,
  };
  const ca = data(cluster['certificate-authority-data'], cluster['certificate-authority']);
  const cert = data(user['client-certificate-data'], user['client-certificate']);
  const key = data(user['client-key-data'], user['client-key']);
  if (ca) api.caPem = ca;
  if (cert) api.certPem = cert;
  if (key) api.keyPem = key;
  if (typeof user.token === 'string') api.token = user.token;
  if (typeof cluster['tls-server-name'] === 'string') api.tlsServerName = cluster['tls-server-name'];
  return api;
}

/**
 * The name the lab's nodes check the server certificate against when they reach the server by
 * the lab's address: the kubeconfig's tls-server-name, else its host name, else `kubernetes`
 * (a name every kube-apiserver serving certificate carries).
 */
export function serverNameFor(api: ExternalApi): string {
  if (api.tlsServerName) return api.tlsServerName;
  const host = api.server.hostname.replace(/^\[|\]$/g, '');
  return isIP(host) ? 'kubernetes' : host;
}

/**
 * A kubeconfig for the lab's nodes: the outside server's credentials, the server reached by the
 * name its certificate carries (`serverNameFor`) on `port`. The lab maps that name to the API
 * service's lab address in the nodes' /etc/netns/<ns>/hosts, so clients that ignore
 * tls-server-name verify the certificate too.
 */
export function bridgedKubeconfig(api: ExternalApi, port: number): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const name = serverNameFor(api);
  const host = isIP(name) === 6 ? `[${name}]` : name;
  const cluster = [`      server: ${api.server.protocol}//${host}:${port}`];
  if (api.server.protocol !== 'https:' || api.insecure) cluster.push('      insecure-skip-tls-verify: true');
  else if (api.caPem) cluster.push(`      certificate-authority-data: ${b64(api.caPem)}`);
  const user: string[] = [];
  if (api.token) user.push(`      token: ${api.token}`);
  if (api.certPem) user.push(`      client-certificate-data: ${b64(api.certPem)}`);
  if (api.keyPem) user.push(`      client-key-data: ${b64(api.keyPem)}`);
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '  - name: podnet-lab-external',
    '    cluster:',
    ...cluster,
    'users:',
    '  - name: podnet-lab-external',
    '    user:',
    ...(user.length ? user : ['      {}']),
    'contexts:',
    '  - name: podnet-lab-external',
    '    context:',
    '      cluster: podnet-lab-external',
    '      user: podnet-lab-external',
    'current-context: podnet-lab-external',
    '',
  ].join('\n');
}
