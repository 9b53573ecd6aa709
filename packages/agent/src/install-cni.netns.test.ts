// install-cni as the DaemonSet runs it: in its own mount namespace, with the host's /etc/cni/net.d
// and /opt/cni/bin bind-mounted at other paths (/host/…), then the installed plugin run from the
// host's view of the files, as a kubelet's runtime runs it: its ADD must find the kubeconfig the
// conflist names.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IPAMHANDLE, IPPOOL, installCrds, KubeClient } from '@podnet/k8s';
import {
  cleanupStale,
  exec,
  type Netns,
  NetnsSet,
  type TestCluster,
  type Tunnel,
  testCluster,
  tunnelIntoNetns,
} from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const AGENT = join(ROOT, 'packages/agent/dist/podnet-agent.js');
const API_PORT = 6443;
const NODE = 'node-inst';

const nets = new NetnsSet();
let cluster: TestCluster;
let client: KubeClient;
let tunnel: Tunnel | undefined;
let node: Netns;
let work: string;

beforeAll(async () => {
  await cleanupStale();
  work = mkdtempSync(join(tmpdir(), 'podnet-install-cni-ns-'));
  cluster = await testCluster();
  client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  await installCrds(client);
  await client.resource(IPPOOL).create({ metadata: { name: 'inst' }, spec: { cidr: '10.246.0.0/16' } });
  await client.core.createNode({ body: { metadata: { name: NODE } } });
  node = await nets.create('instnode');
  const server = new URL(
    (
      parseYaml(readFileSync(cluster.kubeconfigPath, 'utf8')) as {
        clusters: { cluster: { server: string } }[];
      }
    ).clusters[0]!.cluster.server,
  );
  tunnel = await tunnelIntoNetns(node, API_PORT, { host: server.hostname, port: Number(server.port) });
}, 120_000);

