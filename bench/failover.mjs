// failover: how long a silently dead node keeps attracting traffic, BFD against the hold timer.
// A small fabric in namespaces on one bridge: a ToR (BIRD 2, its bfd protocol, eBGP to every node)
// and three nodes, each a bgp-ts Speaker with BFD wired as the agent wires it (bench/lib/bfd-node.mjs:
// packages/agent's BfdLink over @podnet/bfd), in an iBGP full mesh. Each node originates its block.
// A trial cuts node 3 (its link goes down inside its namespace; its process keeps running, nobody
// is told) and measures from the cut to the moment the last router (the ToR's kernel table and
// both other nodes' Loc-RIBs) has removed node 3's block; then the link comes back and the fabric
// heals before the next trial.
//   (a) BFD on, 300 ms x 3 (--bfd MINTX,MINRX,MULT to change), keepalive 3 s / hold 9 s
//   (b) hold timer only: keepalive 3 s / hold 9 s, no BFD
// Then, with BFD on, node 1 ingests the bgp-ingest feed (1,000,000 prefixes) from a feeder while
// its BFD sessions run: its transmit intervals are measured and every BFD Down counted. Twice: the
// periodic packets from the native addon's sending thread (as the agent sends them; counted in
// bfd_false_downs), and from timers on the speaker's own event loop (for comparison only).
// A false Down is an Up→Down of any BFD session that the trial's cut does not explain.
// During the ingest node 1 reports the longest any periodic packet went out after its due time,
// and its main thread's GC pauses over 50 ms (the state machines and reception run there).
// Usage: npm run bench -- failover [--trials N] [--prefixes N] [--nice N|none] [--only bfd,hold,ingest]
// (--nice: the BFD sending thread's nice value, default -10, `none` to leave it at the process's;
// --only: run only these parts, for a look at one of them). Last line: one JSON object.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rtnl } from '../packages/rtnetlink/dist/index.js';
import { cleanupStale, exec, NetnsSet, ProcessGroup, waitFor } from '../packages/testkit/dist/index.js';
import { buildFeed } from './lib/bgp-feed.mjs';
import { jsonLines } from './lib/proc.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i === -1 ? def : process.argv[i + 1];
};
const TRIALS = Number(arg('--trials', '20'));
const PREFIXES = Number(arg('--prefixes', '1000000'));
const [MINTX, MINRX, MULT] = arg('--bfd', '300,300,3').split(',').map(Number);
const NICE_ARG = arg('--nice', '-10');
const NICE = NICE_ARG === 'none' ? null : Number(NICE_ARG);
if (NICE !== null && (!Number.isInteger(NICE) || NICE < -20 || NICE > 19))
  throw new Error(`--nice must be an integer -20..19 or none, got ${NICE_ARG}`);
const ONLY = new Set(arg('--only', 'bfd,hold,ingest').split(','));
for (const o of ONLY)
  if (!['bfd', 'hold', 'ingest'].includes(o)) throw new Error(`--only: unknown part ${o}`);
if (!Number.isInteger(TRIALS) || TRIALS < 1 || TRIALS > 200) throw new Error(`--trials must be 1..200`);
const KEEPALIVE = 3;
const HOLD = 9;
const NODE_AS = 64512;
const TOR_AS = 65000;
const FEEDER_AS = 65100;
const log = (...a) => console.error(...a);

const nets = new NetnsSet();
const procs = new ProcessGroup();
const work = mkdtempSync(join(tmpdir(), 'pnt-failover-'));
const addr = (i) => `10.61.0.${i}`;
const TOR = addr(254);
const FEEDER = addr(100);
const block = (i) => `10.244.${i}.0/26`;

let tor;
let feederNs;
/** Netlink in node 3's namespace: the cut is one request from this process, stamped as it is sent. */
let cutNl;
const nodes = [];

