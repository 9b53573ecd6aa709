// `podnet-agent install-cni`: what the DaemonSet's init container runs. Puts the CNI plugin on the
// host (the bundled plugin `podnet-cni.cjs`, the rtnetlink addon `podnet_native.node` beside it,
// the Node binary that runs it and a `podnet` wrapper), writes the
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
  /** The plugin bundle (default: @podnet/cni's dist/podnet-cni-bundle.cjs next to this package). */
  pluginBundle?: string;
  /**
   * The rtnetlink addon the bundle loads from its own directory (default: podnet_native.node beside
   * the bundle). Without it the plugin still works, through `ip`/`nsenter`, and says so.
   */
  nativeAddon?: string;
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
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../cni/dist/podnet-cni-bundle.cjs');
}

/** Names of what lands in the CNI bin directory. */
export const CNI_BIN_FILES = {
  bundle: 'podnet-cni.cjs',
  addon: 'podnet_native.node',
  node: 'podnet-node',
  wrapper: 'podnet',
} as const;

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
  // The addon goes first: a plugin run between the two copies finds either both or the old pair.
  const addon = o.nativeAddon ?? join(dirname(bundle), CNI_BIN_FILES.addon);
  if (existsSync(addon)) {
    const dst = join(o.binDir, CNI_BIN_FILES.addon);
    atomicCopy(addon, dst, 0o755);
    files.push(dst);
  } else if (o.nativeAddon !== undefined) {
    throw new AgentError(
      'AGENT_ERR_CONFIG',
      `rtnetlink addon ${addon} not found; build @podnet/native first`,
    );
  } else {
    o.logger?.warn(
      { addon },
      'rtnetlink addon not found beside the CNI bundle; the plugin will fall back to ip/nsenter',
    );
  }
  const js = join(o.binDir, CNI_BIN_FILES.bundle);
  atomicCopy(bundle, js, 0o755);
  files.push(js);
  const nodeBin = join(o.binDir, CNI_BIN_FILES.node);
  atomicCopy(o.nodeBinary ?? process.execPath, nodeBin, 0o755);
  files.push(nodeBin);
  const wrapper = join(o.binDir, CNI_BIN_FILES.wrapper);
  atomicWrite(
    wrapper,
    `#!/bin/sh\nd=$(dirname "$0")\nexec "$d/${CNI_BIN_FILES.node}" "$d/${CNI_BIN_FILES.bundle}" "$@"\n`,
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
