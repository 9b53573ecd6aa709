// npm run bench -- services [--services 1000] [--samples 200] [--one 200]
//
// On the lab (compose.yaml on namespaces, BIRD ToR): 1,000 LoadBalancer Services with
// externalTrafficPolicy Local, 5 endpoints each spread over the three nodes (so every node serves
// every Service and the ToR holds each /32 via all three). The bench writes the EndpointSlices, as
// the endpointslice controller would (the lab has none).
//
// Measured:
// - converge: from the last Service written until the ToR's kernel holds every /32 with the right
//   next hops; then `mismatches` = /32s whose next hops differ from the nodes with endpoints, and
//   `duplicates` = LoadBalancer addresses held by more than one Service in the API.
// - withdraw: for `samples` Services, the endpoints on one node are removed (EndpointSlice update);
//   the time from the API's answer until the ToR's kernel route no longer goes via that node
//   (`ip monitor route` in the ToR's namespace, then a read of the route).
// - reference, same run, same ToR: BIRD's own time to apply a route change from its configuration
//   (`birdc configure` removing a static /32), until the ToR's kernel drops it. The ratio is
//   withdraw p99 / reference p99.
// - allocation: podnet's LoadBalancer allocator (the agents' elected one) hands out the addresses
//   from a LoadBalancerPool; from just before each Service's create until a watch on the Services
//   delivers its status.loadBalancer.ingress.
//   - latency (`alloc_p50_ms`, `alloc_p99_ms`): with the 1,000 in place and the rest of the bench
//     done, `--one` more Services (default 200) created one at a time, each waiting for its
//     address before the next: what one Service sees. Split in phases (POST answered, its
//     LoadBalancerAddress seen on a watch, its status seen).
//   - throughput (`alloc_per_s`, and `alloc_burst_p50_ms` / `alloc_burst_p99_ms`): the 1,000
//     created 8 in flight, each worker waiting for its Service's address and writing its slice
//     before the next. A closed loop: each waits behind the other seven, so its latency is
//     mostly that queue (about 8 / throughput) and says more about throughput than latency.
// - API writes per Service: the growth of the embedded API server's resourceVersion (one per
//   write of any object) over the create phase, divided by the Services; the bench's own writes
//   (Service, EndpointSlice) are part of it and shown apart.
// Last line: {"bench":"services","services":…,"alloc_p99_ms":…,"alloc_burst_p99_ms":…,"alloc_per_s":…,"withdraw_p50_ms":…,
//             "withdraw_p99_ms":…,"ref_p99_ms":…,"ratio":…,"duplicates":…,"mismatches":…,…}
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import { Lab, table } from '../packages/lab/dist/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '1000' },
    samples: { type: 'string', default: '200' },
    one: { type: 'string', default: '200' },
  },
});
const count = Number(values.services);
const samples = Number(values.samples);
const ones = Number(values.one);
if (!Number.isInteger(count) || count < 1 || count > 4000) {
  console.error(`services: --services ${values.services}: expected 1..4000`);
  process.exit(2);
}
if (!Number.isInteger(ones) || ones < 1 || ones > Math.min(1000, 4096 - count)) {
  console.error(
    `services: --one ${values.one}: expected 1..${Math.min(1000, 4096 - count)} (the pool holds 4,096)`,
  );
  process.exit(2);
}
if (!Number.isInteger(samples) || samples < 1 || samples > count) {
  console.error(`services: --samples ${values.samples}: expected 1..${count}`);
  process.exit(2);
}

const RANGE = '198.18.0.0/20';
/** The address the allocator gave each Service, by index. */
const addresses = new Map();
const addressOf = (i) => addresses.get(`svc-${i}`);
const NS = 'default';
const SERVICES = `/api/v1/namespaces/${NS}/services`;
const ADDRESSES = '/apis/podnet.io/v1alpha1/loadbalanceraddresses';
const SLICES = `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`;
const NODES = ['node-a', 'node-b', 'node-c'];