async function topology() {
  await cleanupStale();
  const br = await nets.create('fobr');
  await br.ip('link', 'add', 'br0', 'type', 'bridge');
  await br.ip('link', 'set', 'br0', 'up');
  const attach = async (ns, ip, tag) => {
    await br.ip('link', 'add', `p${tag}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name);
    await br.ip('link', 'set', `p${tag}`, 'master', 'br0');
    await br.ip('link', 'set', `p${tag}`, 'up');
    await ns.ip('addr', 'add', `${ip}/24`, 'dev', 'eth0');
    await ns.ip('link', 'set', 'eth0', 'up');
  };
  tor = { ns: await nets.create('fotor') };
  await attach(tor.ns, TOR, 't');
  for (let i = 1; i <= 3; i++) {
    const ns = await nets.create(`fon${i}`);
    await attach(ns, addr(i), `n${i}`);
    nodes.push({ i, ns });
  }
  feederNs = await nets.create('fofeed');
  await attach(feederNs, FEEDER, 'f');
  cutNl = await Rtnl.open({ netns: nodes[2].ns.path });
}

function birdConf(bfd) {
  const lines = [
    `router id ${TOR};`,
    // BFD state changes go to stderr, where the bench stamps them on arrival (the ToR's detection).
    'log stderr all;',
    'protocol device { scan time 10; }',
    'protocol kernel { ipv4 { import none; export all; }; merge paths on; }',
  ];
  if (bfd)
    lines.push(
      `protocol bfd { debug { events }; interface "*" { min rx interval ${MINRX} ms; min tx interval ${MINTX} ms; multiplier ${MULT}; }; }`,
    );
  for (const n of nodes)
    lines.push(
      `protocol bgp n${n.i} { local ${TOR} as ${TOR_AS}; neighbor ${addr(n.i)} as ${NODE_AS}; hold time ${HOLD}; keepalive time ${KEEPALIVE};`,
      `  connect retry time 1; error wait time 1, 2; ${bfd ? 'bfd on;' : ''} ipv4 { import all; export none; }; }`,
    );
  return `${lines.join('\n')}\n`;
}

async function startTor(bfd) {
  const dir = join(work, `tor-${bfd ? 'bfd' : 'hold'}`);
  execFileSync('mkdir', ['-p', dir]);
  writeFileSync(join(dir, 'bird.conf'), birdConf(bfd));
  tor.sock = join(dir, 'bird.ctl');
  tor.child = procs.add(tor.ns.spawn('bird', ['-f', '-c', join(dir, 'bird.conf'), '-s', tor.sock]));
  // The ToR's view, stamped as it happens: its BFD session with node 3 going Down (its log) and
  // node 3's block leaving its kernel table (ip monitor), rather than polled.
  tor.bfdDown3 = undefined;
  tor.gone3 = undefined;
  let logBuf = '';
  tor.child.stderr.on('data', (d) => {
    logBuf += d.toString();
    for (let i = logBuf.indexOf('\n'); i !== -1; i = logBuf.indexOf('\n')) {
      const l = logBuf.slice(0, i);
      logBuf = logBuf.slice(i + 1);
      if (l.includes(`Session to ${addr(3)} changed state from Up to Down`)) tor.bfdDown3 ??= Date.now();
      // BGP sessions leaving Established and BFD sessions leaving Up, as the ToR logs them (the
      // ingest lists those it did not expect).
      if (/ n\d: (Error|Received|State changed to (stop|down))|changed state from Up/.test(l))
        tor.events?.push({ t: Date.now(), line: l.replace(/^\S+ \S+ /, '') });
    }
  });
  tor.monitor?.kill();
  tor.monitor = procs.add(tor.ns.spawn('ip', ['monitor', 'route']));
  let monBuf = '';
  tor.monitor.stdout.on('data', (d) => {
    monBuf += d.toString();
    for (let i = monBuf.indexOf('\n'); i !== -1; i = monBuf.indexOf('\n')) {
      const l = monBuf.slice(0, i);
      monBuf = monBuf.slice(i + 1);
      if (l.startsWith('Deleted') && l.includes(block(3).split('/')[0])) tor.gone3 ??= Date.now();
    }
  });
  await waitFor(
    'BIRD up',
    async () => (await exec('birdc', ['-s', tor.sock, 'show', 'status'])).stdout.includes('Daemon is up'),
    {
      timeoutMs: 30_000,
    },
  );
}

function startNode(n, bfd, ingest, mainThread = false) {
  const b = bfd ? { minTx: MINTX, minRx: MINRX, multiplier: MULT } : undefined;
  const peers = [
    {
      address: TOR,
      asn: TOR_AS,
      passive: false,
      holdTime: HOLD,
      keepalive: KEEPALIVE,
      ...(b ? { bfd: b } : {}),
    },
    ...nodes
      .filter((o) => o.i !== n.i)
      .map((o) => ({
        address: addr(o.i),
        asn: NODE_AS,
        passive: o.i < n.i,
        holdTime: HOLD,
        keepalive: KEEPALIVE,
        ...(b ? { bfd: b } : {}),
      })),
    ...(ingest ? [{ address: FEEDER, asn: FEEDER_AS, passive: true, holdTime: 90, keepalive: 30 }] : []),
  ];
  const cfg = {
    routerId: addr(n.i),
    asn: NODE_AS,
    originate: [block(n.i)],
    watch: [block(3)],
    peers,
    mainThread,
    priority: NICE,
  };
  n.child = procs.add(n.ns.spawn(process.execPath, [join(here, 'lib/bfd-node.mjs'), JSON.stringify(cfg)]));
  n.events = [];
  n.has3 = false;
  n.bfd = new Map();
  jsonLines(n.child, (o) => {
    n.events.push(o);
    if (o.event === 'bfd') n.bfd.set(o.peer, o.to);
    if (o.event === 'route') {
      n.has3 = o.present;
      if (!o.present) n.gone3 = o.t;
    }
  });
  n.child.stderr.on('data', (d) => {
    n.stderr = ((n.stderr ?? '') + d).slice(-4000);
  });
}

const torHas3 = async () =>
  (await exec('ip', ['-n', tor.ns.name, 'route', 'show', block(3)])).stdout.trim() !== '';

async function healed() {
  for (const n of nodes.filter((x) => x.i !== 3)) if (!n.has3) return false;
  if (!(await torHas3())) return false;
  for (let i = 1; i <= 3; i++)
    if (!(await exec('ip', ['-n', tor.ns.name, 'route', 'show', block(i)])).stdout.trim()) return false;
  return true;
}

/** Every node has its three BFD sessions (the ToR, the two other nodes) Up. */
const nodesBfdUp = () => nodes.every((n) => n.bfd.size === 3 && [...n.bfd.values()].every((v) => v === 'up'));

/** BFD Up→Down events seen since `from` (ms), on the nodes and (polled) the ToR. */
function nodeDowns(from) {
  return nodes.flatMap((n) =>
    n.events
      .filter((e) => e.event === 'bfd' && e.from === 'up' && e.t >= from)
      .map((e) => ({ node: n.i, ...e })),
  );
}

async function trial(bfd) {
  await waitFor('the fabric to heal', healed, { timeoutMs: 120_000, intervalMs: 100 });
  if (bfd) {
    // Every BFD session Up before the cut (a half-open session is not what we measure).
    await waitFor(
      'BFD sessions Up',
      async () => {
        const s = (await exec('birdc', ['-s', tor.sock, 'show', 'bfd', 'sessions'])).stdout;
        return (s.match(/\bUp\b/g) ?? []).length === 3;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    // And every node's sessions, with the ToR and the other nodes: a trial that starts before the
    // nodes' sessions with node 3 are Up measures their hold timer, not BFD.
    await waitFor('every node BFD session Up', nodesBfdUp, { timeoutMs: 60_000, intervalMs: 100 });
  }
  for (const n of nodes) n.gone3 = undefined;
  tor.bfdDown3 = undefined;
  tor.gone3 = undefined;
  // The clock is read as the link-down request goes out (no `ip` process to start first, whose
  // start-up time under load would count as detection time).
  const t0 = Date.now();
  await cutNl.links.set('eth0', { up: false });
  await waitFor(
    "node 3's block gone everywhere",
    async () => {
      if (tor.gone3 === undefined && !(await torHas3())) tor.gone3 = Date.now();
      return tor.gone3 !== undefined && nodes.filter((n) => n.i !== 3).every((n) => n.gone3 !== undefined);
    },
    { timeoutMs: (HOLD + 30) * 1000, intervalMs: 50 },
  );
  const rest = nodes.filter((n) => n.i !== 3);
  const last = Math.max(tor.gone3, ...rest.map((n) => n.gone3));
  const ms = last - t0;
  // The breakdown: when each router saw the failure (its BFD session with node 3 went Down; for
  // the hold timer, when the BGP session went), and when it had removed the block.
  const detect = (n) =>
    n.events.find((e) => e.event === 'bfd' && e.from === 'up' && e.peer === addr(3) && e.t >= t0)?.t;
  const routers = [
    { name: 'tor', detect: tor.bfdDown3, gone: tor.gone3 },
    ...rest.map((n) => ({ name: `node${n.i}`, detect: detect(n), gone: n.gone3 })),
  ].map((r) => ({
    name: r.name,
    detectMs: r.detect === undefined ? undefined : r.detect - t0,
    goneMs: r.gone - t0,
  }));
  // Downs the cut does not explain: sessions that do not involve node 3.
  const falseDowns = nodeDowns(t0).filter((e) => e.node !== 3 && e.peer !== addr(3)).length;
  await cutNl.links.set('eth0', { up: true });
  return { ms, falseDowns, routers };
}

async function stopAll() {
  for (const n of nodes) n.child?.stdin.end();
  await procs.stopAll();
}

const p = (xs, f) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(f * s.length) - 1)];
};

async function run(bfd) {
  await startTor(bfd);
  for (const n of nodes) startNode(n, bfd, false);
  const times = [];
  const trials = [];
  let falseDowns = 0;
  for (let t = 0; t < TRIALS; t++) {
    const r = await trial(bfd);
    times.push(r.ms);
    trials.push(r.routers);
    falseDowns += r.falseDowns;
    const parts = r.routers.map((x) => `${x.name} ${x.detectMs ?? '-'}/${x.goneMs}`).join('  ');
    log(
      `${bfd ? 'bfd ' : 'hold'} trial ${t + 1}/${TRIALS}: ${r.ms} ms (detect/withdrawn ms: ${parts}) load ${loadavg()[0].toFixed(2)}${r.falseDowns ? ` (${r.falseDowns} false downs)` : ''}`,
    );
  }
  await stopAll();
  return { times, falseDowns, trials };
}

/** BFD on, node 1 ingesting the feed: transmit intervals and every BFD Down while it runs. */
async function ingest(mainThread) {
  await startTor(true);
  for (const n of nodes) startNode(n, true, n.i === 1, mainThread);
  await waitFor('the fabric to heal', healed, { timeoutMs: 120_000, intervalMs: 100 });
  await waitFor(
    'BFD sessions Up',
    async () =>
      ((await exec('birdc', ['-s', tor.sock, 'show', 'bfd', 'sessions'])).stdout.match(/\bUp\b/g) ?? [])
        .length === 3,
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  await waitFor('every node BFD session Up', nodesBfdUp, { timeoutMs: 60_000, intervalMs: 100 });
  const n1 = nodes[0];
  const stats = () =>
    new Promise((resolve) => {
      const on = (o) => o.event === 'stats' && resolve(o);
      const before = n1.events.length;
      const iv = setInterval(() => {
        const s = n1.events.slice(before).find((e) => e.event === 'stats');
        if (s) {
          clearInterval(iv);
          on(s);
        }
      }, 20);
      n1.child.stdin.write('stats\n');
    });
  await stats(); // reset
  const t0 = Date.now();
  const torDowns0 = (await exec('birdc', ['-s', tor.sock, 'show', 'bfd', 'sessions'])).stdout;
  const feeder = procs.add(
    feederNs.spawn(process.execPath, [
      join(here, 'lib/bgp-feeder.mjs'),
      join(work, 'feed.bin'),
      FEEDER,
      addr(1),
      String(FEEDER_AS),
      String(NODE_AS),
      FEEDER,
    ]),
  );
  // Every BFD packet reaching the ToR's interface, stamped by the kernel (tcpdump): the longest
  // silence per sender tells a packet sent late or lost on the way from a ToR slow to read it.
  const arrivals = new Map();
  const dump = procs.add(
    tor.ns.spawn('tcpdump', ['-i', 'eth0', '-n', '-tt', '-l', '-Q', 'in', 'udp dst port 3784']),
  );
  let dumpBuf = '';
  dump.stdout.on('data', (d) => {
    dumpBuf += d.toString();
    for (let i = dumpBuf.indexOf('\n'); i !== -1; i = dumpBuf.indexOf('\n')) {
      const m = /^(\d+\.\d+) IP (\d+\.\d+\.\d+\.\d+)\.\d+ >/.exec(dumpBuf.slice(0, i));
      dumpBuf = dumpBuf.slice(i + 1);
      if (!m) continue;
      const t = Number(m[1]) * 1000;
      const a = arrivals.get(m[2]) ?? { last: undefined, maxGap: 0, at: 0, n: 0 };
      if (a.last !== undefined && t - a.last > a.maxGap) {
        a.maxGap = t - a.last;
        a.at = Math.round(t - t0);
      }
      a.last = t;
      a.n++;
      arrivals.set(m[2], a);
    }
  });
  tor.events = [];
  // ToR-side Downs: episodes (a session leaving Up), not polls that found one not Up.
  let torNotUp = 0;
  let torAllUp = true;
  const poll = setInterval(async () => {
    const s = (await exec('birdc', ['-s', tor.sock, 'show', 'bfd', 'sessions'])).stdout;
    // A reply without the three session lines (birdc failed or timed out under load) says nothing.
    const lines = s.split('\n').filter((l) => /^\s*\d+\.\d+\.\d+\.\d+\s/.test(l));
    if (lines.length !== 3) return;
    const allUp = lines.every((l) => /\bUp\b/.test(l));
    if (torAllUp && !allUp) {
      torNotUp++;
      const notUp = lines
        .filter((l) => !/\bUp\b/.test(l))
        .map((l) => l.trim().split(/\s+/).slice(0, 3).join(' '));
      log(
        `  ingest ${mainThread ? 'main loop' : 'thread'}: ToR BFD not all Up at +${Date.now() - t0} ms: ${notUp.join('; ')}`,
      );
    }
    torAllUp = allUp;
  }, 200);
  const eor = await waitFor(
    'node 1 to take the whole feed',
    () => n1.events.find((e) => e.event === 'eor' && e.locRib >= PREFIXES),
    {
      timeoutMs: 900_000,
      intervalMs: 50,
    },
  );
  clearInterval(poll);
  dump.kill('SIGINT');
  for (const e of tor.events)
    log(`  ingest ${mainThread ? 'main loop' : 'thread'}: ToR log at +${e.t - t0} ms: ${e.line.trim()}`);
  tor.events = undefined;
  for (const [src, a] of [...arrivals].sort())
    log(
      `  ingest ${mainThread ? 'main loop' : 'thread'}: BFD packets from ${src} at the ToR's interface: ${a.n}, longest silence ${a.maxGap.toFixed(1)} ms (ending at +${a.at} ms)`,
    );
  const s = await stats();
  const downList = nodeDowns(t0);
  for (const d of downList)
    log(
      `  ingest ${mainThread ? 'main loop' : 'thread'}: node ${d.node} BFD with ${d.peer} Up -> ${d.to} (${d.diag}) at +${d.t - t0} ms`,
    );
  const downs = downList.length;
  const mainGcs = nodes[0].events.filter((e) => e.event === 'main-gc' && e.at >= t0).map((e) => e.ms);
  feeder.stdin.end();
  await stopAll();
  void torDowns0;
  return {
    ingestMs: eor.t - t0,
    tx: s,
    nodeDowns: downs,
    torPollsNotUp: torNotUp,
    mainGc: {
      n: mainGcs.length,
      max_ms: Math.max(0, ...mainGcs),
      total_ms: mainGcs.reduce((a, b) => a + b, 0),
    },
  };
}

const load0 = loadavg()[0];
try {
  await topology();
  const feed = buildFeed({ prefixes: PREFIXES, sets: 10_000, feederAs: FEEDER_AS, nextHop: FEEDER });
  writeFileSync(join(work, 'feed.bin'), feed.stream);
  const b = ONLY.has('bfd') ? await run(true) : undefined;
  const loadBfd = loadavg()[0];
  const h = ONLY.has('hold') ? await run(false) : undefined;
  // BFD as the agent runs it (the sending thread), then from the speaker's own event loop.
  const ing = ONLY.has('ingest') ? await ingest(false) : undefined;
  const loadIngest = loadavg()[0];
  const ingMain = ONLY.has('ingest') ? await ingest(true) : undefined;
  const row = (name, xs) =>
    `${name.padEnd(22)} p50 ${String(p(xs, 0.5)).padStart(6)} ms   p99 ${String(p(xs, 0.99)).padStart(6)} ms   max ${String(Math.max(...xs)).padStart(6)} ms`;
  console.log(`failover: ${TRIALS} trials each, cut to the last router without the dead node's block`);
  if (b) console.log(row(`BFD ${MINTX}/${MINRX} ms x ${MULT}`, b.times));
  if (h) console.log(row(`hold ${KEEPALIVE} s / ${HOLD} s`, h.times));
  // Where the BFD time goes: detection (cut to the router's BFD Down) and withdrawal (BFD Down to the
  // block gone from that router's table), per router.
  const split = (trials) => {
    const names = trials[0].map((r) => r.name);
    return names.map((name) => {
      const rs = trials.map((t) => t.find((r) => r.name === name)).filter((r) => r.detectMs !== undefined);
      return {
        name,
        detect: rs.map((r) => r.detectMs),
        withdraw: rs.map((r) => r.goneMs - r.detectMs),
      };
    });
  };
  const bSplit = b ? split(b.trials) : [];
  for (const r of bSplit)
    console.log(
      `  BFD ${r.name.padEnd(6)} detect p50 ${String(p(r.detect, 0.5)).padStart(5)} p99 ${String(p(r.detect, 0.99)).padStart(5)} ms   withdraw after detect p50 ${String(p(r.withdraw, 0.5)).padStart(5)} p99 ${String(p(r.withdraw, 0.99)).padStart(5)} ms`,
    );
  for (const [name, r] of [
    ['sending thread', ing],
    ['main event loop', ingMain],
  ]) {
    if (!r) continue;
    console.log(
      `BFD packets from the ${name} beside a ${PREFIXES}-prefix ingest (${r.ingestMs} ms): node 1 transmit interval min ${r.tx.min.toFixed(1)} p50 ${r.tx.p50.toFixed(1)} p99 ${r.tx.p99.toFixed(1)} max ${r.tx.max.toFixed(1)} ms over ${r.tx.n} packets, latest ${r.tx.lateMax.toFixed(1)} ms after due; BFD downs: nodes ${r.nodeDowns}, ToR Down episodes ${r.torPollsNotUp}; node 1 main-thread GC > 50 ms: ${r.mainGc.n}, max ${r.mainGc.max_ms} ms`,
    );
  }
  const falseDowns = (b?.falseDowns ?? 0) + (ing ? ing.nodeDowns + ing.torPollsNotUp : 0);
  console.log(
    JSON.stringify({
      bench: 'failover',
      trials: TRIALS,
      parts: [...ONLY],
      bfd: { minTx: MINTX, minRx: MINRX, multiplier: MULT },
      bfd_thread_nice: NICE,
      hold: { keepalive: KEEPALIVE, hold: HOLD },
      bfd_p50_ms: b ? p(b.times, 0.5) : null,
      bfd_p99_ms: b ? p(b.times, 0.99) : null,
      hold_p50_ms: h ? p(h.times, 0.5) : null,
      hold_p99_ms: h ? p(h.times, 0.99) : null,
      ratio: b && h ? Number((p(h.times, 0.99) / p(b.times, 0.99)).toFixed(1)) : null,
      bfd_detect_p99_ms: Object.fromEntries(bSplit.map((r) => [r.name, p(r.detect, 0.99)])),
      bfd_withdraw_p99_ms: Object.fromEntries(bSplit.map((r) => [r.name, p(r.withdraw, 0.99)])),
      load_avg: { start: load0, after_bfd: loadBfd, after_ingest: loadIngest, end: loadavg()[0] },
      bfd_false_downs: falseDowns,
      ingest_prefixes: PREFIXES,
      ingest_ms: ing?.ingestMs ?? null,
      ingest_tx_interval_ms: ing
        ? { min: ing.tx.min, p50: ing.tx.p50, p99: ing.tx.p99, max: ing.tx.max, n: ing.tx.n }
        : null,
      ingest_tx_late_max_ms: ing?.tx.lateMax ?? null,
      main_loop_tx_interval_ms: ingMain
        ? {
            min: ingMain.tx.min,
            p50: ingMain.tx.p50,
            p99: ingMain.tx.p99,
            max: ingMain.tx.max,
            n: ingMain.tx.n,
          }
        : null,
      main_loop_false_downs: ingMain ? ingMain.nodeDowns + ingMain.torPollsNotUp : null,
      ingest_main_gc: ing?.mainGc ?? null,
    }),
  );
} finally {
  cutNl?.close();
  await procs.stopAll();
  await nets.destroy();
  rmSync(work, { recursive: true, force: true });
}
