// The node's forwarding sysctls for real: a podnet-agent process in a node namespace, once with a
// writable /proc/sys and once as containerd runs an unprivileged container, with /proc/sys
// read-only (a mount namespace of its own, `unshare -m`, /proc/sys bind-mounted read-only; the
// test's own mounts are untouched). IPv4-only pools: the agent never writes IPv6 forwarding; it
// sets ip_forward when it may, and when it may not, /readyz says why until someone else sets it.
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Netns, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT, AgentLab, STATUS_URL } from './__fixtures__/netns-agent.js';

const lab = new AgentLab('sysctl');
let node: Netns;
let kubeconfig: string;
let logPath = '';

function startAgent(readOnlyProcSys: boolean, tag: string): ChildProcess {
  logPath = join(lab.work, `agent-${tag}.log`);
  const argv = lab.agentArgv('node-a', kubeconfig, ['--resync-interval', '2s']);
  // As containerd mounts /proc/sys for an unprivileged container: read-only, in the agent's own
  // mount namespace (private propagation: nothing leaks to the test's namespace).
  const child = readOnlyProcSys
    ? node.spawn('unshare', [
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$0" "$@"',
        process.execPath,
        ...argv,
      ])
    : node.spawn(process.execPath, argv);
  return lab.logged(child, `agent-${tag}.log`);
}

const curl = async (path: string) => {
  const r = await node.exec('curl', [
    '-s',
    '--max-time',
    '3',
    '-w',
    '\n%{http_code}',
    `${STATUS_URL}${path}`,
  ]);
  const i = r.stdout.lastIndexOf('\n');
  return { code: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
};
const sysctl = async (key: string) => (await node.run('cat', [`/proc/sys/${key}`])).trim();

beforeAll(async () => {
  // IPv4 only.
  await lab.start([AGENT], { cidr: '10.244.0.0/16', blockSize: 26 });
  node = await lab.nets.create('sysnode');
  await node.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1');
  await node.ip('link', 'set', 'eth0', 'up');
  await node.ip('link', 'set', 'eth1', 'up');
  await node.ip('addr', 'add', '10.99.0.11/24', 'dev', 'eth0');
  ({ kubeconfig } = await lab.kubeconfigIn(node, 'node-a'));
  await lab.client.core.createNode({
    body: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' } },
  });
}, 120_000);

afterAll(() => lab.stop(), 60_000);

describe('forwarding sysctls of podnet-agent', () => {
  it('on an IPv4-only cluster sets ip_forward and leaves IPv6 forwarding alone', async () => {
    expect(await sysctl('net/ipv4/ip_forward')).toBe('0'); // a new namespace starts with it off
    const agent = startAgent(false, 'writable');
    await waitFor('the agent ready', async () => (await curl('/readyz')).code === 200, {
      timeoutMs: 60_000,
      intervalMs: 300,
    });
    expect(await sysctl('net/ipv4/ip_forward')).toBe('1');
    expect(await sysctl('net/ipv6/conf/all/forwarding')).toBe('0');
    expect(await sysctl('net/ipv6/conf/eth0/forwarding')).toBe('0');
    // Drift: something turns it off; the next resync turns it on again.
    await node.sysctl('net.ipv4.ip_forward', 0);
    await waitFor('ip_forward repaired', async () => (await sysctl('net/ipv4/ip_forward')) === '1', {
      timeoutMs: 30_000,
      intervalMs: 300,
    });
    await lab.procs.stop(agent, 10_000);
  }, 120_000);

  it('with /proc/sys read-only and ip_forward 0, fails /readyz naming the sysctl until it is set, without a retry loop', async () => {
    // The node lost its setting (a reboot, a tool): 0 again, set from outside the agent.
    await node.sysctl('net.ipv4.ip_forward', 0);
    startAgent(true, 'readonly');
    const notReady = await waitFor(
      '/readyz to say why it is not ready',
      async () => {
        const r = await curl('/readyz');
        return r.code === 503 && r.body.includes('net.ipv4.ip_forward') ? r : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 300 },
    );
    expect(notReady.body).toMatch(/sysctl net\.ipv4\.ip_forward is not 1 and cannot be set \(EROFS/);
    const metrics = (await curl('/metrics')).body;
    expect(metrics).toContain('podnet_sysctl_unwritable{sysctl="net.ipv4.ip_forward"} 1');
    const status = JSON.parse((await curl('/status')).body) as {
      conditions: { type: string; subject: string }[];
    };
    expect(status.conditions).toContainEqual(
      expect.objectContaining({ type: 'SysctlUnwritable', subject: 'net.ipv4.ip_forward' }),
    );
    expect(await sysctl('net/ipv4/ip_forward')).toBe('0');
    // An operator (or a privileged init container) sets it: the next resync sees it, /readyz recovers.
    await node.sysctl('net.ipv4.ip_forward', 1);
    await waitFor('/readyz 200 again', async () => (await curl('/readyz')).code === 200, {
      timeoutMs: 30_000,
      intervalMs: 300,
    });
    expect((await curl('/metrics')).body).not.toContain(
      'podnet_sysctl_unwritable{sysctl="net.ipv4.ip_forward"}',
    );
    // It was reported once, though the agent looked again on resyncs until it cleared; and the
    // route programmer never went into a retry loop over it (no "retrying" for sysctls).
    const log = readFileSync(logPath, 'utf8');
    expect(log.split('\n').filter((l) => l.includes('cannot be set'))).toHaveLength(1);
    expect(log).toContain('sysctl is set now');
    expect(log).not.toContain('sysctls not written; retrying');
    expect(await sysctl('net/ipv6/conf/all/forwarding')).toBe('0');
  }, 120_000);
});
