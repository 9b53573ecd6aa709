// bgp-abuse: what a hostile or broken peer costs the speaker in memory. One session feeds
// 1,000,000 IPv4 prefixes over 100,000 distinct attribute sets, every one outside the receiver's
// import filter (it accepts only 100.64.0.0/10, as a pod range; the feed lies in 1.0.0.0-17.0.0.0),
// then End-of-RIB. Measured per receiver: RSS before the feed and after End-of-RIB is processed; bgp-ts and BIRD 2 (same stream, same filter) in the
// same run. "Before" is taken once the session is Established and a warm-up of 1,000 prefixes
// (`--warmup N`, same encoding, same filter, its own End-of-RIB) has gone through the same code
// path, so code loaded and compiled once is not counted as growth of the feed; the growth from the
// receiver's start is reported too (`rss_growth_incl_warmup_mb`). Then connection churn: 35,000 short sessions from the configured peer, each OPEN,
// KEEPALIVE and a malformed UPDATE (the speaker resets it), and 35,000 connections from an
// address with no peer; RSS and open fds of bgp-ts before and after each.
// The feed is sent 3 times (`--feeds N`) over new sessions, to tell warm-up from a leak.
// `--prefixes N`, `--sets N`, `--churn N` for a smaller run. Last line: one JSON object.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jsonLines, vmRss } from './lib/proc.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const RECEIVER_AS = 65001;
const FEEDER_AS = 65100;

// ---------------------------------------------------------------------------------------------
// Receiver mode: `node --expose-gc bgp-abuse.mjs --receiver <addr> <peer>` inside a namespace.
// Prints JSON lines: ready, eor (after End-of-RIB), mem (on "mem" from stdin).
if (process.argv[2] === '--receiver') {
  const { Speaker } = await import('../packages/bgp/dist/index.js');
  const v8 = await import('node:v8');
  const [, , , addr, peer] = process.argv;
  const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
  const mem = () => {
    globalThis.gc?.();
    const m = process.memoryUsage();
    const status = readFileSync('/proc/self/status', 'utf8');
    const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN) * 1024;
    return {
      rss: m.rss,
      // Anonymous memory (heap, malloc) apart from file-backed pages (the node binary's code).
      rssAnon: kb('RssAnon'),
      rssFile: kb('RssFile'),
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      fds: readdirSync('/proc/self/fd').length,
      spaces: Object.fromEntries(
        v8.getHeapSpaceStatistics().map((x) => [x.space_name, Math.round(x.space_size / 1048576)]),
      ),
    };
  };
  const s = new Speaker({
    asn: RECEIVER_AS,
    routerId: addr,
    listen: { port: 179, address: addr },
  });
  s.addPeer({
    address: peer,
    asn: FEEDER_AS,
    passive: true,
    holdTime: 90,
    import: { prefixList: [{ prefix: '100.64.0.0/10', le: 32, action: 'accept' }], defaultAction: 'reject' },
  });
  s.on('end-of-rib', () => {
    const p = s.peers()[0];
    out({
      event: 'eor',
      ...mem(),
      locRib: s.locRibSize,
      attributeSets: s.attributeSets,
      cacheBytes: p.attrCacheBytes,
      updatesIn: p.updatesIn,
    });
  });
  await s.start();
  out({ event: 'ready', ...mem() });
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    if (d.includes('mem')) out({ event: 'mem', ...mem(), state: s.peers()[0].state });
  });
  process.stdin.on('end', async () => {
    await s.stop();
    process.exit(0);
  });
} else {
  await bench();
}

// ---------------------------------------------------------------------------------------------

