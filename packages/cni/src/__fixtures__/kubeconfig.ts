// Test-only: reads the API server a kubeconfig names and writes the kubeconfig the plugin uses
// inside a node namespace, where the server is reached through a forwarder at another address.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse } from 'yaml';

interface Doc {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster?: string } }[];
  clusters?: { name: string; cluster: Record<string, unknown> }[];
  users?: { name: string; user?: Record<string, unknown> }[];
}

export interface ApiEndpoint {
  url: URL;
  /** The host without IPv6 brackets, as net.connect wants it. */
  host: string;
  port: number;
  /** The kubeconfig's own tls-server-name, if it has one. */
  tlsServerName: string | undefined;
}

function load(path: string): { doc: Doc; cluster: Record<string, unknown> } {
  const doc = parse(readFileSync(path, 'utf8')) as Doc;
  const ctx =
    doc.contexts?.find((c) => c.name === doc['current-context'])?.context ?? doc.contexts?.[0]?.context;
  const entry = doc.clusters?.find((c) => c.name === ctx?.cluster) ?? doc.clusters?.[0];
  if (!entry || typeof entry.cluster.server !== 'string')
    throw new Error(`${path}: names no cluster with a server`);
  return { doc, cluster: entry.cluster };
}

export function apiEndpoint(kubeconfig: string): ApiEndpoint {
  const { cluster } = load(kubeconfig.split(':')[0]!);
  const url = new URL(cluster.server as string);
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  const sni = cluster['tls-server-name'];
  return {
    url,
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port,
    tlsServerName: typeof sni === 'string' && sni !== '' ? sni : undefined,
  };
}

/**
 * Copies `src` (its current context's cluster) to `dest` with another server address and
 * tls-server-name (`null` removes it); relative file references become absolute, as they were
 * relative to `src`.
 */
export function writePluginKubeconfig(
  src: string,
  dest: string,
  opts: { server: string; tlsServerName: string | null },
): void {
  const from = src.split(':')[0]!;
  const { doc, cluster } = load(from);
  const abs = (o: Record<string, unknown> | undefined, k: string) => {
    const v = o?.[k];
    if (o && typeof v === 'string' && v !== '' && !isAbsolute(v)) o[k] = resolve(dirname(from), v);
  };
  for (const c of doc.clusters ?? []) abs(c.cluster, 'certificate-authority');
  for (const u of doc.users ?? []) {
    for (const k of ['client-certificate', 'client-key', 'tokenFile']) abs(u.user, k);
  }
  cluster.server = opts.server;
  if (opts.tlsServerName === null) delete cluster['tls-server-name'];
  else cluster['tls-server-name'] = opts.tlsServerName;
  writeFileSync(dest, JSON.stringify(doc, null, 2), { mode: 0o600 });
}
