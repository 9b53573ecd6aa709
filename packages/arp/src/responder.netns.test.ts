// The responder against the real kernel: a pod namespace and a node namespace joined by a veth,
// the host side named and addressed as podnet's CNI plugin does (pn…, ee:ee:ee:ee:ee:ee).
import { openPacket, type PacketSocket } from '@podnet/native';
import { cleanupStale, type Netns, NetnsSet, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_FOR_GATEWAY } from './__fixtures__/frames.js';
import { ArpResponder } from './responder.js';

const HOST_MAC = 'ee:ee:ee:ee:ee:ee';
const HOST_IF = 'pn0a1b2c3d4e5';
const POD_IP = '10.65.0.7';
const lab = new NetnsSet();
let node: Netns;
let pod: Netns;
let ifindex: number;

async function arping(target: string, extra: string[] = []) {
  return pod.exec('arping', ['-c', '2', '-C', '1', '-w', '3', '-i', 'eth0', ...extra, target], {
    timeoutMs: 10_000,
  });
}

beforeAll(async () => {
  await cleanupStale();
  node = await lab.create('arpnode');
  pod = await lab.create('arppod');
  await node.ip('link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.name);
  await node.ip('link', 'set', HOST_IF, 'address', HOST_MAC, 'up');
  await pod.ip('link', 'set', 'eth0', 'up');
  await pod.ip('addr', 'add', `${POD_IP}/32`, 'dev', 'eth0');
  await pod.ip('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
  await pod.ip('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
  // Something for the pod to talk to on the node, and the way back to the pod.
  // (No dummy module here: a veth pair with both ends in the node namespace stands in for the uplink.)
  await node.ip('link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'uplink1');
  await node.ip('link', 'set', 'uplink0', 'up');
  await node.ip('link', 'set', 'uplink1', 'up');
  await node.ip('addr', 'add', '10.99.0.1/32', 'dev', 'uplink0');
  await node.ip('route', 'add', 'default', 'dev', 'uplink0');
  await node.ip('route', 'add', `${POD_IP}/32`, 'dev', HOST_IF, 'scope', 'link');
  await node.sysctl('net.ipv4.ip_forward', 1);
  const [link] = await node.ipJson<{ ifindex: number }[]>('link', 'show', HOST_IF);
  ifindex = link!.ifindex;
});

afterAll(async () => {
  await lab.destroy();
});

describe('userspace responder in a namespace', () => {
  let arp: ArpResponder;
  beforeAll(async () => {
    arp = new ArpResponder({ netns: node.path });
    await arp.addInterface({ ifname: HOST_IF, ifindex, podIPs: [POD_IP], hostMac: HOST_MAC });
  });
  afterAll(async () => {
    await arp?.close();
  });

  it('answers arping for 169.254.1.1 from the pod with ee:ee:ee:ee:ee:ee', async () => {
    const r = await arping('169.254.1.1');
    expect(r.stdout).toContain(`from ${HOST_MAC} (169.254.1.1)`);
    expect(r.code).toBe(0);
    expect(arp.stats().replies).toBeGreaterThan(0);
    expect(await node.run('cat', [`/proc/sys/net/ipv4/conf/${HOST_IF}/proxy_arp`])).toBe('0\n');
  });

  it("lets the pod's first packet reach the node, with 169.254.1.1 at the host MAC in its neighbour table", async () => {
    await pod.ip('neigh', 'flush', 'dev', 'eth0');
    const ping = await pod.exec('ping', ['-c', '1', '-W', '3', '10.99.0.1']);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    const neigh = await pod.ipJson<{ dst: string; lladdr?: string }[]>('neigh', 'show', 'dev', 'eth0');
    expect(neigh.find((n) => n.dst === '169.254.1.1')?.lladdr).toBe(HOST_MAC);
  });

  it('answers for another address that is not the pod own', async () => {
    const r = await arping('10.65.3.9');
    expect(r.stdout).toContain(`from ${HOST_MAC} (10.65.3.9)`);
  });

  it("stays silent on a duplicate address probe for the pod's own address", async () => {
    const before = arp.stats();
    const r = await arping(POD_IP, ['-0']);
    expect(r.stdout).not.toContain(HOST_MAC);
    expect(r.code).not.toBe(0);
    expect(arp.stats().ignored.probe).toBeGreaterThan(before.ignored.probe);
    expect(arp.stats().replies).toBe(before.replies);
  });

  it('counts and drops malformed frames and keeps answering', async () => {
    const [podLink] = await pod.ipJson<{ ifindex: number }[]>('link', 'show', 'eth0');
    const tx: PacketSocket = openPacket({ ifindex: podLink!.ifindex, ethertype: 0x0806, netns: pod.path });
    try {
      const badHtype = Buffer.from(REQUEST_FOR_GATEWAY);
      badHtype.writeUInt16BE(6, 14);
      const badPlen = Buffer.from(REQUEST_FOR_GATEWAY);
      badPlen[19] = 16;
      tx.send(Buffer.concat([badHtype, Buffer.alloc(18)]));
      tx.send(Buffer.concat([badPlen, Buffer.alloc(18)]));
      tx.send(REQUEST_FOR_GATEWAY.subarray(0, 30));
      await waitFor('the malformed frames to be counted', () => {
        const m = arp.stats().malformed;
        return m.htype >= 1 && m.plen >= 1 && m.short >= 1;
      });
    } finally {
      tx.close();
    }
    expect((await arping('169.254.1.1')).stdout).toContain(HOST_MAC);
  });

  it('stops answering when the interface is removed and answers again when it is added back', async () => {
    await arp.removeInterface(HOST_IF);
    const silent = await arping('169.254.1.1');
    expect(silent.stdout).not.toContain(HOST_MAC);
    await arp.addInterface({ ifname: HOST_IF, ifindex, podIPs: [POD_IP], hostMac: HOST_MAC });
    expect((await arping('169.254.1.1')).stdout).toContain(HOST_MAC);
  });

  it('answers a repeated request from the reply cache, and never once the address becomes the pod own', async () => {
    const before = arp.stats();
    const r = await pod.exec('arping', ['-c', '3', '-w', '5', '-i', 'eth0', '10.65.3.10'], {
      timeoutMs: 10_000,
    });
    expect(r.stdout.split(`from ${HOST_MAC} (10.65.3.10)`).length - 1, r.stdout).toBe(3);
    const after = arp.stats();
    // The first request is decided in JS; the same request again is answered by the addon.
    expect(after.replies - before.replies).toBe(3);
    expect(after.repliesFromCache - before.repliesFromCache).toBe(2);
    // 10.65.3.10 becomes one of the pod's addresses: the cached answer must not be sent again.
    await arp.addInterface({ ifname: HOST_IF, ifindex, podIPs: [POD_IP, '10.65.3.10'], hostMac: HOST_MAC });
    try {
      const silent = await arping('10.65.3.10');
      expect(silent.stdout).not.toContain(HOST_MAC);
      expect(arp.stats().ignored['own-address']).toBeGreaterThan(after.ignored['own-address']);
      expect(arp.stats().replies).toBe(after.replies);
    } finally {
      await arp.addInterface({ ifname: HOST_IF, ifindex, podIPs: [POD_IP], hostMac: HOST_MAC });
    }
    expect((await arping('10.65.3.10')).stdout).toContain(HOST_MAC);
  });
});

describe('kernel mode in a namespace', () => {
  it('has the kernel answer with the host MAC once proxy_arp=1 and proxy_delay=0 are set', async () => {
    const arp = new ArpResponder({ mode: 'kernel', netns: node.path });
    try {
      await arp.addInterface({ ifname: HOST_IF, ifindex, podIPs: [POD_IP], hostMac: HOST_MAC });
      expect(await node.run('cat', [`/proc/sys/net/ipv4/conf/${HOST_IF}/proxy_arp`])).toBe('1\n');
      expect(await node.run('cat', [`/proc/sys/net/ipv4/neigh/${HOST_IF}/proxy_delay`])).toBe('0\n');
      const r = await arping('169.254.1.1');
      expect(r.stdout).toContain(`from ${HOST_MAC} (169.254.1.1)`);
      await arp.removeInterface(HOST_IF);
      expect(await node.run('cat', [`/proc/sys/net/ipv4/conf/${HOST_IF}/proxy_arp`])).toBe('0\n');
    } finally {
      await arp.close();
    }
  });
});

describe('interfaces that vanish', () => {
  it('stops serving an interface the kernel deletes, by itself', async () => {
    await node.ip('link', 'add', 'pnvanish0', 'type', 'veth', 'peer', 'name', 'pnvanish1');
    await node.ip('link', 'set', 'pnvanish0', 'up');
    const [l] = await node.ipJson<{ ifindex: number }[]>('link', 'show', 'pnvanish0');
    const arp = new ArpResponder({ netns: node.path });
    try {
      await arp.addInterface({
        ifname: 'pnvanish0',
        ifindex: l!.ifindex,
        podIPs: [POD_IP],
        hostMac: HOST_MAC,
      });
      await arp.addInterface({ ifname: HOST_IF, ifindex, podIPs: [POD_IP], hostMac: HOST_MAC });
      await node.ip('link', 'del', 'pnvanish0');
      await waitFor('the deleted interface to be dropped', () => arp.stats().interfaces === 1, {
        timeoutMs: 10_000,
      });
      expect(arp.interfaces().map((i) => i.ifname)).toEqual([HOST_IF]);
      expect((await arping('169.254.1.1')).stdout).toContain(HOST_MAC);
    } finally {
      await arp.close();
    }
  });
});

describe('an interface served before it is up', () => {
  it('answers once it comes up, and counts no error for the time it was down', async () => {
    // As the CNI plugin makes a pod's veth: the agent may serve it before the plugin brings it up.
    const pod2 = await lab.create('arppod2');
    await node.ip('link', 'add', 'pnlate0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod2.name);
    await node.ip('link', 'set', 'pnlate0', 'address', HOST_MAC);
    const [l] = await node.ipJson<{ ifindex: number }[]>('link', 'show', 'pnlate0');
    const arp = new ArpResponder({ netns: node.path });
    try {
      await arp.addInterface({
        ifname: 'pnlate0',
        ifindex: l!.ifindex,
        podIPs: ['10.65.0.8'],
        hostMac: HOST_MAC,
      });
      await new Promise((r) => setTimeout(r, 200));
      await node.ip('link', 'set', 'pnlate0', 'up');
      await pod2.ip('link', 'set', 'eth0', 'up');
      await pod2.ip('addr', 'add', '10.65.0.8/32', 'dev', 'eth0');
      const r = await pod2.exec('arping', ['-c', '2', '-C', '1', '-w', '3', '-i', 'eth0', '169.254.1.1'], {
        timeoutMs: 10_000,
      });
      expect(r.stdout).toContain(HOST_MAC);
      expect(arp.stats().errors).toBe(0);
    } finally {
      await arp.close();
    }
  });
});
