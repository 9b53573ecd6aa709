// `podnet-agent install-cni`: what the DaemonSet's init container runs. Puts the CNI plugin on the
// host (the bundled plugin `podnet-cni.cjs`, its startup snapshot `podnet-cni.snapshot`, the
// rtnetlink addon `podnet_native.node` beside it, the Node binary that runs it and a `podnet`
// wrapper), writes the
// conflist and a kubeconfig for the plugin. Every file is written to a temporary name and renamed,
// so the kubelet never sees half a file.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
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
  /** Where the files are written (in the DaemonSet's init container: the host's dir mounted at /host/…). */
  confDir: string;
  /**
   * Where the host (kubelet, container runtime, the plugin they run) sees confDir: the paths written
   * into the conflist are made from it. Default: confDir (install-cni running on the host itself).
   * Nothing else written names a path: the `podnet` wrapper finds the Node binary, the bundle and the
   * snapshot beside itself, and the kubeconfig carries its CA and token inline.
   */
  hostConfDir?: string;
  /** The plugin bundle (default: @podnet/cni's dist/podnet-cni-bundle.cjs next to this package). */
  pluginBundle?: string;
  /**
   * The rtnetlink addon the bundle loads from its own directory (default: podnet_native.node beside
   * the bundle). Without it the plugin still works, through `ip`/`nsenter`, and says so.
   */
  nativeAddon?: string;
  /** The Node binary that runs the plugin (default: this process's). */
  nodeBinary?: string;
  /**
   * The plugin's V8 startup snapshot (default: podnet-cni.snapshot beside the bundle, when there).
   * It is installed only if the installed Node starts from it; otherwise the wrapper runs the bundle.
   */
  pluginSnapshot?: string;
  /** A conflist template (default: /etc/podnet/10-podnet.conflist if present, else DEFAULT_CONFLIST). */
  conflistTemplate?: string;
  /** Kubeconfig for the plugin: copied from this file… */
  kubeconfigPath?: string;
  /** …or built from a service-account token directory (token, ca.crt) and the in-cluster server. */
  tokenDir?: string;
  /**
   * With tokenDir: the kubeconfig names this token file, relative to itself (`tokenFile`), instead
   * of embedding tokenDir's token; the agent keeps the file fresh (cni-token.ts). Only ca.crt is
   * read from tokenDir then.
   */
  tokenFile?: string;
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
  snapshot: 'podnet-cni.snapshot',
  addon: 'podnet_native.node',
  node: 'podnet-node',
  wrapper: 'podnet',
} as const;

/**
 * Copies the plugin's startup snapshot and checks that the installed Node starts from it (a
 * snapshot works only with the very Node binary that built it). Returns its installed path, or
 * undefined when there is none or it does not start (the wrapper then runs the bundle).
 */
function installSnapshot(o: InstallCniOptions, bundle: string, nodeBin: string): string | undefined {
  const src = o.pluginSnapshot ?? join(dirname(bundle), CNI_BIN_FILES.snapshot);
  const dst = join(o.binDir, CNI_BIN_FILES.snapshot);
  if (!existsSync(src)) {
    if (o.pluginSnapshot !== undefined)
      throw new AgentError('AGENT_ERR_CONFIG', `CNI plugin snapshot ${src} not found`);
    rmSync(dst, { force: true });
    return undefined;
  }
  atomicCopy(src, dst, 0o644);
  const probe = spawnSync(nodeBin, ['--snapshot-blob', dst, o.binDir], {
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: 'VERSION' },
    input: '',
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (probe.status === 0 && probe.stdout.includes('supportedVersions')) return dst;
  o.logger?.warn(
    { snapshot: src, node: nodeBin, error: (probe.stderr || probe.error?.message || probe.stdout).trim() },
    'the CNI plugin snapshot does not start with the installed Node: the plugin runs from the bundle',
  );
  rmSync(dst, { force: true });
  return undefined;
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
  const snapshot = installSnapshot(o, bundle, nodeBin);
  if (snapshot) files.push(snapshot);
  const wrapper = join(o.binDir, CNI_BIN_FILES.wrapper);
  // The directory is taken from $0 without running dirname (one process less per pod).
  const run = snapshot
    ? `exec "$d/${CNI_BIN_FILES.node}" --snapshot-blob "$d/${CNI_BIN_FILES.snapshot}" "$d"`
    : `exec "$d/${CNI_BIN_FILES.node}" "$d/${CNI_BIN_FILES.bundle}" "$@"`;
  atomicWrite(wrapper, `#!/bin/sh\ncase $0 in */*) d=\${0%/*} ;; *) d=. ;; esac\n${run}\n`, 0o755);
  files.push(wrapper);

  const kubeconfig = join(o.confDir, CNI_KUBECONFIG_NAME);
  if (o.tokenDir) {
    const user = o.tokenFile
      ? `tokenFile: ${o.tokenFile}`
      : `token: ${readFileSync(join(o.tokenDir, 'token'), 'utf8').trim()}`;
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
        `      ${user}`,
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
  // The conflist is read by the host: its paths are host paths, not this process's.
  const hostKubeconfig = join(o.hostConfDir ?? o.confDir, CNI_KUBECONFIG_NAME);
  const conflist = template
    .replaceAll('__KUBECONFIG__', hostKubeconfig)
    .replaceAll('__NODENAME__', o.nodeName);
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