async function bench() {
  const { cleanupStale, exec, NetnsSet, ProcessGroup, vethPair, waitFor } = await import(
    '../packages/testkit/dist/index.js'
  );
  const { buildFeed } = await import('./lib/bgp-feed.mjs');
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(name);
    if (i === -1) return dflt;
    const v = Number(process.argv[i + 1]);
    if (!Number.isInteger(v) || v < 1)
      throw new Error(`${name} must be a positive integer, got ${process.argv[i + 1]}`);
    return v;
  };
  const PREFIXES = Math.min(arg('--prefixes', 1_000_000), 4_000_000); // the feed stays below 100.64/10
  const SETS = arg('--sets', 100_000);
  const CHURN = arg('--churn', 35_000);
  const FEEDS = arg('--feeds', 3);
  const WARMUP = arg('--warmup', 1_000);
  const LIMIT_MS = 600_000;
  // The receiver runs with the node flags podnet-agent runs with (its shebang), as in production.
  const shebang = readFileSync(join(here, '../packages/agent/dist/cli.js'), 'utf8').split('\n')[0];
  const AGENT_FLAGS = shebang.split(/\s+/).filter((w) => w.startsWith('--'));
  const lab = new NetnsSet();
  const procs = new ProcessGroup();
  const work = mkdtempSync(join(tmpdir(), 'pnt-bgp-abuse-'));
  const log = (...a) => console.error(...a);
  const startFeeder = async (ns, n, warm = false) => {
    const child = procs.add(
      ns.spawn(process.execPath, [
        join(here, 'lib/bgp-feeder.mjs'),
        join(work, `feed-${n}.bin`),
        `10.61.${n}.2`,
        `10.61.${n}.1`,
        String(FEEDER_AS),
        String(RECEIVER_AS),
        `10.61.${n}.2`,
        ...(warm ? [join(work, `warm-${n}.bin`)] : []),
      ]),
    );
    const ev = {};
    jsonLines(child, (o) => {
      if (o.event === 'error') log(`feeder ${n}: ${o.error}`);
      ev[o.event] = o;
    });
    await waitFor(`feeder ${n} Established`, () => ev.established, { timeoutMs: 60_000, intervalMs: 5 });
    return { child, ev };
  };
  const stop = async (child) => {
    child.stdin?.end();
    await procs.stop(child, 5000);
  };

  // Short sessions against the bgp-ts receiver from `src`: OPEN + KEEPALIVE + an UPDATE whose NLRI
  // has length 33 (UPDATE/Invalid Network Field), then wait for the close. Sequential.
  const churnClient = `
const net = require('node:net');
const [host, local, n] = process.argv.slice(1);
const hdr = (t, b) => { const m = Buffer.alloc(19 + b.length, 0xff); m.writeUInt16BE(19 + b.length, 16); m[18] = t; b.copy(m, 19); return m; };
const cap = Buffer.from([2, 6, 65, 4, 0, 0, ${FEEDER_AS >> 8}, ${FEEDER_AS & 255}]);
const open = hdr(1, Buffer.concat([Buffer.from([4, ${FEEDER_AS >> 8}, ${FEEDER_AS & 255}, 0, 90, ...local.split('.').map(Number), cap.length]), cap]));
const a = Buffer.from('400101004002060201' + (${FEEDER_AS}).toString(16).padStart(8, '0') + '400304' + local.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join(''), 'hex');
const upd = hdr(2, Buffer.concat([Buffer.from([0, 0, a.length >> 8, a.length & 255]), a, Buffer.from([33, 10, 0, 0, 0, 0])]));
let done = 0;
function one() {
  if (done >= Number(n)) { console.log(done); process.exit(0); }
  const s = net.connect({ host, port: 179, localAddress: local });
  s.on('connect', () => s.write(Buffer.concat([open, hdr(4, Buffer.alloc(0)), upd])));
  s.on('data', () => {});
  s.on('error', () => {});
  s.on('close', () => { done++; setImmediate(one); });
  s.setTimeout(5000, () => s.destroy());
}
one();`;

  async function runBgpTs(rns, fns) {
    const child = procs.add(
      rns.spawn(process.execPath, [
        ...AGENT_FLAGS,
        '--expose-gc',
        fileURLToPath(import.meta.url),
        '--receiver',
        '10.61.1.1',
        '10.61.1.2',
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
    /** `v`, once the receiver is known to be still running. */
    const alive = (v) => {
      if (child.exitCode !== null) throw new Error(`receiver exited: ${err}`);
      return v;
    };
    const ready = await waitFor('bgp-ts receiver ready', () => alive(ev.ready), { timeoutMs: 30_000 });
    // The same feed FEEDS times over new sessions: growth that stops after the first is warm-up
    // (compiled code, pages touched once), growth that goes on would be a leak.
    const eors = [];
    let warm;
    for (let i = 0; i < FEEDS; i++) {
      ev.eor = undefined;
      const f = await startFeeder(fns, 1, i === 0);
      if (i === 0) {
        // The warm-up's End-of-RIB: "before" for the feed, then the feed on the same session.
        warm = await waitFor('bgp-ts warm-up processed', () => alive(ev.eor), {
          timeoutMs: 60_000,
          intervalMs: 20,
        });
        ev.eor = undefined;
        f.child.stdin.write('go\n');
      }
      eors.push(
        await waitFor('bgp-ts End-of-RIB processed', () => alive(ev.eor), {
          timeoutMs: LIMIT_MS,
          intervalMs: 20,
        }),
      );
      await stop(f.child);
      if (i + 1 < FEEDS) {
        ev.mem = undefined;
        await waitFor(
          'bgp-ts session down',
          () => {
            child.stdin.write('mem\n');
            return alive(ev.mem)?.state !== 'established' && ev.mem?.state !== undefined;
          },
          { timeoutMs: 30_000, intervalMs: 200 },
        );
      }
    }
    const eor = eors[0];
    const mem = async () => {
      ev.mem = undefined;
      child.stdin.write('mem\n');
      return waitFor('bgp-ts memory', () => alive(ev.mem), { timeoutMs: 30_000, intervalMs: 10 });
    };
    const churn = async (src) => {
      const before = await mem();
      const c = procs.add(fns.spawn(process.execPath, ['-e', churnClient, '10.61.1.1', src, String(CHURN)]));
      let outText = '';
      c.stdout.on('data', (d) => {
        outText += d;
      });
      await new Promise((r) => c.once('exit', r));
      const after = await mem();
      log(
        `bgp-ts heap spaces (MiB) around churn from ${src}: ${JSON.stringify(before.spaces)} -> ${JSON.stringify(after.spaces)}`,
      );
      return { before, after, sessions: Number(outText.trim()) };
    };
    log(`bgp-ts: ${CHURN} short sessions with malformed UPDATEs…`);
    const sessions = await churn('10.61.1.2');
    log(`bgp-ts: ${CHURN} connections from an address with no peer…`);
    const refused = await churn('10.61.1.3');
    await stop(child);
    return { ready, warm, eor, last: eors.at(-1), sessions, refused };
  }

  async function runBird(rns, fns) {
    const dir = join(work, 'bird');
    execFileSync('mkdir', ['-p', dir]);
    const sock = join(dir, 'bird.ctl');
    writeFileSync(
      join(dir, 'bird.conf'),
      `router id 10.61.2.1;
protocol device { }
protocol bgp feeder {
  local 10.61.2.1 as ${RECEIVER_AS}; neighbor 10.61.2.2 as ${FEEDER_AS}; passive on; hold time 90;
  ipv4 { import where net ~ [ 100.64.0.0/10+ ]; export none; };
}
`,
    );
    const child = procs.add(rns.spawn('bird', ['-f', '-c', join(dir, 'bird.conf'), '-s', sock]));
    await waitFor(
      'BIRD up',
      async () => (await exec('birdc', ['-s', sock, 'show', 'status'])).stdout.includes('Daemon is up'),
      { timeoutMs: 30_000 },
    );
    const start = vmRss(child.pid);
    const f = await startFeeder(fns, 2, true);
    let filtered = 0;
    const received = (n, what) =>
      waitFor(
        what,
        async () => {
          const r = await exec('birdc', ['-s', sock, 'show', 'protocols', 'all', 'feeder']);
          // Import updates: received, rejected, filtered, ignored, accepted.
          const m = /Import updates:\s+(\d+)\s+(\d+)\s+(\d+)/.exec(r.stdout);
          filtered = m ? Number(m[3]) : 0;
          return m && Number(m[1]) >= n;
        },
        { timeoutMs: LIMIT_MS, intervalMs: 100 },
      );
    await received(WARMUP, 'BIRD to have filtered the warm-up');
    const rss0 = vmRss(child.pid);
    f.child.stdin.write('go\n');
    await received(WARMUP + PREFIXES, 'BIRD to have filtered every prefix');
    const rss1 = vmRss(child.pid);
    await stop(f.child);
    await procs.stop(child);
    return { start, rss0, rss1, filtered };
  }

  try {
    await cleanupStale();
    const fns = await lab.create('abusefeed');
    const rx = [];
    for (let n = 1; n <= 2; n++) {
      const r = await lab.create(`abuserx${n}`);
      await vethPair(r, 'eth0', fns, `f${n}`);
      await r.ip('addr', 'add', `10.61.${n}.1/24`, 'dev', 'eth0');
      await fns.ip('addr', 'add', `10.61.${n}.2/24`, 'dev', `f${n}`);
      rx.push(r);
    }
    await fns.ip('addr', 'add', '10.61.1.3/24', 'dev', 'f1');
    let updates = 0;
    for (let n = 1; n <= 2; n++) {
      const feed = buildFeed({
        prefixes: PREFIXES,
        sets: SETS,
        feederAs: FEEDER_AS,
        nextHop: `10.61.${n}.2`,
      });
      writeFileSync(join(work, `feed-${n}.bin`), feed.stream);
      updates = feed.updates;
      const warm = buildFeed({
        prefixes: WARMUP,
        sets: Math.max(1, Math.round((SETS * WARMUP) / PREFIXES)),
        feederAs: FEEDER_AS,
        nextHop: `10.61.${n}.2`,
      });
      writeFileSync(join(work, `warm-${n}.bin`), warm.stream);
    }
    log(`feed: ${PREFIXES} filtered-out prefixes, ${SETS} attribute sets, ${updates} UPDATEs`);
    log('bgp-ts…');
    const ts = await runBgpTs(rx[0], fns);
    log('BIRD 2…');
    const bird = await runBird(rx[1], fns);

    const mb = (b) => (b / 1048576).toFixed(1);
    const tsGrowth = ts.eor.rss - ts.warm.rss;
    const birdGrowth = bird.rss1 - bird.rss0;
    const pad = (s, n) => String(s).padStart(n);
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(
      `\nbgp-abuse: ${PREFIXES.toLocaleString('en')} prefixes rejected by the import filter, ${SETS.toLocaleString('en')} attribute sets, ${updates.toLocaleString('en')} UPDATEs (node ${process.version} ${AGENT_FLAGS.join(' ')}, load ${load})`,
    );
    console.log(
      `"before" = Established and a warm-up of ${WARMUP.toLocaleString('en')} prefixes processed (same path, same filter); growth = after the feed - before`,
    );
    console.log(
      `${'receiver'.padEnd(10)}${pad('RSS start', 12)}${pad('RSS before', 12)}${pad('RSS after', 12)}${pad('growth MiB', 12)}`,
    );
    console.log(
      `${'bgp-ts'.padEnd(10)}${pad(mb(ts.ready.rss), 12)}${pad(mb(ts.warm.rss), 12)}${pad(mb(ts.eor.rss), 12)}${pad(mb(tsGrowth), 12)}`,
    );
    console.log(
      `${'BIRD 2'.padEnd(10)}${pad(mb(bird.start), 12)}${pad(mb(bird.rss0), 12)}${pad(mb(bird.rss1), 12)}${pad(mb(birdGrowth), 12)}`,
    );
    // Where bgp-ts's memory is (MiB; process.memoryUsage() after a full GC, and /proc/self/status).
    const cols = [
      ['rss', 'rss'],
      ['anon', 'rssAnon'],
      ['file', 'rssFile'],
      ['heapTotal', 'heapTotal'],
      ['heapUsed', 'heapUsed'],
      ['external', 'external'],
      ['arrayBuf', 'arrayBuffers'],
    ];
    console.log(`\n${'bgp-ts (MiB)'.padEnd(24)}${cols.map(([h]) => pad(h, 10)).join('')}`);
    const row = (name, m) =>
      console.log(`${name.padEnd(24)}${cols.map(([, k]) => pad(mb(m[k]), 10)).join('')}`);
    row('start (listening)', ts.ready);
    row(`after warm-up (${WARMUP})`, ts.warm);
    row('after the feed', ts.eor);
    row(`after ${FEEDS} feeds`, ts.last);
    console.log(
      `${'growth (feed)'.padEnd(24)}${cols.map(([, k]) => pad(mb(ts.eor[k] - ts.warm[k]), 10)).join('')}`,
    );
    console.log(
      `bgp-ts after End-of-RIB: ${ts.eor.locRib} routes, ${ts.eor.attributeSets} attribute sets held, raw-attribute cache ${mb(ts.eor.cacheBytes)} MiB`,
    );
    console.log(`\nconnection churn against bgp-ts (${CHURN.toLocaleString('en')} each)`);
    console.log(
      `${'kind'.padEnd(26)}${pad('RSS before', 12)}${pad('RSS after', 12)}${pad('heap total', 12)}${pad('fds', 10)}`,
    );
    for (const [name, c] of [
      ['short malformed sessions', ts.sessions],
      ['refused connections', ts.refused],
    ])
      console.log(
        `${name.padEnd(26)}${pad(mb(c.before.rss), 12)}${pad(mb(c.after.rss), 12)}${pad(`${mb(c.before.heapTotal)}→${mb(c.after.heapTotal)}`, 12)}${pad(`${c.before.fds}→${c.after.fds}`, 10)}`,
      );
    const result = {
      bench: 'bgp-abuse',
      prefixes: PREFIXES,
      sets: SETS,
      node: process.version,
      node_flags: AGENT_FLAGS.join(' '),
      warmup_prefixes: WARMUP,
      rss_growth_mb: Number((tsGrowth / 1e6).toFixed(1)),
      rss_anon_growth_mb: Number(((ts.eor.rssAnon - ts.warm.rssAnon) / 1e6).toFixed(1)),
      rss_file_growth_mb: Number(((ts.eor.rssFile - ts.warm.rssFile) / 1e6).toFixed(1)),
      heap_total_growth_mb: Number(((ts.eor.heapTotal - ts.warm.heapTotal) / 1e6).toFixed(1)),
      external_growth_mb: Number(((ts.eor.external - ts.warm.external) / 1e6).toFixed(1)),
      array_buffers_growth_mb: Number(((ts.eor.arrayBuffers - ts.warm.arrayBuffers) / 1e6).toFixed(1)),
      rss_growth_incl_warmup_mb: Number(((ts.eor.rss - ts.ready.rss) / 1e6).toFixed(1)),
      feeds: FEEDS,
      rss_growth_after_feeds_mb: Number(((ts.last.rss - ts.warm.rss) / 1e6).toFixed(1)),
      ref: 'bird2',
      ref_rss_growth_mb: Number((birdGrowth / 1e6).toFixed(1)),
      // No ratio when BIRD's growth is below the page-level noise (0.1 MB).
      ratio: birdGrowth >= 1e5 ? Number((tsGrowth / birdGrowth).toFixed(2)) : null,
      attribute_sets_held: ts.eor.attributeSets,
      churn_sessions: ts.sessions.sessions,
      churn_rss_growth_mb: Number(((ts.sessions.after.rss - ts.sessions.before.rss) / 1e6).toFixed(1)),
      churn_refused: ts.refused.sessions,
      refused_rss_growth_mb: Number(((ts.refused.after.rss - ts.refused.before.rss) / 1e6).toFixed(1)),
      refused_fd_growth: ts.refused.after.fds - ts.refused.before.fds,
    };
    log(`bgp-ts memory at start: ${JSON.stringify({ ...ts.ready, spaces: undefined })}`);
    log(`bgp-ts memory before: ${JSON.stringify({ ...ts.warm, spaces: undefined })}`);
    log(`bgp-ts memory after:  ${JSON.stringify({ ...ts.eor, spaces: undefined })}`);
    log(`bgp-ts heap spaces (MiB) before: ${JSON.stringify(ts.warm.spaces)}`);
    log(`bgp-ts heap spaces (MiB) after:  ${JSON.stringify(ts.eor.spaces)}`);
    console.log(JSON.stringify(result));
  } finally {
    await procs.stopAll();
    await lab.destroy();
    rmSync(work, { recursive: true, force: true });
  }
}
