// `podnet-agent install-cni`: what the DaemonSet's init container runs. Puts the CNI plugin on the
// host (the shim `podnet` that hands commands to the agent, the standalone launcher
// `podnet-standalone` it falls back to, the bundled plugin `podnet-cni.cjs`, its startup snapshot
// `podnet-cni.snapshot`, the rtnetlink addon `podnet_native.node` beside it, and the host's own Node
// when it is recent enough, else a copy `podnet-node`), writes the
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
  /**
   * The Node binary to copy beside the plugin. Given, it is always copied; otherwise the host's own
   * Node is used when one of `hostNodes` is recent enough, and this process's Node is copied if not.
   */
  nodeBinary?: string;
  /**
   * Host Node binaries to try instead of copying one (host paths; default DEFAULT_HOST_NODES; []
   * always copies). One is used when it runs and is at least MIN_HOST_NODE.
   */
  hostNodes?: string[];
  /**
   * Where this process sees the host's root (default '/': install-cni runs on the host). Otherwise
   * a host Node is checked by running it under `chroot hostRoot` (CAP_SYS_CHROOT).
   */
  hostRoot?: string;
  /** Where the host sees binDir (default binDir): the path the host's Node is probed with. */
  hostBinDir?: string;
  /** The CNI shim (default: podnet-cni-shim beside the bundle, when there). */
  shim?: string;
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
  /** The plugin the runtime runs (the conflist's type): the shim, or the standalone launcher. */
  wrapper: 'podnet',
  /** The standalone plugin's launcher when the shim is installed as `podnet` (the shim execs it). */
  standalone: 'podnet-standalone',
  /** The shim in @podnet/cni's dist. */
  shimSource: 'podnet-cni-shim',
} as const;

/** The oldest Node the bundle runs on (process.getBuiltinModule). */
export const MIN_HOST_NODE = '22.3.0';
/** Where a host's Node usually is. */
export const DEFAULT_HOST_NODES = ['/usr/local/bin/node', '/usr/bin/node'];

/** What runs the plugin: the host's own Node or a copy in the CNI bin directory. */
export interface InstalledNode {
  source: 'host' | 'copy';
  /** The path the host runs (in the wrapper). */
  path: string;
  version: string;
  /** Host Node binaries looked at and why each was not used. */
  rejected: { path: string; reason: string }[];
}

const newer = (v: string, min: string) => {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
};

/** Runs a Node binary as the host would (under chroot when the host's root is elsewhere). */
function runHostNode(o: InstallCniOptions, node: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const root = o.hostRoot ?? '/';
  const [cmd, argv] = root === '/' ? [node, args] : ['chroot', [root, node, ...args]];
  return spawnSync(cmd, argv, {
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
    input: '',
    encoding: 'utf8',
    timeout: 20_000,
  });
}

/** The first of o.hostNodes that runs and is recent enough, and why the others were not used. */
export function findHostNode(o: InstallCniOptions): {
  found?: { path: string; version: string };
  rejected: { path: string; reason: string }[];
} {
  const rejected: { path: string; reason: string }[] = [];
  for (const path of o.hostNodes ?? DEFAULT_HOST_NODES) {
    if (!existsSync(join(o.hostRoot ?? '/', path))) {
      rejected.push({ path, reason: 'not found' });
      continue;
    }
    const r = runHostNode(o, path, ['-p', 'process.versions.node']);
    const version = r.status === 0 ? r.stdout.trim() : '';
    if (!/^\d+\.\d+\.\d+$/.test(version)) {
      rejected.push({ path, reason: `does not run: ${(r.stderr || r.error?.message || r.stdout).trim()}` });
    } else if (!newer(version, MIN_HOST_NODE)) {
      rejected.push({ path, reason: `version ${version} is older than ${MIN_HOST_NODE}` });
    } else {
      return { found: { path, version }, rejected };
    }
  }
  return { rejected };
}

/**
 * Copies the plugin's startup snapshot and checks that the installed Node starts from it (a
 * snapshot works only with the very Node binary that built it). Returns its installed path, or
 * undefined when there is none or it does not start (the wrapper then runs the bundle).
 */
