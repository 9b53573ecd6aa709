// Benchmark: the route programmer vs `ip -batch`, same routes, same kernel, same run.
//
// In a fresh namespace with 1,000 pod interfaces (veths) and an uplink: reconcile from empty to
// 10,000 remote-block routes (`10.x.y.0/26 via node`) + 1,000 local pod routes (`/32 dev pn… scope
// link`), then one changed next hop. The reference applies the same 11,000 routes with `ip -batch`
// (route replace …) after podnet's routes are flushed. Last line: one JSON object.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import {
  computeDesired,
  PODNET_PROTO,
  RouteProgrammer,
  rtnetlinkKernel,
} from '../packages/routes/dist/index.js';
import { cleanupStale, NetnsSet } from '../packages/testkit/dist/index.js';

const REMOTE = 10_000;
const LOCAL = 1_000;
const NODES = 100;
const ROUNDS = 3;
const lab = new NetnsSet();

const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const ipIn = (ns, args, input) =>
  execFileSync('ip', ['-n', ns.name, ...args], {
    input,
    maxBuffer: 256 << 20,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
const countOurs = (ns) =>
  ipIn(ns, ['-4', 'route', 'show', 'proto', String(PODNET_PROTO)])
    .toString()
    .split('\n')
    .filter(Boolean).length;

const nodeIP = (i) => `172.20.${Math.floor(i / 250)}.${(i % 250) + 2}`;
const podIf = (i) => `pn${i.toString(16).padStart(11, '0')}`;
const podIP = (i) => `10.64.${Math.floor(i / 250)}.${(i % 250) + 1}`;
const block = (i) => `10.${100 + Math.floor(i / 1024)}.${Math.floor((i % 1024) / 4)}.${(i % 4) * 64}/26`;

function inputs(changed) {
  return {
    localPods: Array.from({ length: LOCAL }, (_, i) => ({ ifname: podIf(i), ips: [podIP(i)] })),
    remote: Array.from({ length: REMOTE }, (_, i) => ({
      prefix: block(i),
      nextHops: [nodeIP(i === 0 && changed ? (i + 1) % NODES : i % NODES)],
    })),
  };
}

async function main() {
  await cleanupStale();
  const ns = await lab.create('benchroutes');
  console.log(`namespace ${ns.name}: creating ${LOCAL} pod interfaces and an uplink…`);
  const setup = [
    'link add up0 type veth peer name up1',
    'link set up0 up',
    'link set up1 up',
    'addr add 172.20.0.1/16 dev up0',
  ];
  for (let i = 0; i < LOCAL; i++) {
    setup.push(`link add ${podIf(i)} type veth peer name pp${i}`, `link set ${podIf(i)} up`);
  }
  ipIn(ns, ['-batch', '-'], `${setup.join('\n')}\n`);

  const desired = computeDesired(inputs(false)).routes;
  const changedSet = computeDesired(inputs(true)).routes;
  const total = desired.length;

  const lines = desired.map((r) => {
    if (r.type === 'local') return `route replace ${r.dst} dev ${r.ifname} proto ${PODNET_PROTO} scope link`;
    return `route replace ${r.dst} via ${r.nexthops[0].gateway} proto ${PODNET_PROTO}`;
  });
  const file = `/tmp/podnet-bench-routes-${process.pid}.batch`;
  writeFileSync(file, `${lines.join('\n')}\n`);

  // Alternate the two from empty, ROUNDS times each, and take the medians (the machine is shared).
  const podnetRuns = [];
  const ipRuns = [];
  let t0;
  for (let round = 0; round < ROUNDS; round++) {
    // podnet: full reconcile from empty (dump links + routes, diff, batched apply).
    const fresh = new RouteProgrammer({
      kernel: rtnetlinkKernel({ netns: ns.path }),
      sysctl: false,
      resyncIntervalMs: 0,
    });
    await fresh.setDesired(desired);
    t0 = process.hrtime.bigint();
    await fresh.start();
    podnetRuns.push(ms(t0));
    const failed = fresh.status().failed;
    if (failed.length || countOurs(ns) !== total) {
      throw new Error(
        `podnet did not install ${total} routes: ${countOurs(ns)} present, failed ${JSON.stringify(failed.slice(0, 3))}`,
      );
    }
    await fresh.stop({ keepRoutes: false });
    if (countOurs(ns) !== 0) throw new Error('podnet routes not removed before the reference run');
    // Reference: the same routes with `ip -batch` (route replace, one netlink request per line).
    t0 = process.hrtime.bigint();
    ipIn(ns, ['-batch', file]);
    ipRuns.push(ms(t0));
    if (countOurs(ns) !== total) throw new Error(`ip -batch installed ${countOurs(ns)} of ${total}`);
    ipIn(ns, ['route', 'flush', 'proto', String(PODNET_PROTO)]);
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const podnetMs = median(podnetRuns);
  const ipMs = median(ipRuns);

  const rp = new RouteProgrammer({
    kernel: rtnetlinkKernel({ netns: ns.path }),
    sysctl: false,
    resyncIntervalMs: 0,
  });
  await rp.setDesired(desired);
  await rp.start();
  // start() installed 11,000 routes, and the programmer's event subscription now holds as many
  // RTM_NEWROUTE events, decoded on this thread. Let that backlog drain before timing single
  // changes; otherwise whichever method is timed first pays for it (it was setDesired).
  await new Promise((r) => setTimeout(r, 3000));

  // podnet: one changed next hop, (a) restating the whole desired set with setDesired (the diff
  // touches only the destinations that changed), (b) with patchDesired (O(changes)).
  const changedRoute = changedSet.find((r) => r.dst === block(0));
  const origRoute = desired.find((r) => r.dst === block(0));
  const viaSet = [];
  for (let k = 0; k < 12; k++) {
    t0 = process.hrtime.bigint();
    await rp.setDesired(k % 2 === 0 ? changedSet : desired);
    viaSet.push(ms(t0));
  }
  const viaPatch = [];
  for (let k = 0; k < 21; k++) {
    t0 = process.hrtime.bigint();
    await rp.patchDesired({ set: [k % 2 === 0 ? changedRoute : origRoute] });
    viaPatch.push(ms(t0));
  }
  const gw = ipIn(ns, ['-j', 'route', 'show', block(0)]).toString();
  if (!gw.includes(`"${nodeIP(1)}"`)) throw new Error(`single change not applied: ${gw}`);
  if (rp.status().ops.replace !== 33) throw new Error(`expected 33 replaces, saw ${rp.status().ops.replace}`);
  const singleMs = median(viaPatch);
  const singleSetMs = median(viaSet);
  await rp.stop({ keepRoutes: false });
  ipIn(ns, ['-batch', file]);
  t0 = process.hrtime.bigint();
  ipIn(ns, ['route', 'replace', block(0), 'via', nodeIP(1), 'proto', String(PODNET_PROTO)]);
  const ipSingleMs = ms(t0);
  execFileSync('rm', ['-f', file]);

  const rows = [
    ['', 'full reconcile (s)', 'routes/s', 'single change (ms)'],
    [
      'podnet (rtnetlink batch)',
      (podnetMs / 1000).toFixed(3),
      Math.round(total / (podnetMs / 1000)),
      `${singleMs.toFixed(2)} (patchDesired)`,
    ],
    ['', '', '', `${singleSetMs.toFixed(2)} (setDesired, all ${total})`],
    [
      'ip -batch',
      (ipMs / 1000).toFixed(3),
      Math.round(total / (ipMs / 1000)),
      `${ipSingleMs.toFixed(2)} (ip process)`,
    ],
  ];
  console.log(
    `\n${total} routes, medians of ${ROUNDS} alternating runs (${REMOTE} remote blocks via ${NODES} nodes + ${LOCAL} local pods)`,
  );
  for (const r of rows) console.log(r.map((c, i) => String(c).padEnd(i === 0 ? 26 : 20)).join(''));
  console.log(
    `full reconcile samples (s): podnet ${podnetRuns.map((x) => (x / 1000).toFixed(3)).join(', ')}; ip -batch ${ipRuns.map((x) => (x / 1000).toFixed(3)).join(', ')}`,
  );
  console.log(`single change samples (ms): patchDesired ${viaPatch.map((x) => x.toFixed(2)).join(', ')}`);
  console.log(`                            setDesired   ${viaSet.map((x) => x.toFixed(2)).join(', ')}`);
  const out = {
    bench: 'routes',
    podnet_s: +(podnetMs / 1000).toFixed(4),
    ip_batch_s: +(ipMs / 1000).toFixed(4),
    ratio: +(podnetMs / ipMs).toFixed(3),
    single_change_ms: +singleMs.toFixed(3),
    single_change_setdesired_ms: +singleSetMs.toFixed(3),
  };
  await lab.destroy();
  console.log(JSON.stringify(out));
}

main().catch(async (err) => {
  console.error(`bench routes: ${err.stack ?? err}`);
  await lab.destroy();
  process.exit(1);
});
