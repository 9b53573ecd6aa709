// npm run bench -- convergence [--pods 100] [--arp-mode userspace|kernel]
//
// On the lab (compose.yaml on namespaces, hold time 3 s): 100 pods created one by one, alternately
// on node-a and node-b. For each, the time from `podnet-cni ADD` returning to the first ICMP echo
// reply from a pod on node-c (cross-node) and from the external client (through the ToR). Then the
// time until a deleted pod's address is no longer routed to its node, and the time until a killed
// node's routes are withdrawn everywhere (node-a, node-c and the ToR).
// Reference figures (not run here): Calico's BIRD reads the kernel table every 2 s by default.
// Last line: {"bench":"convergence","pods":…,"p50_ms":…,"p99_ms":…,"client_p99_ms":…,
//             "pod_delete_withdraw_ms":…,"node_kill_withdraw_ms":…}
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import { Lab, table } from '../packages/lab/dist/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: { pods: { type: 'string', default: '100' }, 'arp-mode': { type: 'string', default: 'userspace' } },
});
if (values['arp-mode'] !== 'userspace' && values['arp-mode'] !== 'kernel') {
  console.error(`convergence: --arp-mode ${values['arp-mode']}: expected userspace or kernel`);
  process.exit(2);
}
const podCount = Number(values.pods);
if (!Number.isInteger(podCount) || podCount < 1 || podCount > 500) {
  console.error(`convergence: --pods ${values.pods}: expected 1..500`);
  process.exit(2);
}

// compose.yaml with hold time 3 s (keepalive 1 s) and one pod per node to start with.
const work = `/tmp/podnet-bench-convergence-${process.pid}`;
mkdirSync(work, { recursive: true });
const doc = parseDocument(readFileSync(join(root, 'compose.yaml'), 'utf8'), { merge: true });
doc.setIn(['x-podnet', 'podsPerNode'], 1);
doc.setIn(['x-podnet', 'bgp', 'holdTime'], 3);
doc.setIn(['x-podnet', 'bgp', 'keepaliveTime'], 1);
for (const node of ['node-a', 'node-b', 'node-c']) {
  doc.setIn(['services', node, 'environment', 'PODNET_ARP_MODE'], values['arp-mode']);
}
const composeFile = join(work, 'compose.yaml');
writeFileSync(composeFile, doc.toString());

const lab = new Lab({
  repoRoot: root,
  composeFile,
  stateDir: join(work, 'state'),
  prefix: `pnb${process.pid}-`,
  log: (l) => process.stderr.write(`[lab] ${l}\n`),
});

/** Milliseconds from `t0` (epoch ms) to the first echo reply from `ip`, or undefined after `limitMs`. */
function firstReply(ns, ip, t0, limitMs = 10_000) {
  return new Promise((done) => {
    const child = spawn('ip', [
      'netns',
      'exec',
      ns,
      'ping',
      '-D',
      '-n',
      '-i',
      '0.002',
      '-W',
      '1',
      '-w',
      String(Math.ceil(limitMs / 1000)),
      ip,
    ]);
    let buf = '';
    let settled = false;
    child.stdout.on('data', (d) => {
      buf += d.toString();
      const m = /^\[(\d+\.\d+)\] \d+ bytes from/m.exec(buf);
      if (m && !settled) {
        settled = true;
        child.kill('SIGKILL');
        done(Math.max(0, Number(m[1]) * 1000 - t0));
      }
    });
    child.on('exit', () => {
      if (!settled) done(undefined);
    });
  });
}

const routesVia = (ns, gw) => {
  const out = execFileSync('ip', ['-4', '-n', ns, '-json', 'route', 'show']).toString();
  const rs = out.trim() ? JSON.parse(out) : [];
  return rs.filter((r) => r.gateway === gw || r.nexthops?.some((h) => h.gateway === gw));
};
const routedTo = (ns, ip) => {
  const out = execFileSync('ip', ['-4', '-n', ns, '-json', 'route', 'show']).toString();
  return (out.trim() ? JSON.parse(out) : []).some((r) => r.dst === ip);
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};
const r1 = (x) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : null);

