// bgp-ingest: full-table ingest, bgp-ts side by side with BIRD 2 and GoBGP in the same run.
// A feeder (bench/lib/bgp-feeder.mjs) connects to each receiver in its own namespace and, once
// Established, writes 1,000,000 IPv4 prefixes in packed UPDATEs (~10k attribute sets) + End-of-RIB.
// Measured per receiver: time from Established (feeder's view) to End-of-RIB fully processed into
// the receiver's RIB, and the receiver's RSS growth.
//  - bgp-ts: the receiver reports when the End-of-RIB has been processed (all UPDATEs before it
//    are in the Loc-RIB: processing is in order).
//  - BIRD 2: poll `birdc show route count` until it reaches the prefix count.
//  - GoBGP: poll `gobgp global rib summary` until it reaches the prefix count.
// Last line: one JSON object.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cleanupStale,
  exec,
  NetnsSet,
  ProcessGroup,
  vethPair,
  waitFor,
} from '../packages/testkit/dist/index.js';
import { buildFeed } from './lib/bgp-feed.mjs';
import { jsonLines, vmRss } from './lib/proc.mjs';

const here = dirname(fileURLToPath(import.meta.url));
// `npm run bench -- bgp-ingest --prefixes N` runs a smaller table (for a quick look);
// `--runs N` (default 3) repeats bgp-ts and BIRD, interleaved, and reports the median run
// (GoBGP takes minutes per run and runs once).
const argAt = process.argv.indexOf('--prefixes');
const PREFIXES = argAt !== -1 ? Number(process.argv[argAt + 1]) : 1_000_000;
if (!Number.isInteger(PREFIXES) || PREFIXES < 1 || PREFIXES > 4_000_000)
  throw new Error(`--prefixes must be 1..4000000, got ${process.argv[argAt + 1]}`);
const SETS = 10_000;
const runsAt = process.argv.indexOf('--runs');
const RUNS = runsAt !== -1 ? Number(process.argv[runsAt + 1]) : 3;
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 20)
  throw new Error(`--runs must be 1..20, got ${process.argv[runsAt + 1]}`);
const LIMIT_MS = 600_000;
const RECEIVER_AS = 65001;
const FEEDER_AS = 65100;

const lab = new NetnsSet();
const procs = new ProcessGroup();
const work = mkdtempSync(join(tmpdir(), 'pnt-bgp-ingest-'));
const log = (...a) => console.error(...a);

async function startFeeder(ns, n) {
  const child = procs.add(
    ns.spawn(process.execPath, [
      join(here, 'lib/bgp-feeder.mjs'),
      join(work, `feed-${n}.bin`),
      `10.60.${n}.2`,
      `10.60.${n}.1`,
      String(FEEDER_AS),
      String(RECEIVER_AS),
      `10.60.${n}.2`,
    ]),
  );
  const ev = {};
  jsonLines(child, (o) => {
    if (o.event === 'error') log(`feeder ${n}: ${o.error}`);
    ev[o.event] = o;
  });
  child.stderr.on('data', (d) => log(`feeder ${n}: ${d}`));
  const established = await waitFor(`feeder ${n} Established`, () => ev.established, {
    timeoutMs: 60_000,
    intervalMs: 5,
  });
  return { child, ev, t0: established.t };
}

async function stop(child) {
  child.stdin?.end();
  await procs.stop(child, 5000);
}

async function runBgpTs(rns, fns) {
  const child = procs.add(
    rns.spawn(process.execPath, [
      '--expose-gc',
      join(here, 'lib/bgp-receiver.mjs'),
      '10.60.1.1',
      String(RECEIVER_AS),
      '10.60.1.2',
      String(FEEDER_AS),
    ]),
  );
  const ev = {};
  jsonLines(child, (o) => {
    ev[o.event] = o;
  });
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
  });
  const ready = await waitFor(
    'bgp-ts receiver ready',
    () => {
      if (child.exitCode !== null) throw new Error(`receiver exited: ${err}`);
      return ev.ready;
    },
    { timeoutMs: 30_000 },
  );
  const f = await startFeeder(fns, 1);
  const eor = await waitFor(
    'bgp-ts End-of-RIB processed',
    () => {
      if (child.exitCode !== null) throw new Error(`receiver exited: ${err}`);
      return ev.eor;
    },
    { timeoutMs: LIMIT_MS, intervalMs: 5 },
  );
  if (eor.locRib !== PREFIXES)
    throw new Error(`bgp-ts Loc-RIB has ${eor.locRib} prefixes, expected ${PREFIXES}`);
  await stop(f.child);
  await stop(child);
  return {
    ms: eor.t - f.t0,
    rssDelta: eor.rss - ready.rss,
    heapDelta: eor.heapUsed - ready.heapUsed,
    routes: eor.locRib,
  };
}

