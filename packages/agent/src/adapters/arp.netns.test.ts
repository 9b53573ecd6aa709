// The ARP adapter serves a pod interface from the moment its link appears, before the agent has
// seen the Pod: the pod's first ARP for its gateway must not wait for the informer.
import { cleanupStale, type Netns, NetnsSet, waitFor } from '@podnet/testkit';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArpAdapter } from './arp.js';

const HOST_MAC = 'ee:ee:ee:ee:ee:ee';
const set = new NetnsSet();
let node: Netns;
let pod: Netns;
let adapter: ArpAdapter;

beforeAll(async () => {
  await cleanupStale();
  node = await set.create('arpadnode');
  pod = await set.create('arpadpod');
  adapter = new ArpAdapter({ mode: 'userspace', logger: pino({ level: 'silent' }), netns: node.path });
  await adapter.start();
});

afterAll(async () => {
  await adapter?.stop();
  await set.destroy();
});

describe('ARP adapter in userspace mode', () => {
  it('answers a pod on a pn* interface created after start, with no Pod object known yet', async () => {
    await node.ip(
      'link',
      'add',
      'pnearly0001',
      'address',
      HOST_MAC,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      pod.name,
    );
    await node.ip('link', 'set', 'pnearly0001', 'up');
    await pod.ip('link', 'set', 'eth0', 'up');
    await pod.ip('addr', 'add', '10.98.0.5/32', 'dev', 'eth0');
    await pod.ip('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
    const r = await waitFor('an ARP reply for 169.254.1.1 in the pod', async () => {
      const a = await pod.exec('arping', ['-c', '1', '-w', '1', '-i', 'eth0', '169.254.1.1'], {
        timeoutMs: 5_000,
      });
      return a.code === 0 && a.stdout.includes(`from ${HOST_MAC} (169.254.1.1)`) ? a : undefined;
    });
    expect(r.stdout).toContain(HOST_MAC);
    expect(adapter.replies()).toBeGreaterThan(0);
  });

  it('ignores links that are not pod interfaces', async () => {
    await node.ip('link', 'add', 'other0', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', pod.name);
    await node.ip('link', 'set', 'other0', 'up');
    await pod.ip('link', 'set', 'eth1', 'up');
    const before = adapter.replies();
    const a = await pod.exec('arping', ['-c', '2', '-w', '2', '-i', 'eth1', '169.254.1.1'], {
      timeoutMs: 5_000,
    });
    expect(a.code).not.toBe(0);
    expect(adapter.replies()).toBe(before);
  });
});