let exitCode = 0;
let summary;
try {
  await lab.up();
  const probes = await lab.waitForReachability(4);
  const bad = probes.filter((p) => !p.ok);
  if (bad.length)
    throw new Error(
      `lab not fully reachable before the benchmark: ${bad.map((p) => `${p.from}→${p.to}`).join(', ')}`,
    );
  const src = lab.pods.find((p) => p.node === 'node-c');
  const client = lab.service('client');

  const cross = [];
  const slowPods = [];
  const viaTor = [];
  let missed = 0;
  for (let i = 0; i < podCount; i++) {
    const node = i % 2 === 0 ? 'node-a' : 'node-b';
    const pod = await lab.addPod(node, `bench-${i}`);
    const t0 = Date.now();
    const [a, b] = await Promise.all([firstReply(src.ns, pod.ipv4, t0), firstReply(client.ns, pod.ipv4, t0)]);
    if (a === undefined || b === undefined) missed++;
    if (a !== undefined) cross.push(a);
    if (a !== undefined && a > 200) slowPods.push(`${pod.name} ${Math.round(a)} ms`);
    if (b !== undefined) viaTor.push(b);
    if ((i + 1) % 10 === 0)
      process.stderr.write(
        `[bench] ${i + 1}/${podCount} pods, last ${r1(a)} ms cross-node, ${r1(b)} ms client\n`,
      );
  }

  // Pod delete: from the delete until the pod's address is no longer routed on its node.
  const deletes = [];
  for (let i = 0; i < Math.min(10, podCount); i++) {
    const pod = lab.pods.find((p) => p.name === `bench-${i}`);
    const nodeNs = lab.service(pod.node).ns;
    const t0 = Date.now();
    await lab.deletePod(pod.name);
    while (routedTo(nodeNs, pod.ipv4) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 5));
    deletes.push(Date.now() - t0);
  }

  // Node kill: its link down (no FIN reaches the peers), then its agent SIGKILLed; until no route via
  // node-b anywhere.
  const bIp = lab.service('node-b').links[0].ipv4.split('/')[0];
  const watchers = ['node-a', 'node-c', 'tor'].map((n) => lab.service(n).ns);
  const t0 = Date.now();
  execFileSync('ip', ['-n', lab.service('node-b').ns, 'link', 'set', 'eth0', 'down']);
  await lab.stopService('node-b', 'SIGKILL');
  const limit = 120_000;
  while (watchers.some((ns) => routesVia(ns, bIp).length > 0) && Date.now() - t0 < limit) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const nodeKill = watchers.some((ns) => routesVia(ns, bIp).length > 0) ? NaN : Date.now() - t0;

  const { restartTime } = lab.project.settings.bgp;
  console.log(
    `\nconvergence on the lab (3 nodes, BIRD ToR, hold time 3 s, graceful restart time ${restartTime} s, ARP ${values['arp-mode']})`,
  );
  console.log(
    table(
      ['measure', 'n', 'p50 ms', 'p99 ms', 'max ms'],
      [
        [
          'pod reachable cross-node (node-c pod)',
          String(cross.length),
          String(r1(pct(cross, 50))),
          String(r1(pct(cross, 99))),
          String(r1(Math.max(...cross))),
        ],
        [
          'pod reachable from client via ToR',
          String(viaTor.length),
          String(r1(pct(viaTor, 50))),
          String(r1(pct(viaTor, 99))),
          String(r1(Math.max(...viaTor))),
        ],
        [
          'pod delete → address unrouted on node',
          String(deletes.length),
          String(r1(pct(deletes, 50))),
          String(r1(pct(deletes, 99))),
          String(r1(Math.max(...deletes))),
        ],
        ['node kill → routes withdrawn everywhere', '1', String(r1(nodeKill)), '', ''],
      ],
    ),
  );
  console.log(
    `${slowPods.length} of ${cross.length} pods took over 200 ms cross-node (goal: p99 < 200 ms)` +
      (slowPods.length ? `: ${slowPods.join(', ')}` : ''),
  );
  if (missed) console.log(`${missed} pods were not reachable within 10 s from at least one source`);
  console.log('reference: Calico/BIRD picks up kernel routes on a 2 s scan by default (not run here)');
  summary = JSON.stringify({
    bench: 'convergence',
    pods: podCount,
    p50_ms: r1(pct(cross, 50)),
    p99_ms: r1(pct(cross, 99)),
    client_p99_ms: r1(pct(viaTor, 99)),
    pod_delete_withdraw_ms: r1(pct(deletes, 50)),
    node_kill_withdraw_ms: r1(nodeKill),
  });
} catch (err) {
  console.error(`convergence: ${err.message}`);
  exitCode = 1;
} finally {
  await lab.down({ quiet: true }).catch(() => {});
  rmSync(work, { recursive: true, force: true });
}
// The JSON line comes last, after the lab's teardown messages.
if (summary) console.log(summary);
process.exit(exitCode);
