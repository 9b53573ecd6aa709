// Benchmark: ARP answer latency seen from a pod, podnet's userspace responder vs the kernel's
// proxy ARP (default proxy_delay, and proxy_delay=0), same namespaces, same probe, same run.
//
// A pod namespace and a node namespace joined by a veth (host side pn…, ee:ee:ee:ee:ee:ee). The
// probe opens a packet socket on the pod's eth0 and sends 100 broadcast requests for 169.254.1.1,
// one at a time, timing each until the reply arrives. podnet's responder runs in its own process
// (this file with --responder), as it would in the agent; when stdin closes it prints its stats,
// so the table says how many replies its reply cache sent and how many JS decided and sent.
// The headline pair (podnet, and the kernel with proxy_delay=0) is measured interleaved, A B B A in
// blocks of 50 requests, so that a drift of the machine during the run falls on both alike; the
// kernel with its default proxy_delay (~0.4 s a request) is measured after, in one block.
// The responder reads its socket on the addon's receive thread (fastPathThread, the default);
// PODNET_ARP_THREAD=0 polls it on the event loop instead. Either way the run also compares the two
// in the same conditions: 100 requests to a fresh responder of the headline's kind (A), then of the
// other kind (B), again B, and again A, giving `thread_p50_ms` and `loop_p50_ms` over 200 each.
// Last line: one JSON object.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { ArpResponder, decodeArpFrame, ETH_P_ARP, encodeArpFrame } from '../packages/arp/dist/index.js';
import { openPacket } from '../packages/native/dist/index.js';
import { cleanupStale, NetnsSet } from '../packages/testkit/dist/index.js';

const REQUESTS = 100;
const HOST_MAC = 'ee:ee:ee:ee:ee:ee';
const HOST_IF = 'pn0a1b2c3d4e5';
const POD_IP = '10.65.0.7';
const GATEWAY = '169.254.1.1';
const TIMEOUT_MS = 3000;
const FAST_PATH_THREAD = process.env.PODNET_ARP_THREAD !== '0';

if (process.argv[2] === '--responder') {
  // Child: serve one interface until stdin closes.
  const [, , , netns, ifindex, how] = process.argv;
  const arp = new ArpResponder({ netns, fastPathThread: how === 'thread' });
  await arp.addInterface({ ifname: HOST_IF, ifindex: Number(ifindex), podIPs: [POD_IP], hostMac: HOST_MAC });
  process.stdout.write('ready\n');
  process.stdin.resume();
  process.stdin.on('end', async () => {
    const { replies, repliesFromCache } = arp.stats();
    process.stdout.write(`${JSON.stringify({ stats: { replies, repliesFromCache } })}\n`);
    await arp.close();
    process.exit(0);
  });
} else {
  await main();
}

/** Serves the pod interface from a responder process (on its receive thread or not) while probing. */
async function viaResponder(node, pod, hostIfindex, podLink, thread, count = REQUESTS) {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(
    process.execPath,
    [self, '--responder', node.path, String(hostIfindex), thread ? 'thread' : 'loop'],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  try {
    const [line] = await Promise.race([
      once(child.stdout, 'data'),
      once(child, 'exit').then(() => {
        throw new Error('responder process exited before it was ready');
      }),
    ]);
    if (!String(line).includes('ready')) throw new Error(`responder: ${line}`);
    const result = await probe(pod, podLink.ifindex, podLink.address, count);
    let childOut = '';
    child.stdout.on('data', (d) => {
      childOut += d;
    });
    child.stdin.end();
    await once(child, 'exit');
    const stats = childOut
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l).stats)
      .at(-1);
    if (!stats) throw new Error(`responder printed no stats: ${JSON.stringify(childOut)}`);
    return { ...result, stats };
  } finally {
    if (child.exitCode === null) {
      child.stdin.end();
      child.kill('SIGTERM');
    }
  }
}

function summary(rtts, lost = 0, wrongMac = 0) {
  const sorted = [...rtts].sort((a, b) => a - b);
  const q = (p) =>
    sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : Number.NaN;
  return {
    p50: q(0.5),
    p90: q(0.9),
    p99: q(0.99),
    max: sorted.at(-1) ?? Number.NaN,
    lost,
    wrongMac,
    n: sorted.length,
    rtts,
  };
}