async function runBird(rns, fns) {
  const dir = join(work, 'bird');
  rmSync(dir, { recursive: true, force: true });
  await exec('mkdir', ['-p', dir]);
  const sock = join(dir, 'bird.ctl');
  writeFileSync(
    join(dir, 'bird.conf'),
    `router id 10.60.2.1;
protocol device { }
protocol bgp feeder {
  local 10.60.2.1 as ${RECEIVER_AS}; neighbor 10.60.2.2 as ${FEEDER_AS}; passive on; hold time 90;
  ipv4 { import all; export none; };
}
`,
  );
  const child = procs.add(rns.spawn('bird', ['-f', '-c', join(dir, 'bird.conf'), '-s', sock]));
  await waitFor(
    'BIRD up',
    async () => (await exec('birdc', ['-s', sock, 'show', 'status'])).stdout.includes('Daemon is up'),
    {
      timeoutMs: 30_000,
    },
  );
  const rss0 = vmRss(child.pid);
  const f = await startFeeder(fns, 2);
  let count = 0;
  const t1 = await waitFor(
    'BIRD to hold every prefix',
    async () => {
      const r = await exec('birdc', ['-s', sock, 'show', 'route', 'count']);
      const m = /(\d+) of (\d+) routes/.exec(r.stdout);
      count = m ? Number(m[1]) : 0;
      return count >= PREFIXES ? Date.now() : undefined;
    },
    { timeoutMs: LIMIT_MS, intervalMs: 50 },
  );
  const rss1 = vmRss(child.pid);
  await stop(f.child);
  await procs.stop(child);
  return { ms: t1 - f.t0, rssDelta: rss1 - rss0, routes: count };
}

async function runGobgp(rns, fns) {
  const conf = join(work, 'gobgpd.toml');
  writeFileSync(
    conf,
    `[global.config]
  as = ${RECEIVER_AS}
  router-id = "10.60.3.1"
  port = 179
  local-address-list = ["10.60.3.1"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.60.3.2"
    peer-as = ${FEEDER_AS}
  [neighbors.timers.config]
    hold-time = 90
  [neighbors.transport.config]
    passive-mode = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
`,
  );
  const child = procs.add(
    rns.spawn('gobgpd', [
      '-f',
      conf,
      '-t',
      'toml',
      '--api-hosts',
      '127.0.0.1:50051',
      '-l',
      'warn',
      '--pprof-disable',
    ]),
  );
  const gobgp = (...a) => rns.exec('gobgp', ['-u', '127.0.0.1', '-p', '50051', ...a]);
  await waitFor('gobgpd up', async () => (await gobgp('global')).code === 0, { timeoutMs: 30_000 });
  const rss0 = vmRss(child.pid);
  const f = await startFeeder(fns, 3);
  let count = 0;
  const t1 = await waitFor(
    'GoBGP to hold every prefix',
    async () => {
      const r = await gobgp('global', 'rib', 'summary', '-a', 'ipv4');
      const m = /Destination:\s*(\d+)/.exec(r.stdout);
      count = m ? Number(m[1]) : 0;
      return count >= PREFIXES ? Date.now() : undefined;
    },
    { timeoutMs: LIMIT_MS, intervalMs: 50 },
  );
  const rss1 = vmRss(child.pid);
  await stop(f.child);
  await procs.stop(child);
  return { ms: t1 - f.t0, rssDelta: rss1 - rss0, routes: count };
}

