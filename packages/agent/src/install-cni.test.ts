import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { defaultPluginBundle, installCni } from './install-cni.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'podnet-install-cni-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Runs the installed `podnet` wrapper as the kubelet runs a plugin (VERSION), from `cwd`. */
function versionOf(binDir: string, cwd: string): unknown {
  const out = execFileSync(join(binDir, 'podnet'), [], {
    cwd,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: 'VERSION' },
    input: '{"cniVersion":"1.0.0"}',
    encoding: 'utf8',
    timeout: 20_000,
  });
  return JSON.parse(out);
}

describe('installCni', () => {
  it('installs the plugin, its wrapper, a token kubeconfig and the conflist for this node', () => {
    const root = tmp();
    const bundle = join(root, 'bundle.cjs');
    writeFileSync(bundle, 'console.log("cni")');
    writeFileSync(join(root, 'podnet_native.node'), 'addon');
    const tokenDir = join(root, 'token');
    mkdirSync(tokenDir);
    writeFileSync(join(tokenDir, 'token'), 'tok123\n');
    writeFileSync(join(tokenDir, 'ca.crt'), 'CA');
    const binDir = join(root, 'bin');
    const confDir = join(root, 'net.d');
    const { files } = installCni({
      nodeName: 'node-a',
      binDir,
      confDir,
      pluginBundle: bundle,
      nodeBinary: bundle,
      tokenDir,
      server: 'https://10.96.0.1:443',
    });
    expect(files.map((f) => f.slice(root.length))).toEqual([
      '/bin/podnet_native.node',
      '/bin/podnet-cni.cjs',
      '/bin/podnet-node',
      '/bin/podnet',
      '/net.d/podnet-kubeconfig',
      '/net.d/10-podnet.conflist',
    ]);
    expect(statSync(join(binDir, 'podnet')).mode & 0o111).toBeTruthy();
    const conf = JSON.parse(readFileSync(join(confDir, '10-podnet.conflist'), 'utf8'));
    expect(conf.plugins[0]).toMatchObject({
      type: 'podnet',
      nodeName: 'node-a',
      kubeconfig: join(confDir, 'podnet-kubeconfig'),
    });
    const kc = readFileSync(join(confDir, 'podnet-kubeconfig'), 'utf8');
    expect(kc).toContain('token: tok123');
    expect(kc).toContain('server: https://10.96.0.1:443');
    expect(statSync(join(confDir, 'podnet-kubeconfig')).mode & 0o077).toBe(0);
  });

  it('installs the built plugin so that the wrapper runs it with the rtnetlink addon beside it', () => {
    const bundle = defaultPluginBundle();
    if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run the build of @podnet/cni first`);
    const root = tmp();
    const binDir = join(root, 'bin');
    const { node, shim } = installCni({
      nodeName: 'node-a',
      binDir,
      confDir: join(root, 'net.d'),
      hostNodes: [],
    });
    expect(existsSync(join(binDir, 'podnet_native.node'))).toBe(true);
    expect(node).toMatchObject({ source: 'copy', path: join(binDir, 'podnet-node') });
    // The runtime runs the shim; it execs the standalone launcher when the agent does not answer.
    expect(shim).toBe(true);
    expect(readFileSync(join(binDir, 'podnet'))).toEqual(
      readFileSync(join(dirname(defaultPluginBundle()), 'podnet-cni-shim')),
    );
    // The bundle was built with this Node, and the installed Node is a copy of it: the snapshot is used.
    expect(readFileSync(join(binDir, 'podnet-standalone'), 'utf8')).toContain(
      '"$d/podnet-node" --snapshot-blob "$d/podnet-cni.snapshot" "$d"',
    );
    expect(existsSync(join(binDir, 'podnet-cni.snapshot'))).toBe(true);
    // The installed wrapper, run as the kubelet runs a plugin, from a directory outside any package.
    expect(versionOf(binDir, root)).toMatchObject({
      supportedVersions: expect.arrayContaining(['1.0.0', '1.1.0']),
    });
  });

  it('runs the bundle when the installed Node cannot start from the snapshot', () => {
    const bundle = defaultPluginBundle();
    if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run the build of @podnet/cni first`);
    const root = tmp();
    const binDir = join(root, 'bin');
    const notASnapshot = join(root, 'other.snapshot');
    writeFileSync(notASnapshot, 'not a V8 snapshot');
    const warnings: string[] = [];
    const logger = { warn: (_: unknown, msg: string) => warnings.push(msg), info() {} };
    const { files } = installCni({
      nodeName: 'node-a',
      binDir,
      confDir: join(root, 'net.d'),
      pluginSnapshot: notASnapshot,
      hostNodes: [],
      logger: logger as never,
    });
    expect(warnings.join('\n')).toContain('does not start with the installed Node');
    expect(files).not.toContain(join(binDir, 'podnet-cni.snapshot'));
    expect(existsSync(join(binDir, 'podnet-cni.snapshot'))).toBe(false);
    expect(readFileSync(join(binDir, 'podnet-standalone'), 'utf8')).toContain(
      '"$d/podnet-node" "$d/podnet-cni.cjs" "$@"',
    );
    expect(versionOf(binDir, root)).toMatchObject({ supportedVersions: expect.arrayContaining(['1.0.0']) });
  });

  it("runs the plugin on the host's own Node when it is recent enough, copies none and removes an earlier copy", () => {
    const root = tmp();
    const binDir = join(root, 'bin');
    mkdirSync(binDir);
    writeFileSync(join(binDir, 'podnet-node'), 'a copy from an earlier install');
    const infos: { obj: unknown; msg: string }[] = [];
    const logger = { warn() {}, info: (obj: unknown, msg: string) => infos.push({ obj, msg }) };
    // This test's own Node stands for the host's (it built the snapshot, so the snapshot is used too).
    const { node, files } = installCni({
      nodeName: 'node-a',
      binDir,
      confDir: join(root, 'net.d'),
      hostNodes: [join(root, 'no-such-node'), process.execPath],
      logger: logger as never,
    });
    expect(node).toEqual({
      source: 'host',
      path: process.execPath,
      version: process.versions.node,
      rejected: [{ path: join(root, 'no-such-node'), reason: 'not found' }],
    });
    expect(existsSync(join(binDir, 'podnet-node'))).toBe(false);
    expect(files).not.toContain(join(binDir, 'podnet-node'));
    expect(readFileSync(join(binDir, 'podnet-standalone'), 'utf8')).toContain(
      `exec '${process.execPath}' --snapshot-blob "$d/podnet-cni.snapshot" "$d"`,
    );
    expect(infos.at(-1)?.msg).toBe(
      `CNI plugin installed: runs on the host's Node ${process.execPath} (${process.versions.node}), nothing copied`,
    );
    // The shim, with no agent to answer, runs the standalone launcher on the host's Node.
    expect(versionOf(binDir, root)).toMatchObject({ supportedVersions: expect.arrayContaining(['1.1.0']) });
  });

  it("copies Node when the host's is too old or does not run, and says why", () => {
    const root = tmp();
    const old = join(root, 'old-node');
    writeFileSync(old, '#!/bin/sh\necho 20.19.0\n');
    chmodSync(old, 0o755);
    const broken = join(root, 'broken-node');
    writeFileSync(broken, '#!/bin/sh\necho "cannot execute binary file" >&2\nexit 126\n');
    chmodSync(broken, 0o755);
    const infos: { obj: unknown; msg: string }[] = [];
    const logger = { warn() {}, info: (obj: unknown, msg: string) => infos.push({ obj, msg }) };
    const binDir = join(root, 'bin');
    const { node } = installCni({
      nodeName: 'node-a',
      binDir,
      confDir: join(root, 'net.d'),
      hostNodes: [old, broken],
      logger: logger as never,
    });
    expect(node).toEqual({
      source: 'copy',
      path: join(binDir, 'podnet-node'),
      version: process.versions.node,
      rejected: [
        { path: old, reason: 'version 20.19.0 is older than 22.3.0' },
        { path: broken, reason: 'does not run: cannot execute binary file' },
      ],
    });
    expect(statSync(join(binDir, 'podnet-node')).size).toBe(statSync(process.execPath).size);
    expect(infos.at(-1)?.msg).toBe(
      `CNI plugin installed with a copy of Node ${process.versions.node} (no usable Node on the host)`,
    );
    expect(infos.at(-1)?.obj).toMatchObject({ hostNodesNotUsed: node.rejected, shim: true });
    expect(versionOf(binDir, root)).toMatchObject({ supportedVersions: expect.arrayContaining(['1.1.0']) });
  });

  it('fails naming the missing plugin bundle and what to do', () => {
    const root = tmp();
    expect(() =>
      installCni({
        nodeName: 'n',
        binDir: join(root, 'b'),
        confDir: join(root, 'c'),
        pluginBundle: join(root, 'none.js'),
      }),
    ).toThrow(/none\.js not found; build @podnet\/cni first/);
  });

  it('rejects a conflist template that is not JSON', () => {
    const root = tmp();
    const bundle = join(root, 'bundle.js');
    writeFileSync(bundle, '');
    expect(() =>
      installCni({
        nodeName: 'n',
        binDir: join(root, 'b'),
        confDir: join(root, 'c'),
        pluginBundle: bundle,
        nodeBinary: bundle,
        conflistTemplate: '{ nope',
      }),
    ).toThrow(/conflist template is not valid JSON/);
  });

  it('the DaemonSet gives install-cni the host path of the conf dir it mounts', () => {
    const file = resolve(dirname(fileURLToPath(import.meta.url)), '../../../deploy/daemonset.yaml');
    type Ds = {
      kind: string;
      spec: {
        template: {
          spec: {
            initContainers: {
              command: string[];
              env: { name: string; value?: string }[];
              volumeMounts: { name: string; mountPath: string }[];
            }[];
            volumes: { name: string; hostPath?: { path: string } }[];
          };
        };
      };
    };
    const ds = parseAllDocuments(readFileSync(file, 'utf8'))
      .map((d) => d.toJS() as Ds)
      .find((d) => d?.kind === 'DaemonSet')!;
    const pod = ds.spec.template.spec;
    const init = pod.initContainers.find((c) => c.command.includes('install-cni'))!;
    const env = Object.fromEntries(init.env.map((e) => [e.name, e.value]));
    const mount = init.volumeMounts.find((m) => m.mountPath === env.PODNET_CNI_CONF_DIR)!;
    const hostPath = pod.volumes.find((v) => v.name === mount.name)?.hostPath?.path;
    expect(hostPath).toBe('/etc/cni/net.d');
    expect(env.PODNET_CNI_HOST_CONF_DIR).toBe(hostPath);
  });

  it('names the conf dir as the host sees it in the conflist, and as given when they are the same', () => {
    const root = tmp();
    const bundle = join(root, 'bundle.js');
    writeFileSync(bundle, '');
    const base = { nodeName: 'n', binDir: join(root, 'b'), pluginBundle: bundle, nodeBinary: bundle };
    installCni({ ...base, confDir: join(root, 'c'), hostConfDir: '/etc/cni/net.d' });
    const conf = JSON.parse(readFileSync(join(root, 'c', '10-podnet.conflist'), 'utf8'));
    expect(conf.plugins[0].kubeconfig).toBe('/etc/cni/net.d/podnet-kubeconfig');
    installCni({ ...base, confDir: join(root, 'd') });
    const same = JSON.parse(readFileSync(join(root, 'd', '10-podnet.conflist'), 'utf8'));
    expect(same.plugins[0].kubeconfig).toBe(join(root, 'd', 'podnet-kubeconfig'));
  });
});
