// `podnet-agent install-cni`: what the DaemonSet's init container runs. Puts the CNI plugin on the
// host (the bundled plugin, the Node binary that runs it and a `podnet` wrapper), writes the
// conflist and a kubeconfig for the plugin. Every file is written to a temporary name and renamed,
// so the kubelet never sees half a file.
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { AgentError } from './errors.js';

export const CONFLIST_NAME = '10-podnet.conflist';
export const CNI_KUBECONFIG_NAME = 'podnet-kubeconfig';

export const DEFAULT_CONFLIST = `{
  "cniVersion": "1.0.0",
  "name": "podnet",
  "plugins": [
    {
      "type": "podnet",
      "kubeconfig": "__KUBECONFIG__",
      "nodeName": "__NODENAME__",
      "ipam": { "assign_ipv4": true }
    },
    { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true }
  ]
}
`;

export interface InstallCniOptions {
  nodeName: string;
  binDir: string;
  confDir: string;
  /** The plugin bundle (default: @podnet/cni's dist next to this package). */
  pluginBundle?: string;
  /** The Node binary that runs the plugin (default: this process's). */
  nodeBinary?: string;
  /** A conflist template (default: /etc/podnet/10-podnet.conflist if present, else DEFAULT_CONFLIST). */
  conflistTemplate?: string;
  /** Kubeconfig for the plugin: copied from this file… */
  kubeconfigPath?: string;
  /** …or built from a service-account token directory (token, ca.crt) and the in-cluster server. */
  tokenDir?: string;
  server?: string;
  logger?: Logger;
}

function atomicWrite(path: string, data: string | Buffer, mode: number) {
  const tmp = `${path}.podnet-tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function atomicCopy(src: string, dst: string, mode: number) {
  const tmp = `${dst}.podnet-tmp`;
  copyFileSync(src, tmp);
  chmodSync(tmp, mode);
  renameSync(tmp, dst);
}

export function defaultPluginBundle(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../cni/dist/podnet-cni-bundle.js');
}

export function installCni(o: InstallCniOptions): { files: string[] } {
  const bundle = o.pluginBundle ?? defaultPluginBundle();
  if (!existsSync(bundle))
    throw new AgentError(
      'AGENT_ERR_CONFIG',
      `CNI plugin bundle ${bundle} not found; build @podnet/cni first (npm run build)`,
    );
  mkdirSync(o.binDir, { recursive: true });
  mkdirSync(o.confDir, { recursive: true });
  const files: string[] = [];
  const js = join(o.binDir, 'podnet-cni.js');
  atomicCopy(bundle, js, 0o755);
  files.push(js);
  const nodeBin = join(o.binDir, 'podnet-node');
  atomicCopy(o.nodeBinary ?? process.execPath, nodeBin, 0o755);
  files.push(nodeBin);
  const wrapper = join(o.binDir, 'podnet');
  atomicWrite(
    wrapper,
    '#!/bin/sh\nd=$(dirname "$0")\nexec "$d/podnet-node" "$d/podnet-cni.js" "$@"\n',
    0o755,
  );
  files.push(wrapper);

  const kubeconfig = join(o.confDir, CNI_KUBECONFIG_NAME);
  if (o.tokenDir) {
    const token = readFileSync(join(o.tokenDir, 'token'), 'utf8').trim();
    const ca = readFileSync(join(o.tokenDir, 'ca.crt')).toString('base64');
    const server =
      o.server ??
      (process.env.KUBERNETES_SERVICE_HOST
        ? `https://${process.env.KUBERNETES_SERVICE_HOST.includes(':') ? `[${process.env.KUBERNETES_SERVICE_HOST}]` : process.env.KUBERNETES_SERVICE_HOST}:${process.env.KUBERNETES_SERVICE_PORT ?? 443}`
        : undefined);
    if (!server)
      throw new AgentError(
        'AGENT_ERR_CONFIG',
        'cannot build the CNI kubeconfig: KUBERNETES_SERVICE_HOST is not set',
      );
    atomicWrite(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '  - name: local',
        '    cluster:',
        `      server: ${server}`,
        `      certificate-authority-data: ${ca}`,
        'users:',
        '  - name: podnet-cni',
        '    user:',
        `      token: ${token}`,
        'contexts:',
        '  - name: podnet-cni',
        '    context: { cluster: local, user: podnet-cni }',
        'current-context: podnet-cni',
        '',
      ].join('\n'),
      0o600,
    );
    files.push(kubeconfig);
  } else if (o.kubeconfigPath) {
    atomicCopy(o.kubeconfigPath, kubeconfig, 0o600);
    files.push(kubeconfig);
  }

  const template =
    o.conflistTemplate ??
    (existsSync(`/etc/podnet/${CONFLIST_NAME}`)
      ? readFileSync(`/etc/podnet/${CONFLIST_NAME}`, 'utf8')
      : DEFAULT_CONFLIST);
  const conflist = template.replaceAll('__KUBECONFIG__', kubeconfig).replaceAll('__NODENAME__', o.nodeName);
  try {
    JSON.parse(conflist);
  } catch (err) {
    throw new AgentError(
      'AGENT_ERR_CONFIG',
      `conflist template is not valid JSON: ${(err as Error).message}`,
    );
  }
  const conf = join(o.confDir, CONFLIST_NAME);
  atomicWrite(conf, conflist, 0o644);
  files.push(conf);
  o.logger?.info({ files }, 'CNI plugin installed');
  return { files };
}