async function probe(pod, podIfindex, podMac, count = REQUESTS) {
  const sock = openPacket({ ifindex: podIfindex, ethertype: ETH_P_ARP, netns: pod.path });
  const request = encodeArpFrame({
    ethDst: 'ff:ff:ff:ff:ff:ff',
    ethSrc: podMac,
    op: 1,
    sha: podMac,
    spa: POD_IP,
    tha: '00:00:00:00:00:00',
    tpa: GATEWAY,
  });
  let waiting;
  sock.onFrame((frame, meta) => {
    if (meta.pktType === 4 || !waiting) return;
    const d = decodeArpFrame(frame);
    if (d.type !== 'arp' || d.packet.op !== 2 || d.packet.spa !== GATEWAY || d.packet.tpa !== POD_IP) return;
    waiting(d.packet.sha);
  });
  const rtts = [];
  let lost = 0;
  let wrongMac = 0;
  for (let i = 0; i < count; i++) {
    const got = new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), TIMEOUT_MS);
      waiting = (mac) => {
        clearTimeout(timer);
        resolve(mac);
      };
    });
    const t0 = process.hrtime.bigint();
    sock.send(request);
    const mac = await got;
    const rtt = Number(process.hrtime.bigint() - t0) / 1e6;
    waiting = undefined;
    if (mac === undefined) lost++;
    else {
      if (mac !== HOST_MAC) wrongMac++;
      rtts.push(rtt);
    }
    await new Promise((r) => setTimeout(r, 2)); // let late duplicates drain
  }
  sock.close();
  return summary(rtts, lost, wrongMac);
}