const work = `/tmp/podnet-bench-services-${process.pid}`;
mkdirSync(work, { recursive: true });
const doc = parseDocument(readFileSync(join(root, 'compose.yaml'), 'utf8'), { merge: true });
doc.setIn(['x-podnet', 'podsPerNode'], 1);
const composeFile = join(work, 'compose.yaml');
writeFileSync(composeFile, doc.toString());
const stateDir = join(work, 'state');
const lab = new Lab({
  repoRoot: root,
  composeFile,
  stateDir,
  prefix: `pnb${process.pid}-`,
  log: (l) => process.stderr.write(`[lab] ${l}\n`),
});

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : Number.NaN;
};
const r1 = (x) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : null);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let writes = 0;
async function write(method, path, body) {
  writes++;
  const r = await lab.kube.request(method, path, body);
  if (r.status >= 300)
    throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
  return r.body;
}

/** Five endpoints, the k-th on node (i + k) mod 3, minus those on `without`. */
function slice(i, without) {
  const endpoints = [];
  for (let k = 0; k < 5; k++) {
    const node = NODES[(i + k) % 3];
    if (node === without) continue;
    const n = i * 5 + k;
    endpoints.push({
      addresses: [`100.64.${(n >> 8) & 0xff}.${n & 0xff}`],
      nodeName: node,
      conditions: { ready: true },
    });
  }
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `svc-${i}-1`, namespace: NS, labels: { 'kubernetes.io/service-name': `svc-${i}` } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints,
  };
}

