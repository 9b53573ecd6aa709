// The CNI shim as a runtime runs it (a process with the CNI environment, in the node's namespace),
// with a real agent serving the CNI socket: the agent does the ADD (address, routes, veth) and DEL,
// and says so in its metrics. With the agent stopped, the same shim runs the standalone plugin and
// the pod is still added. With spare addresses, the agent answers an ADD from an address it
// allocated ahead and records it for the pod afterwards.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ipam } from '@podnet/ipam';
import { exec, type Netns, vethPair, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT, AgentLab, STATUS_URL } from './__fixtures__/netns-agent.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SHIM = join(ROOT, 'packages/cni/dist/podnet-cni-shim');
const STANDALONE = join(ROOT, 'packages/cni/dist/podnet-standalone');
const NODE = 'node-sock';

const lab = new AgentLab('cnisock');
let node: Netns;
let kubeconfig: string;
let socket: string;

type Result = { ips: { address: string }[]; interfaces: { name: string; sandbox?: string }[] };

/**
 * Runs the shim in the node's namespace. `fallback: false` gives it a standalone plugin that does not
 * exist, so a command the agent did not answer fails instead of being done by the fallback.
 */
async function shim(command: 'ADD' | 'DEL', pod: string, podNs: Netns, fallback = true) {
  const env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: `c-${pod}`,
    CNI_NETNS: podNs.path,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod}`,
    CNI_PATH: dirname(SHIM),
    PODNET_CNI_SOCKET: socket,
    ...(fallback ? {} : { PODNET_CNI_FALLBACK: join(lab.work, 'no-standalone-plugin') }),
  };
  const conf = {
    cniVersion: '1.0.0',
    name: 'podnet',
    type: 'podnet',
    kubeconfig,
    nodeName: NODE,
    cacheDir: join(lab.work, 'cni-cache'),
  };
  return exec(
    'ip',
    ['netns', 'exec', node.name, 'env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), SHIM],
    { input: JSON.stringify(conf), timeoutMs: 60_000 },
  );
}

/** The agent's count of CNI commands it ran, by command, from its /metrics. */
async function served(command: string): Promise<number> {
  const r = await node.exec('curl', ['-sf', '--max-time', '3', `${STATUS_URL}/metrics`]);
  if (r.code !== 0) throw new Error(`the agent's /metrics did not answer: ${r.stderr}`);
  const line = r.stdout
    .split('\n')
    .find((l) =>
      l.startsWith(`podnet_cni_duration_seconds_count{command="${command}",result="success",via="agent"}`),
    );
  return line ? Number(line.split(' ').pop()) : 0;
}

/** What the kernel holds for a pod added by ADD: its address, routes and the host end of its veth. */
async function expectWired(podNs: Netns, result: Result) {
  const ip = result.ips[0]!.address.split('/')[0]!;
  expect(result.ips[0]!.address).toMatch(/^10\.245\.\d+\.\d+\/32$/);
  const addrs = await podNs.ipJson<{ ifname: string; addr_info: { local: string; prefixlen: number }[] }[]>(
    'addr',
    'show',
    'dev',
    'eth0',
  );
  expect(addrs[0]!.addr_info).toEqual(
    expect.arrayContaining([expect.objectContaining({ local: ip, prefixlen: 32 })]),
  );
  const routes = await podNs.ipJson<{ dst: string; gateway?: string; dev: string }[]>('route', 'show');
  expect(routes).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ dst: 'default', gateway: '169.254.1.1', dev: 'eth0' }),
      expect.objectContaining({ dst: '169.254.1.1', dev: 'eth0' }),
    ]),
  );
  const hostIf = result.interfaces[0]!.name;
  const link = await node.ipJson<{ ifname: string; link_type: string; address: string }[]>(
    'link',
    'show',
    hostIf,
  );
  expect(link[0]).toMatchObject({ ifname: hostIf, address: 'ee:ee:ee:ee:ee:ee' });
  expect(await node.ipJson('route', 'show', ip)).toEqual([expect.objectContaining({ dst: ip, dev: hostIf })]);
  return { ip, hostIf };
}

async function newPod(name: string): Promise<Netns> {
  await lab.client.core.createNamespacedPod({
    namespace: 'default',
    body: { metadata: { name }, spec: { nodeName: NODE, containers: [{ name: 'c', image: 'x' }] } },
  });
  return lab.nets.create(name.replace('-', ''));
}

beforeAll(async () => {
  await lab.start([AGENT, SHIM, STANDALONE], { cidr: '10.245.0.0/16', blockSize: 26 });
  await lab.client.core.createNamespace({ body: { metadata: { name: 'default' } } }).catch(() => undefined);
  await lab.client.core.createNode({ body: { metadata: { name: NODE } } });
  node = await lab.nets.create('socknode');
  const fabric = await lab.nets.create('sockfab');
  await vethPair(node, 'eth0', fabric, 'f0');
  await node.ip('addr', 'add', '10.97.0.11/24', 'dev', 'eth0');
  await fabric.ip('addr', 'add', '10.97.0.1/24', 'dev', 'f0');
  ({ kubeconfig } = await lab.kubeconfigIn(node, 'node'));
  socket = join(lab.work, 'run', 'cni.sock');
}, 120_000);