async function main() {
  await cleanupStale();
  const fns = await lab.create('bgpfeed');
  const rx = [];
  for (let n = 1; n <= 3; n++) {
    const r = await lab.create(`bgprx${n}`);
    await vethPair(r, 'eth0', fns, `f${n}`);
    await r.ip('addr', 'add', `10.60.${n}.1/24`, 'dev', 'eth0');
    await fns.ip('addr', 'add', `10.60.${n}.2/24`, 'dev', `f${n}`);
    rx.push(r);
  }
  const tb = Date.now();
  let updates = 0;
  let bytes = 0;
  for (let n = 1; n <= 3; n++) {
    const feed = buildFeed({ prefixes: PREFIXES, sets: SETS, feederAs: FEEDER_AS, nextHop: `10.60.${n}.2` });
    writeFileSync(join(work, `feed-${n}.bin`), feed.stream);
    updates = feed.updates;
    bytes = feed.stream.length;
  }
  log(
    `feed: ${PREFIXES} prefixes, ${SETS} attribute sets, ${updates} UPDATEs, ${(bytes / 1e6).toFixed(1)} MB (built in ${Date.now() - tb} ms)`,
  );

  const podnetRuns = [];
  const birdRuns = [];
  for (let i = 1; i <= RUNS; i++) {
    log(`run ${i}/${RUNS}: bgp-ts…`);
    podnetRuns.push(await runBgpTs(rx[0], fns));
    log(`run ${i}/${RUNS}: BIRD 2…`);
    birdRuns.push(await runBird(rx[1], fns));
  }
  log('GoBGP (one run)…');
  const gobgp = await runGobgp(rx[2], fns);
  const median = (runs) => [...runs].sort((a, b) => a.ms - b.ms)[Math.floor((runs.length - 1) / 2)];
  const podnet = median(podnetRuns);
  const bird = median(birdRuns);
  log(`bgp-ts runs (s): ${podnetRuns.map((r) => (r.ms / 1000).toFixed(2)).join(', ')}`);
  log(`BIRD 2 runs (s): ${birdRuns.map((r) => (r.ms / 1000).toFixed(2)).join(', ')}`);

  const perS = (r) => Math.round((PREFIXES / r.ms) * 1000);
  const bpp = (r) => Math.round(r.rssDelta / PREFIXES);
  const rows = [
    ['bgp-ts', podnet],
    ['BIRD 2', bird],
    ['GoBGP', gobgp],
  ];
  const pad = (s, n) => String(s).padStart(n);
  console.log(
    `\nbgp-ingest: ${PREFIXES.toLocaleString('en')} IPv4 prefixes, ${SETS.toLocaleString('en')} attribute sets, ${updates.toLocaleString('en')} UPDATEs (median of ${RUNS} runs for bgp-ts and BIRD 2, one for GoBGP)`,
  );
  console.log(
    `${'receiver'.padEnd(10)}${pad('routes', 10)}${pad('time (s)', 10)}${pad('prefixes/s', 12)}${pad('RSS +MB', 10)}${pad('B/prefix', 10)}`,
  );
  for (const [name, r] of rows)
    console.log(
      `${name.padEnd(10)}${pad(r.routes, 10)}${pad((r.ms / 1000).toFixed(2), 10)}${pad(perS(r).toLocaleString('en'), 12)}${pad((r.rssDelta / 1e6).toFixed(1), 10)}${pad(bpp(r), 10)}`,
    );
  console.log(
    `bgp-ts heap growth: ${(podnet.heapDelta / 1e6).toFixed(1)} MB (${Math.round(podnet.heapDelta / PREFIXES)} B/prefix)`,
  );
  const result = {
    bench: 'bgp-ingest',
    prefixes: PREFIXES,
    podnet_per_s: perS(podnet),
    bird_per_s: perS(bird),
    gobgp_per_s: perS(gobgp),
    ratio_bird: Number((perS(podnet) / perS(bird)).toFixed(2)),
    ratio_gobgp: Number((perS(podnet) / perS(gobgp)).toFixed(2)),
    podnet_bytes_per_prefix: bpp(podnet),
  };
  console.log(JSON.stringify(result));
}

try {
  await main();
} finally {
  await procs.stopAll();
  await lab.destroy();
  rmSync(work, { recursive: true, force: true });
}