/** Runs `fn` over 0..n-1 with `width` in flight. */
async function pool(n, width, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

/** The ToR kernel's IPv4 routes, dst → sorted next hops. */
function torTable(torNs) {
  const out = execFileSync('ip', ['-4', '-n', torNs, '-json', 'route', 'show'], {
    maxBuffer: 64 << 20,
  }).toString();
  const m = new Map();
  for (const r of out.trim() ? JSON.parse(out) : [])
    m.set(
      r.dst,
      (r.nexthops ?? [r])
        .map((h) => h.gateway)
        .filter(Boolean)
        .sort(),
    );
  return m;
}

/**
 * Watches the ToR's kernel routes: `waitFor(dst, ok)` resolves with the time (ms, performance.now)
 * of the first route event for `dst` after which `ok(nextHops)` holds.
 */
function torMonitor(torNs) {
  const child = spawn('ip', ['-4', '-n', torNs, 'monitor', 'route']);
  const waiters = new Set();
  let buf = '';
  child.stdout.on('data', (d) => {
    const at = performance.now();
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop();
    const text = lines.join('\n');
    for (const w of [...waiters]) {
      if (!text.includes(`${w.dst} `) && !text.includes(`${w.dst}\n`)) continue;
      const r = execFileSync('ip', ['-4', '-n', torNs, '-json', 'route', 'show', `${w.dst}/32`]).toString();
      const routes = r.trim() ? JSON.parse(r) : [];
      const hops = routes.length ? (routes[0].nexthops ?? [routes[0]]).map((h) => h.gateway).sort() : [];
      if (w.ok(hops)) {
        waiters.delete(w);
        w.resolve(at);
      }
    }
  });
  return {
    waitFor(dst, ok, limitMs = 10_000) {
      return new Promise((resolveWait) => {
        const w = { dst, ok, resolve: resolveWait };
        waiters.add(w);
        setTimeout(() => {
          if (waiters.delete(w)) resolveWait(undefined);
        }, limitMs);
      });
    },
    stop: () => child.kill('SIGTERM'),
  };
}

let exitCode = 0;
let summary;
let monitor;
try {
  await lab.up();
  const tor = lab.service('tor');
  const nodeIp = (n) => lab.service(n).links[0].ipv4.split('/')[0];
  const conf = await lab.kube.get('/apis/podnet.io/v1alpha1/bgpconfigurations/default');
  await write('PATCH', '/apis/podnet.io/v1alpha1/bgpconfigurations/default', {
    spec: { ...conf.spec, serviceLoadBalancerIPs: [{ cidr: RANGE }] },
  }).catch(async () => {
    // The lab's Kube.apply does the merge patch with the right content type.
    await lab.kube.apply('/apis/podnet.io/v1alpha1/bgpconfigurations', {
      apiVersion: 'podnet.io/v1alpha1',
      kind: 'BGPConfiguration',
      metadata: { name: 'default' },
      spec: { ...conf.spec, serviceLoadBalancerIPs: [{ cidr: RANGE }] },
    });
  });
  await lab.kube.apply('/apis/podnet.io/v1alpha1/loadbalancerpools', {
    apiVersion: 'podnet.io/v1alpha1',
    kind: 'LoadBalancerPool',
    metadata: { name: 'bench' },
    spec: { addresses: [RANGE] },
  });
  const eventsBefore = (await lab.kube.list(`/api/v1/namespaces/${NS}/events`)).length;
  const createdAt = new Map();
  const allocatedAt = new Map();
  // Each Service's first address, as the API server's watch delivers it (no polling load on the
  // server the allocator writes to).
  const arrived = new Map();
  const waiting = new Map();
  const rvStart = (await lab.kube.request('GET', `${SERVICES}?limit=1`)).body.metadata?.resourceVersion;
  const watch = lab.kube.watch(`${SERVICES}?watch=1&resourceVersion=${rvStart}`, (ev) => {
    const name = ev.object?.metadata?.name;
    const ip = ev.object?.status?.loadBalancer?.ingress?.[0]?.ip;
    if (!name || !ip || arrived.has(name)) return;
    arrived.set(name, { at: performance.now(), ip });
    waiting.get(name)?.();
  });
  await watch.opened;
  // When each Service's LoadBalancerAddress appeared, to split the one-at-a-time latency in phases.
  const heldAt = new Map();
  const rvAddr = (await lab.kube.request('GET', `${ADDRESSES}?limit=1`)).body.metadata?.resourceVersion;
  const addrWatch = lab.kube.watch(`${ADDRESSES}?watch=1&resourceVersion=${rvAddr}`, (ev) => {
    if (ev.type !== 'ADDED' && ev.type !== 'MODIFIED') return;
    for (const h of ev.object?.spec?.services ?? [])
      if (!heldAt.has(h.name)) heldAt.set(h.name, performance.now());
  });
  await addrWatch.opened;
  /** Waits (at most 10 s) until the watch has shown the Service's address. */
  async function awaitAddress(name) {
    if (!arrived.has(name)) await Promise.race([new Promise((r) => waiting.set(name, r)), sleep(10_000)]);
    waiting.delete(name);
    const got = arrived.get(name);
    if (!got) return;
    allocatedAt.set(name, got.at);
    addresses.set(name, got.ip);
  }
  const rv = async () =>
    Number((await lab.kube.request('GET', `${SERVICES}?limit=1`)).body.metadata?.resourceVersion);
  const rvBefore = await rv();

  // ---- 1,000 Services, their addresses and their EndpointSlices.
  const writesBefore = writes;
  const t0 = performance.now();
  await pool(count, 8, async (i) => {
    createdAt.set(`svc-${i}`, performance.now());
    await write('POST', SERVICES, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `svc-${i}`, namespace: NS },
      spec: {
        type: 'LoadBalancer',
        externalTrafficPolicy: 'Local',
        selector: { app: `svc-${i}` },
        ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }],
      },
    });
    await awaitAddress(`svc-${i}`);
    await write('POST', SLICES, slice(i));
    if ((i + 1) % 100 === 0) process.stderr.write(`[bench] ${i + 1}/${count} Services written\n`);
  });
  const written = performance.now();
  const createWrites = writes - writesBefore;
  const got = () => [...createdAt.keys()].filter((n) => arrived.has(n)).length;
  for (let waited = 0; got() < count && waited < 120_000; waited += 100) await sleep(100);
  for (const n of createdAt.keys()) {
    const a = arrived.get(n);
    if (a) {
      allocatedAt.set(n, a.at);
      addresses.set(n, a.ip);
    }
  }
  if (allocatedAt.size < count)
    throw new Error(`only ${allocatedAt.size} of ${count} Services got an address`);
  const allocs = [...createdAt].map(([n, t]) => allocatedAt.get(n) - t);
  const allocSpan = Math.max(...allocatedAt.values()) - Math.min(...createdAt.values());
  await sleep(2000);
  const apiWrites = (await rv()) - rvBefore;

  // ---- Converged: every /32 in the ToR's kernel via exactly the three nodes.
  const all = NODES.map(nodeIp).sort();
  let converged = Number.NaN;
  let t = torTable(tor.ns);
  const isDone = (tb) =>
    Array.from({ length: count }, (_, i) => tb.get(addressOf(i))).every((h) => h?.join() === all.join());
  for (let waited = 0; waited < 120_000; waited += 200) {
    t = torTable(tor.ns);
    if (isDone(t)) {
      converged = performance.now() - written;
      break;
    }
    await sleep(200);
  }
  const mismatches = Array.from({ length: count }, (_, i) => t.get(addressOf(i))).filter(
    (h) => h?.join() !== all.join(),
  ).length;
  const ingress = new Map();
  for (const s of await lab.kube.list(SERVICES))
    for (const g of s.status?.loadBalancer?.ingress ?? []) ingress.set(g.ip, (ingress.get(g.ip) ?? 0) + 1);
  const duplicates = [...ingress.values()].filter((n) => n > 1).length;

  // ---- Withdraw: remove one node's endpoints of a Service; until the ToR's route leaves that node.
  monitor = torMonitor(tor.ns);
  await sleep(200);
  const withdraws = [];
  let missed = 0;
  for (let s = 0; s < samples; s++) {
    const i = Math.floor((s * count) / samples);
    const without = NODES[s % 3];
    const gone = nodeIp(without);
    const seen = monitor.waitFor(addressOf(i), (hops) => hops.length > 0 && !hops.includes(gone));
    const cur = await lab.kube.get(`${SLICES}/svc-${i}-1`);
    const body = slice(i, without);
    body.metadata.resourceVersion = cur.metadata.resourceVersion;
    await write('PUT', `${SLICES}/svc-${i}-1`, body);
    const tw = performance.now();
    const at = await seen;
    if (at === undefined) missed++;
    else withdraws.push(Math.max(0, at - tw));
  }
  const changeWrites = samples;

  // ---- Reference: BIRD applying the removal of a static /32 from its own configuration.
  const confFile = join(stateDir, 'tor', 'bird.conf');
  const sock = join(stateDir, 'tor', 'root', 'run', 'bird', 'bird.ctl');
  const base = readFileSync(confFile, 'utf8');
  const refs = [];
  for (let k = 0; k < 30; k++) {
    const dst = `198.19.0.${k + 1}`;
    writeFileSync(
      confFile,
      `${base}\nprotocol static bench_ref {\n  ipv4;\n  route ${dst}/32 via ${all[0]};\n}\n`,
    );
    const added = monitor.waitFor(dst, (hops) => hops.length > 0);
    execFileSync('birdc', ['-s', sock, 'configure']);
    if ((await added) === undefined) throw new Error(`reference: BIRD did not install ${dst}`);
    const removed = monitor.waitFor(dst, (hops) => hops.length === 0);
    writeFileSync(confFile, base);
    const tr = performance.now();
    execFileSync('birdc', ['-s', sock, 'configure']);
    const at = await removed;
    if (at !== undefined) refs.push(Math.max(0, at - tr));
  }
  const events = (await lab.kube.list(`/api/v1/namespaces/${NS}/events`)).length - eventsBefore;

  // ---- One at a time: `ones` more Services (no endpoints), each created once the last has its address.
  const single = [];
  /** Per one-at-a-time Service: the POST answered, its address object seen, its status seen. */
  const phases = { post: [], take: [], status: [] };
  for (let k = 0; k < ones; k++) {
    const name = `one-${k}`;
    const at = performance.now();
    await write('POST', SERVICES, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: NS },
      spec: {
        type: 'LoadBalancer',
        externalTrafficPolicy: 'Local',
        selector: { app: name },
        ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }],
      },
    });
    const posted = performance.now();
    await awaitAddress(name);
    if (!allocatedAt.has(name)) throw new Error(`${name} got no address within 10 s`);
    single.push(allocatedAt.get(name) - at);
    const held = heldAt.get(name);
    phases.post.push(posted - at);
    if (held !== undefined) {
      phases.take.push(held - posted);
      phases.status.push(allocatedAt.get(name) - held);
    }
  }
  watch.stop();
  addrWatch.stop();

  // The agents' loop passes over the whole run (each Service or slice change leads to one, at most
  // one per 50 ms): how many and what they cost, from each agent's /metrics.
  const passes = NODES.map((n) => {
    const text = execFileSync('ip', [
      'netns',
      'exec',
      lab.service(n).ns,
      process.execPath,
      '-e',
      "fetch('http://127.0.0.1:9091/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))",
    ]).toString();
    const read = (name) =>
      Number(new RegExp(`^${name}\\{result="ok"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    return {
      node: n,
      count: read('podnet_agent_reconcile_duration_seconds_count'),
      sum: read('podnet_agent_reconcile_duration_seconds_sum'),
    };
  });
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(
    `\nServices to the ToR on the lab (3 nodes, BIRD ToR; ${count} LoadBalancer Services, Local, 5 endpoints each); load ${load}`,
  );
  console.log(
    table(
      ['measure', 'n', 'p50 ms', 'p99 ms', 'max ms'],
      [
        ['writing the Services and slices', '1', String(r1(written - t0)), '', ''],
        [
          'Service created → address in its status (8 in flight)',
          String(allocs.length),
          String(r1(pct(allocs, 50))),
          String(r1(pct(allocs, 99))),
          String(r1(Math.max(...allocs))),
        ],
        [
          `one Service at a time (${count} in place) → address`,
          String(single.length),
          String(r1(pct(single, 50))),
          String(r1(pct(single, 99))),
          String(r1(Math.max(...single))),
        ],
        ...[
          ['  of which: POST answered', phases.post],
          ['  then: LoadBalancerAddress created (seen on a watch)', phases.take],
          ['  then: address in the Service status (seen on a watch)', phases.status],
        ].map(([what, xs]) => [
          what,
          String(xs.length),
          String(r1(pct(xs, 50))),
          String(r1(pct(xs, 99))),
          String(r1(Math.max(...xs))),
        ]),
        ['all /32s on the ToR after the last write', '1', String(r1(converged)), '', ''],
        [
          'endpoints leave a node → ToR route updated',
          String(withdraws.length),
          String(r1(pct(withdraws, 50))),
          String(r1(pct(withdraws, 99))),
          String(r1(Math.max(...withdraws))),
        ],
        [
          'reference: BIRD static /32 removed (birdc configure)',
          String(refs.length),
          String(r1(pct(refs, 50))),
          String(r1(pct(refs, 99))),
          String(r1(Math.max(...refs))),
        ],
      ],
    ),
  );
  console.log(
    `API writes while creating: ${apiWrites} for ${count} Services (${createWrites} by the bench: Service, EndpointSlice); ${changeWrites} slice updates after; ${events} Events in ${NS}; ${r1(count / (allocSpan / 1000))} Services allocated per second`,
  );
  console.log(
    `${mismatches} /32s with the wrong next hops on the ToR after convergence; ${missed} withdrawals not seen within 10 s`,
  );
  console.log(
    `agent loop passes: ${passes.map((p) => `${p.node} ${p.count} (mean ${r1((p.sum / p.count) * 1000)} ms, ${r1(p.sum)} s)`).join(', ')}`,
  );
  console.log(`${duplicates} LoadBalancer addresses held by more than one Service (read back from the API)`);
  const w99 = pct(withdraws, 99);
  const ref99 = pct(refs, 99);
  summary = JSON.stringify({
    bench: 'services',
    services: count,
    alloc_p50_ms: r1(pct(single, 50)),
    alloc_p99_ms: r1(pct(single, 99)),
    alloc_burst_p50_ms: r1(pct(allocs, 50)),
    alloc_burst_p99_ms: r1(pct(allocs, 99)),
    alloc_per_s: r1(count / (allocSpan / 1000)),
    write_ms: r1(written - t0),
    converge_ms: r1(converged),
    withdraw_p50_ms: r1(pct(withdraws, 50)),
    withdraw_p99_ms: r1(w99),
    withdraw_missed: missed,
    ref_p99_ms: r1(ref99),
    ratio: r1(w99 / ref99),
    api_writes_per_service: r1(apiWrites / count),
    bench_writes_per_service: r1(createWrites / count),
    duplicates,
    mismatches,
    load,
  });
} catch (err) {
  console.error(`services: ${err.stack ?? err.message}`);
  exitCode = 1;
} finally {
  monitor?.stop();
  await lab.down({ quiet: true }).catch(() => {});
  rmSync(work, { recursive: true, force: true });
}
// The JSON line comes last, after the lab's teardown messages.
if (summary) console.log(summary);
process.exit(exitCode);