afterAll(async () => {
  await tunnel?.close();
  await nets.destroy();
  await cluster?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('install-cni in a container with the host directories mounted at /host/…', () => {
  // Without a usable Node on the host, install-cni copies its own; with one (this test's Node
  // stands for the host's), the plugin runs on it and nothing is copied. Either way the shim,
  // with no agent serving its socket, runs the standalone plugin and the pod is added.
  it.each([
    { case: 'a copy of Node', hostNodes: 'none', pod: 'inst-pod', id: 'inst0001' },
    { case: "the host's Node", hostNodes: process.execPath, pod: 'inst-pod2', id: 'inst0002' },
  ])(
    'writes host paths into the conflist, and the installed plugin ($case) run by the host reads its kubeconfig on ADD',
    async ({ hostNodes, pod: podName, id }) => {
      const run = join(work, id);
      // The host's directories…
      const hostConf = join(run, 'etc/cni/net.d');
      const hostBin = join(run, 'opt/cni/bin');
      // …and where the init container sees them.
      const ctrConf = join(run, 'container/host/etc/cni/net.d');
      const ctrBin = join(run, 'container/host/opt/cni/bin');
      for (const d of [hostConf, hostBin, ctrConf, ctrBin]) mkdirSync(d, { recursive: true });
      // The service account token directory the DaemonSet mounts: the embedded server's token and CA.
      const kc = parseYaml(readFileSync(cluster.kubeconfigPath, 'utf8')) as {
        clusters: { cluster: { 'certificate-authority-data'?: string } }[];
        users: { user: { token: string } }[];
      };
      const tokenDir = join(run, 'container/var/run/podnet-cni');
      mkdirSync(tokenDir, { recursive: true });
      writeFileSync(join(tokenDir, 'token'), kc.users[0]!.user.token);
      writeFileSync(
        join(tokenDir, 'ca.crt'),
        Buffer.from(kc.clusters[0]!.cluster['certificate-authority-data'] ?? '', 'base64'),
      );

      // The init container: a private mount namespace in which only the bind mounts exist.
      const env = {
        PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
        NODENAME: NODE,
        PODNET_CNI_BIN_DIR: ctrBin,
        PODNET_CNI_CONF_DIR: ctrConf,
        PODNET_CNI_HOST_CONF_DIR: hostConf,
        PODNET_CNI_TOKEN_DIR: tokenDir,
        // The server as the node's processes reach it (through the tunnel inside the node namespace).
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: String(API_PORT),
        PODNET_CNI_HOST_NODES: hostNodes,
      };
      const install = spawnSync(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-ec',
          'mount --bind "$1" "$2"; mount --bind "$3" "$4"; exec "$5" "$6" install-cni',
          'sh',
          hostConf,
          ctrConf,
          hostBin,
          ctrBin,
          process.execPath,
          AGENT,
        ],
        { env, encoding: 'utf8', timeout: 60_000 },
      );
      expect(install.status, `${install.stdout}\n${install.stderr}`).toBe(0);
      // Outside that mount namespace the container paths are empty directories: only host paths work.
      expect(readdirSync(ctrConf)).toEqual([]);
      // What runs the plugin: the host's Node, or a copy.
      expect(readdirSync(hostBin).includes('podnet-node')).toBe(hostNodes === 'none');
      expect(readFileSync(join(hostBin, 'podnet-standalone'), 'utf8')).toContain(
        hostNodes === 'none' ? '"$d/podnet-node"' : `'${hostNodes}'`,
      );
      expect(install.stdout).toContain(
        hostNodes === 'none' ? 'CNI plugin installed with a copy of Node' : "runs on the host's Node",
      );
      expect(readdirSync(hostConf).sort()).toEqual(['10-podnet.conflist', 'podnet-kubeconfig']);
      const conflist = JSON.parse(readFileSync(join(hostConf, '10-podnet.conflist'), 'utf8')) as {
        cniVersion: string;
        name: string;
        plugins: Record<string, unknown>[];
      };
      expect(conflist.plugins[0]).toMatchObject({ kubeconfig: join(hostConf, 'podnet-kubeconfig') });

      // The runtime on the host: the first plugin of the conflist, as libcni hands it over.
      const pod = await nets.create('instpod');
      await client.core.createNamespace({ body: { metadata: { name: 'default' } } }).catch(() => undefined);
      await client.core.createNamespacedPod({
        namespace: 'default',
        body: {
          metadata: { name: podName },
          spec: { nodeName: NODE, containers: [{ name: 'c', image: 'x' }] },
        },
      });
      const pluginConf = JSON.stringify({
        ...conflist.plugins[0],
        cniVersion: conflist.cniVersion,
        name: conflist.name,
        cacheDir: join(run, 'cache'),
      });
      const cni = (command: string) =>
        exec(
          'ip',
          [
            'netns',
            'exec',
            node.name,
            'env',
            '-i',
            `PATH=${env.PATH}`,
            `CNI_COMMAND=${command}`,
            `CNI_CONTAINERID=${id}`,
            `CNI_NETNS=${pod.path}`,
            'CNI_IFNAME=eth0',
            `CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${podName}`,
            `CNI_PATH=${hostBin}`,
            // No agent serves this socket: the shim runs the standalone plugin.
            `PODNET_CNI_SOCKET=${join(run, 'cni.sock')}`,
            join(hostBin, 'podnet'),
          ],
          { input: pluginConf, timeoutMs: 60_000 },
        );
      const add = await cni('ADD');
      expect(add.code, `${add.stdout}\n${add.stderr}`).toBe(0);
      const result = JSON.parse(add.stdout) as { ips: { address: string }[] };
      expect(result.ips[0]?.address).toMatch(/^10\.246\./);
      expect((await client.resource(IPAMHANDLE).list()).items.map((h) => h.spec.handleID)).toEqual([
        `podnet.${id}.eth0`,
      ]);
      const del = await cni('DEL');
      expect(del.code, `${del.stdout}\n${del.stderr}`).toBe(0);
      expect((await client.resource(IPAMHANDLE).list()).items).toEqual([]);
    },
    120_000,
  );
});