function installSnapshot(o: InstallCniOptions, bundle: string, node: InstalledNode): string | undefined {
  const src = o.pluginSnapshot ?? join(dirname(bundle), CNI_BIN_FILES.snapshot);
  const dst = join(o.binDir, CNI_BIN_FILES.snapshot);
  if (!existsSync(src)) {
    if (o.pluginSnapshot !== undefined)
      throw new AgentError('AGENT_ERR_CONFIG', `CNI plugin snapshot ${src} not found`);
    rmSync(dst, { force: true });
    return undefined;
  }
  atomicCopy(src, dst, 0o644);
  // As the host runs it: the host's paths, and the host's Node under chroot when that is elsewhere.
  const hostBin = node.source === 'host' ? (o.hostBinDir ?? o.binDir) : o.binDir;
  const probe =
    node.source === 'host'
      ? runHostNode(o, node.path, ['--snapshot-blob', join(hostBin, CNI_BIN_FILES.snapshot), hostBin], {
          CNI_COMMAND: 'VERSION',
        })
      : spawnSync(join(o.binDir, CNI_BIN_FILES.node), ['--snapshot-blob', dst, o.binDir], {
          env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: 'VERSION' },
          input: '',
          encoding: 'utf8',
          timeout: 20_000,
        });
  if (probe.status === 0 && probe.stdout.includes('supportedVersions')) return dst;
  o.logger?.warn(
    { snapshot: src, node: node.path, error: (probe.stderr || probe.error?.message || probe.stdout).trim() },
    'the CNI plugin snapshot does not start with the installed Node: the plugin runs from the bundle',
  );
  rmSync(dst, { force: true });
  return undefined;
}

export function installCni(o: InstallCniOptions): { files: string[]; node: InstalledNode; shim: boolean } {
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
  // The host's own Node when it will do; a copy of ours (about 100 MB) otherwise.
  const host = o.nodeBinary === undefined ? findHostNode(o) : { rejected: [] };
  const copied = join(o.binDir, CNI_BIN_FILES.node);
  let node: InstalledNode;
  if (host.found) {
    node = { source: 'host', ...host.found, rejected: host.rejected };
  } else {
    atomicCopy(o.nodeBinary ?? process.execPath, copied, 0o755);
    files.push(copied);
    node = {
      source: 'copy',
      path: copied,
      version: o.nodeBinary === undefined ? process.versions.node : 'given',
      rejected: host.rejected,
    };
  }
  const snapshot = installSnapshot(o, bundle, node);
  if (snapshot) files.push(snapshot);
  // The standalone launcher: `podnet` itself without the shim, `podnet-standalone` beside it with.
  const shimSrc = o.shim ?? join(dirname(bundle), CNI_BIN_FILES.shimSource);
  const withShim = existsSync(shimSrc);
  if (!withShim && o.shim !== undefined)
    throw new AgentError('AGENT_ERR_CONFIG', `CNI shim ${shimSrc} not found`);
  const launcher = join(o.binDir, withShim ? CNI_BIN_FILES.standalone : CNI_BIN_FILES.wrapper);
  // The directory is taken from $0 without running dirname (one process less per pod).
  const exe =
    node.source === 'host' ? `'${node.path.replaceAll("'", "'\\''")}'` : `"$d/${CNI_BIN_FILES.node}"`;
  const run = snapshot
    ? `exec ${exe} --snapshot-blob "$d/${CNI_BIN_FILES.snapshot}" "$d"`
    : `exec ${exe} "$d/${CNI_BIN_FILES.bundle}" "$@"`;
  atomicWrite(launcher, `#!/bin/sh\ncase $0 in */*) d=\${0%/*} ;; *) d=. ;; esac\n${run}\n`, 0o755);
  files.push(launcher);
  if (withShim) {
    // Last: the shim execs the launcher written above.
    const wrapper = join(o.binDir, CNI_BIN_FILES.wrapper);
    atomicCopy(shimSrc, wrapper, 0o755);
    files.push(wrapper);
  } else {
    rmSync(join(o.binDir, CNI_BIN_FILES.standalone), { force: true });
  }
  // A copy from an earlier install is no longer run once the launcher names the host's Node.
  if (node.source === 'host') rmSync(copied, { force: true });

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
  o.logger?.info(
    {
      files,
      node: { source: node.source, path: node.path, version: node.version },
      hostNodesNotUsed: node.rejected,
      snapshot: snapshot !== undefined,
      shim: withShim,
    },
    node.source === 'host'
      ? `CNI plugin installed: runs on the host's Node ${node.path} (${node.version}), nothing copied`
      : `CNI plugin installed with a copy of Node ${node.version} (no usable Node on the host)`,
  );
  return { files, node, shim: withShim };
}