afterAll(() => lab.stop(), 60_000);

describe('the CNI shim and the agent socket', () => {
  it('the agent serving the socket adds and deletes a pod for the shim; stopped, the shim falls back to the standalone plugin', async () => {
    const agent = lab.logged(
      node.spawn(process.execPath, lab.agentArgv(NODE, kubeconfig, ['--cni-socket', socket])),
      'agent.log',
    );
    await waitFor('the agent to serve the CNI socket', async () => existsSync(socket), {
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    const before = await served('ADD');

    const pod1 = await newPod('pod-1');
    const add = await shim('ADD', 'pod-1', pod1, false);
    expect(add.code, `${add.stdout}\n${add.stderr}`).toBe(0);
    const wired = await expectWired(pod1, JSON.parse(add.stdout) as Result);
    // The agent ran it (the standalone plugin would not count in the agent's metrics).
    expect(await served('ADD')).toBe(before + 1);
    const annotated = await lab.client.core.readNamespacedPod({ namespace: 'default', name: 'pod-1' });
    expect(annotated.metadata?.annotations?.['podnet.io/podIP']).toBe(wired.ip);

    const del = await shim('DEL', 'pod-1', pod1, false);
    expect(del.code, `${del.stdout}\n${del.stderr}`).toBe(0);
    expect(await served('DEL')).toBe(1);
    expect((await node.exec('ip', ['link', 'show', wired.hostIf])).code).not.toBe(0);
    expect(await node.ipJson('route', 'show', wired.ip)).toEqual([]);

    // The agent goes away: no socket, and the shim runs the standalone plugin.
    await lab.procs.stop(agent, 10_000);
    expect(existsSync(socket)).toBe(false);
    const pod2 = await newPod('pod-2');
    const add2 = await shim('ADD', 'pod-2', pod2);
    expect(add2.code, `${add2.stdout}\n${add2.stderr}`).toBe(0);
    await expectWired(pod2, JSON.parse(add2.stdout) as Result);

    // An agent killed outright leaves its socket file behind: the connection is refused, and the
    // shim runs the standalone plugin.
    const again = lab.logged(
      node.spawn(process.execPath, lab.agentArgv(NODE, kubeconfig, ['--cni-socket', socket])),
      'agent.log',
    );
    await waitFor('the restarted agent to serve the CNI socket', async () => existsSync(socket), {
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    again.kill('SIGKILL');
    await new Promise((r) => again.once('exit', r));
    expect(existsSync(socket)).toBe(true);
    const pod3 = await newPod('pod-3');
    const add3 = await shim('ADD', 'pod-3', pod3);
    expect(add3.code, `${add3.stdout}\n${add3.stderr}`).toBe(0);
    await expectWired(pod3, JSON.parse(add3.stdout) as Result);
  }, 180_000);

  it('an agent without CAP_SYS_ADMIN and with a read-only /proc/sys serves ADD and DEL over the descriptors the shim hands over', async () => {
    // As the DaemonSet runs it: its own mount namespace with /proc/sys read-only, CAP_SYS_ADMIN
    // out of its bounding set (so out of every set after the exec), CAP_NET_ADMIN kept.
    // The agent the first test killed left its socket file: wait for this agent's own.
    rmSync(socket, { force: true });
    const argv = lab.agentArgv(NODE, kubeconfig, ['--cni-socket', socket]);
    const agent = lab.logged(
      node.spawn('unshare', [
        '-m',
        '--',
        'sh',
        '-c',
        'mount -o bind,ro /proc/sys /proc/sys && exec capsh --drop=cap_sys_admin -- -c \'exec "$@"\' agent "$@"',
        'wrapper',
        process.execPath,
        ...argv,
      ]),
      'agent-unprivileged.log',
    );
    await waitFor('the unprivileged agent to serve the CNI socket', async () => existsSync(socket), {
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    // The serving process really lacks CAP_SYS_ADMIN and sees /proc/sys read-only.
    const status = await node.exec('cat', [`/proc/${agent.pid}/status`]);
    const capEff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(status.stdout)![1]}`);
    expect(capEff & (1n << 21n)).toBe(0n); // CAP_SYS_ADMIN
    expect(capEff & (1n << 12n)).not.toBe(0n); // CAP_NET_ADMIN
    const mounts = await node.exec('cat', [`/proc/${agent.pid}/mountinfo`]);
    expect(mounts.stdout.split('\n').find((l) => l.split(' ')[4] === '/proc/sys')).toMatch(/ ro[, ]/);

    // New interfaces in the node's namespace start with forwarding off: only the ADD's write
    // through the handed /proc/sys/net turns it on (this agent cannot write its own /proc/sys).
    expect((await node.exec('sysctl', ['-w', 'net.ipv4.conf.default.forwarding=0'])).code).toBe(0);
    const before = { add: await served('ADD'), del: await served('DEL') };
    const pod = await newPod('pod-4');
    const add = await shim('ADD', 'pod-4', pod, false);
    expect(add.code, `${add.stdout}\n${add.stderr}`).toBe(0);
    const wired = await expectWired(pod, JSON.parse(add.stdout) as Result);
    expect(await served('ADD')).toBe(before.add + 1);
    // The host sysctls went through the handed /proc/sys/net.
    const fwd = await node.exec('cat', [`/proc/sys/net/ipv4/conf/${wired.hostIf}/forwarding`]);
    expect(fwd.stdout.trim()).toBe('1');

    const del = await shim('DEL', 'pod-4', pod, false);
    expect(del.code, `${del.stdout}\n${del.stderr}`).toBe(0);
    expect(await served('DEL')).toBe(before.del + 1);
    expect((await node.exec('ip', ['link', 'show', wired.hostIf])).code).not.toBe(0);
    await lab.procs.stop(agent, 10_000);
  }, 180_000);

  it('with spare addresses, an ADD gets one made ahead; the pod handle and annotation follow, and a restarted agent uses the spares left', async () => {
    rmSync(socket, { force: true });
    const ipam = new Ipam({ client: lab.client });
    const spareIps = async () => (await ipam.sparesOf(NODE)).map((s) => s.addresses[0]!.address);
    const start = () =>
      lab.logged(
        node.spawn(
          process.execPath,
          lab.agentArgv(NODE, kubeconfig, ['--cni-socket', socket, '--cni-spare-addresses', '2']),
        ),
        'agent-spares.log',
      );
    let agent = start();
    await waitFor('the agent to serve the CNI socket', async () => existsSync(socket), {
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    const before = await served('ADD');
    // The first ADD finds no spares and allocates through IPAM; the agent then makes two.
    const pod5 = await newPod('pod-5');
    const add5 = await shim('ADD', 'pod-5', pod5, false);
    expect(add5.code, `${add5.stdout}\n${add5.stderr}`).toBe(0);
    await waitFor('two spare addresses', async () => (await spareIps()).length === 2, {
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    const made = await spareIps();

    const pod6 = await newPod('pod-6');
    const add6 = await shim('ADD', 'pod-6', pod6, false);
    expect(add6.code, `${add6.stdout}\n${add6.stderr}`).toBe(0);
    const wired = await expectWired(pod6, JSON.parse(add6.stdout) as Result);
    expect(made).toContain(wired.ip);
    expect(await served('ADD')).toBe(before + 2);
    // Afterwards: the pod's own handle holds the address, the pod is annotated, and the agent made
    // another spare.
    await waitFor(
      "pod-6's address recorded for it",
      async () => {
        const r = await ipam.allocate({ handle: 'podnet.c-pod-6.eth0', node: NODE }).catch(() => undefined);
        const pod = await lab.client.core.readNamespacedPod({ namespace: 'default', name: 'pod-6' });
        return r?.ipv4?.address === wired.ip && pod.metadata?.annotations?.['podnet.io/podIP'] === wired.ip;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    await waitFor('the spares refilled', async () => (await spareIps()).length === 2, {
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    expect(await spareIps()).not.toContain(wired.ip);
    expect(await ipam.check()).toEqual([]);

    const handles = (await ipam.usage()).totals.handles;
    const del6 = await shim('DEL', 'pod-6', pod6, false);
    expect(del6.code, `${del6.stdout}\n${del6.stderr}`).toBe(0);
    expect((await ipam.usage()).totals.handles).toBe(handles - 1);
    expect(await spareIps()).toHaveLength(2);

    // A restarted agent reads the spares left in the API and gives one to the next ADD.
    await lab.procs.stop(agent, 10_000);
    const left = await spareIps();
    agent = start();
    await waitFor('the restarted agent to serve the CNI socket', async () => existsSync(socket), {
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    // Its spares are read with its first command (which allocates through IPAM meanwhile).
    const pod7 = await newPod('pod-7');
    const add7 = await shim('ADD', 'pod-7', pod7, false);
    expect(add7.code, `${add7.stdout}\n${add7.stderr}`).toBe(0);
    expect(left).not.toContain((await expectWired(pod7, JSON.parse(add7.stdout) as Result)).ip);
    await waitFor(
      'the spares loaded',
      async () =>
        readFileSync(join(lab.work, 'agent-spares.log'), 'utf8').split('spare addresses loaded').length === 3,
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const pod8 = await newPod('pod-8');
    const add8 = await shim('ADD', 'pod-8', pod8, false);
    expect(add8.code, `${add8.stdout}\n${add8.stderr}`).toBe(0);
    expect(left).toContain((await expectWired(pod8, JSON.parse(add8.stdout) as Result)).ip);
    await lab.procs.stop(agent, 10_000);
  }, 180_000);
});