async function main() {
  await cleanupStale();
  const lab = new NetnsSet();
  try {
    const node = await lab.create('bencharpnode');
    const pod = await lab.create('bencharppod');
    await node.ip('link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.name);
    await node.ip('link', 'set', HOST_IF, 'address', HOST_MAC, 'up');
    await node.ip('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up1');
    await node.ip('link', 'set', 'up0', 'up');
    await node.ip('link', 'set', 'up1', 'up');
    await node.ip('addr', 'add', '172.20.0.1/24', 'dev', 'up0');
    await node.ip('route', 'add', 'default', 'via', '172.20.0.254', 'dev', 'up0');
    await node.ip('route', 'add', `${POD_IP}/32`, 'dev', HOST_IF, 'scope', 'link');
    await node.sysctl('net.ipv4.ip_forward', 1);
    await node.sysctl(`net.ipv4.conf.${HOST_IF}.forwarding`, 1);
    await pod.ip('link', 'set', 'eth0', 'up');
    await pod.ip('addr', 'add', `${POD_IP}/32`, 'dev', 'eth0');
    const [hostLink] = await node.ipJson('link', 'show', HOST_IF);
    const [podLink] = await pod.ipJson('link', 'show', 'eth0');
    const defaultDelay = (await node.run('cat', [`/proc/sys/net/ipv4/neigh/${HOST_IF}/proxy_delay`])).trim();

    // 0. Warm-up, not measured: the probe's own code (send, onFrame, decode, timers) is compiled by
    // V8 as it runs, so whichever phase came first measured a colder probe. 100 requests answered
    // by the kernel (proxy_delay=0) first, then proxy_delay back to its default.
    await node.sysctl(`net.ipv4.conf.${HOST_IF}.proxy_arp`, 1);
    await node.sysctl(`net.ipv4.neigh.${HOST_IF}.proxy_delay`, 0);
    await probe(pod, podLink.ifindex, podLink.address);
    await node.sysctl(`net.ipv4.neigh.${HOST_IF}.proxy_delay`, defaultDelay);

    // 1. The headline: podnet's userspace responder (in its own process) against kernel proxy ARP
    // with proxy_delay=0, interleaved A B B A in blocks of 50 requests (100 each in all), so that
    // a drift of the machine during the run (CPU placement, frequency) falls on both alike.
    const serve = (thread, count) => viaResponder(node, pod, hostLink.ifindex, podLink, thread, count);
    await node.sysctl(`net.ipv4.neigh.${HOST_IF}.proxy_delay`, 0);
    const byKernel = async () => {
      await node.sysctl(`net.ipv4.conf.${HOST_IF}.proxy_arp`, 1);
      const r = await probe(pod, podLink.ifindex, podLink.address, REQUESTS / 2);
      await node.sysctl(`net.ipv4.conf.${HOST_IF}.proxy_arp`, 0);
      return r;
    };
    await node.sysctl(`net.ipv4.conf.${HOST_IF}.proxy_arp`, 0);
    const p1 = await serve(FAST_PATH_THREAD, REQUESTS / 2);
    const k1 = await byKernel();
    const k2 = await byKernel();
    const p2 = await serve(FAST_PATH_THREAD, REQUESTS / 2);
    const podnet = summary([...p1.rtts, ...p2.rtts], p1.lost + p2.lost, p1.wrongMac + p2.wrongMac);
    const kernel0 = summary([...k1.rtts, ...k2.rtts], k1.lost + k2.lost, k1.wrongMac + k2.wrongMac);
    const stats = {
      replies: p1.stats.replies + p2.stats.replies,
      repliesFromCache: p1.stats.repliesFromCache + p2.stats.repliesFromCache,
    };
    // 1b. The receive thread against the event loop, same run, in the order A B B A (A: the headline's).
    const a1 = await serve(FAST_PATH_THREAD);
    const o1 = await serve(!FAST_PATH_THREAD);
    const o2 = await serve(!FAST_PATH_THREAD);
    const a2 = await serve(FAST_PATH_THREAD);
    const [t1, t2, l1, l2] = FAST_PATH_THREAD ? [a1, a2, o1, o2] : [o1, o2, a1, a2];
    const onThread = summary([...t1.rtts, ...t2.rtts], t1.lost + t2.lost, t1.wrongMac + t2.wrongMac);
    const onLoop = summary([...l1.rtts, ...l2.rtts], l1.lost + l2.lost, l1.wrongMac + l2.wrongMac);

    // 2. Kernel proxy ARP with the default proxy_delay (100 requests; each waits the delay).
    await node.sysctl(`net.ipv4.neigh.${HOST_IF}.proxy_delay`, defaultDelay);
    await node.sysctl(`net.ipv4.conf.${HOST_IF}.proxy_arp`, 1);
    const kernel = await probe(pod, podLink.ifindex, podLink.address);

    const f = (x) => (Number.isNaN(x) ? '-' : x.toFixed(3));
    console.log(
      `\npodnet's socket is read ${FAST_PATH_THREAD ? 'on a receive thread (fastPathThread)' : 'on the event loop (PODNET_ARP_THREAD=0)'}`,
    );
    console.log(`ARP for ${GATEWAY} from a pod, ${REQUESTS} sequential broadcast requests (ms)`);
    const head = ['', 'p50', 'p90', 'p99', 'max', 'answered', 'lost'];
    console.log(head.map((c, i) => c.padEnd(i === 0 ? 44 : 10)).join(''));
    for (const [name, r] of [
      ['podnet userspace responder (2 x 50)', podnet],
      ['kernel proxy_arp, proxy_delay=0 (2 x 50)', kernel0],
      [`kernel proxy_arp (proxy_delay=${defaultDelay})`, kernel],
      ['podnet, receive thread (2 x 100)', onThread],
      ['podnet, event loop (2 x 100)', onLoop],
    ]) {
      console.log(
        [name, f(r.p50), f(r.p90), f(r.p99), f(r.max), String(r.n), String(r.lost)]
          .map((c, i) => c.padEnd(i === 0 ? 44 : 10))
          .join(''),
      );
    }
    console.log(
      `podnet replies: ${stats.replies}, of which ${stats.repliesFromCache} from the reply cache (addon) ` +
        `and ${stats.replies - stats.repliesFromCache} decided and sent by JS`,
    );
    for (const r of [podnet, kernel, kernel0, onThread, onLoop]) {
      if (r.wrongMac) throw new Error(`${r.wrongMac} replies did not carry ${HOST_MAC}`);
      if (r.n === 0) throw new Error('no replies at all');
    }
    console.log(
      JSON.stringify({
        bench: 'arp',
        requests: REQUESTS,
        podnet_p50_ms: +podnet.p50.toFixed(4),
        kernel_p50_ms: +kernel.p50.toFixed(4),
        kernel_delay0_p50_ms: +kernel0.p50.toFixed(4),
        ratio: +(podnet.p50 / kernel0.p50).toFixed(3),
        podnet_replies: stats.replies,
        podnet_cache_replies: stats.repliesFromCache,
        fast_path_thread: FAST_PATH_THREAD,
        thread_p50_ms: +onThread.p50.toFixed(4),
        loop_p50_ms: +onLoop.p50.toFixed(4),
        thread_p90_ms: +onThread.p90.toFixed(4),
        loop_p90_ms: +onLoop.p90.toFixed(4),
      }),
    );
  } finally {
    await lab.destroy();
  }
}
