// npm run bench -- scale-sim [--nodes 1000] [--per-worker 50] [--steady 60] [--churn-pods 5000]
//                            [--no-bird] [--timeout 900] [--rr-heap-snapshot DIR]
//
// The embedded API server (its own process) and N simulated nodes, all inside one network
// namespace of the bench's own (pnt-scalesim-<pid>-1; only its loopback is used: every process
// has its own 127.x address). Each simulated node is the agent's own datastore/informer stack
// (KubeDatastore, one bearer token per node so the API server counts its requests) with the
// agent's compute() driving a real bgp-ts speaker (no kernel, no ARP) that announces the node's
// block to 2 route reflectors; --per-worker nodes share a process (bench/lib/scale-sim-node.mjs),
// and one more process hosts a single node, for the RSS of one agent stack on its own (run with
// the node flags of podnet-agent's `#!` line).
//   1. bgp-ts route reflectors (one process each, with the agent's node flags: a reflector is an
//      agent on a node annotated as one): cold start of every worker → every node has
//      every other node's block (converge_s); API requests per node per minute at steady state
//      (--steady seconds) and during a churn of --churn-pods pods (IPAM allocation + Pod, then
//      delete + release, from a driver process with the admin token); the reflectors' CPU and RSS;
//      RSS of the agent stacks.
//   2. Reference: the workers stopped, BIRD 2 as the two reflectors on the same addresses, the
//      same nodes cold-started again: converge_bird_s.
// Not simulated: the agent's IPAM garbage collection, its status/Event writes, kernel routes.
// Last line: {"bench":"scale-sim","nodes",…,"api_req_per_node_min","converge_s","converge_bird_s",
//             "agent_rss_mb",…}
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { shebangNodeFlags, table } from '../packages/lab/dist/index.js';
import { cleanupStale, createNetns, deleteNetns, ProcessGroup } from '../packages/testkit/dist/index.js';
import { jsonLines, vmRss } from './lib/proc.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// The node flags podnet-agent runs with (the `#!` line of its entry point): the single-node
// process gets them, so that its RSS is an agent's.
const agentNodeFlags = shebangNodeFlags(join(root, 'packages/agent/dist/cli.js'));
const lib = join(root, 'bench', 'lib');
const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    'per-worker': { type: 'string', default: '50' },
    steady: { type: 'string', default: '60' },
    'churn-pods': { type: 'string', default: '5000' },
    'no-bird': { type: 'boolean', default: false },
    timeout: { type: 'string', default: '900' },
    'max-rss-gb': { type: 'string', default: '19' },
    'bgp-only': { type: 'boolean', default: false },
    // Where each bgp-ts reflector writes a V8 heap snapshot once converged (for a look at its memory).
    'rr-heap-snapshot': { type: 'string' },
  },
});
const int = (name, min, max) => {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v < min || v > max) {
    console.error(`scale-sim: --${name} ${values[name]}: expected an integer ${min}..${max}`);
    process.exit(2);
  }
  return v;
};
const N = int('nodes', 3, 5000);
const perWorker = int('per-worker', 1, 1000);
const steadyS = int('steady', 5, 3600);
const churnPods = int('churn-pods', 0, 100_000);
const timeoutMs = int('timeout', 30, 7200) * 1000;
const maxRss = int('max-rss-gb', 1, 1024) * 2 ** 30;
const bgpOnly = values['bgp-only'];
if (spawnSync('bird', ['--version']).error && !values['no-bird']) {
  console.error('scale-sim: BIRD 2 (bird) not found; install it or pass --no-bird');
  process.exit(2);
}

const RRS = ['127.0.1.1', '127.0.1.2'];
const POD_CIDR = '10.128.0.0/12';
const nodes = Array.from({ length: N }, (_, i) => ({
  name: `sim-${String(i + 1).padStart(4, '0')}`,
  address: `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`,
  token: randomBytes(18).toString('base64url'),
  // --bgp-only: the node's block, given here instead of by IPAM.
  block: `10.${128 + Math.floor(i / 1024)}.${Math.floor((i % 1024) / 4)}.${(i % 4) * 64}/26`,
}));
const nodeUsers = new Set(nodes.map((n) => n.name));
const work = `/tmp/podnet-bench-scale-sim-${process.pid}`;
mkdirSync(work, { recursive: true });
const procs = new ProcessGroup();
/** Every process the bench started, for the teardown (each ended by its pid). */
const started = [];
const log = (l) => process.stderr.write(`[bench] ${l}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const r1 = (x) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : null);
const mb = (bytes) => bytes / 2 ** 20;
const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
const cpuS = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100;
};
let ns;

/** Writes a child's configuration to a file of the work directory (tokens stay out of argv). */
let files = 0;
const configFile = (o) => {
  const f = join(work, `config-${++files}.json`);
  writeFileSync(f, JSON.stringify(o), { mode: 0o600 });
  return f;
};

/** Starts a node process in the namespace, tracked by pid; lines are JSON events. */
function start(name, args, { nodeArgs = [] } = {}) {
  const child = procs.add(
    ns.spawn(process.execPath, [...nodeArgs, ...args], { stdio: ['pipe', 'pipe', 'pipe'] }),
  );
  started.push(child);
  child.label = name;
  child.events = [];
  child.waiters = [];
  jsonLines(child, (e) => {
    child.events.push(e);
    if (e.event === 'progress') child.progress = e;
    for (const w of [...child.waiters]) if (w.match(e)) w.done(e);
  });
  let err = '';
  child.stderr.on('data', (d) => {
    err = (err + d).slice(-4000);
  });
  child.lastErr = () => err.trim();
  child.on('exit', (code, sig) => {
    child.exited = true;
    for (const w of [...child.waiters])
      w.fail(new Error(`${name} exited (${code ?? sig}): ${err.trim().slice(-600)}`));
  });
  return child;
}

/** The next event of `child` that `match` accepts, within `ms`. */
function next(child, match, ms, what) {
  return new Promise((resolve, reject) => {
    const w = {
      match,
      done: (e) => {
        clearTimeout(timer);
        child.waiters.splice(child.waiters.indexOf(w), 1);
        resolve(e);
      },
      fail: (err) => {
        clearTimeout(timer);
        reject(err);
      },
    };
    const timer = setTimeout(() => {
      child.waiters.splice(child.waiters.indexOf(w), 1);
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    if (child.exited) return w.fail(new Error(`${child.label} is not running: ${child.lastErr()}`));
    child.waiters.push(w);
  });
}

async function stopChild(child) {
  child.stdin?.end();
  const exited = new Promise((r) => (child.exited ? r() : child.once('exit', r)));
  await Promise.race([exited, sleep(5000)]);
  await procs.stop(child, 3000);
}

let driver;
const ask = async (cmd, ms) => {
  const p = next(
    driver,
    (e) => e.event === `${cmd.cmd}-done` || e.event === cmd.cmd || e.event === 'error',
    ms,
    `driver ${cmd.cmd}`,
  );
  driver.stdin.write(`${JSON.stringify(cmd)}\n`);
  const e = await p;
  if (e.event === 'error') throw new Error(`driver: ${e.error}`);
  return e;
};
/** Requests by the node identities: total and watches, at time t. */
const nodeCounts = async () => {
  const e = await ask({ cmd: 'counts' }, 30_000);
  let requests = 0;
  let watches = 0;
  for (const [user, c] of Object.entries(e.users))
    if (nodeUsers.has(user)) {
      requests += c.requests;
      watches += c.watches;
    }
  return { requests, watches, t: e.t };
};
const perNodeMin = (a, b) => (b.requests - a.requests) / N / ((b.t - a.t) / 60_000);

/** Starts the workers (and the single-node process) at once; resolves when every node has N-1 blocks. */
async function coldStart(label, rrPids) {
  const groups = [];
  for (let i = 0; i < N - 1; i += perWorker) groups.push(nodes.slice(i, Math.min(i + perWorker, N - 1)));
  groups.push(nodes.slice(N - 1)); // the single-node process, last
  const cpu0 = rrPids.map(cpuS);
  const t0 = Date.now();
  const workers = groups.map((g, i) =>
    start(
      `${label}-worker-${i}`,
      [
        join(lib, 'scale-sim-node.mjs'),
        configFile({
          server,
          nodes: g,
          expect: N - 1,
          podCidr: POD_CIDR,
          ...(bgpOnly ? { bgpOnly: { rrs: RRS } } : {}),
          // The single-node process: the agent's client and node flags, so its RSS is an agent's.
          ...(i === groups.length - 1 ? { agentClient: true } : {}),
        }),
      ],
      { nodeArgs: i === groups.length - 1 ? agentNodeFlags : ['--max-old-space-size=8192'] },
    ),
  );
  workers.forEach((w, i) => {
    w.size = groups[i].length;
  });
  let convergedAt;
  let syncedAt;
  let converged = 0;
  let established = 0;
  let last = 0;
  while (Date.now() - t0 < timeoutMs) {
    for (const w of workers) if (w.exited) throw new Error(`${w.label} exited: ${w.lastErr().slice(-600)}`);
    const sum = (k) => workers.reduce((a, w) => a + (w.progress?.[k] ?? 0), 0);
    converged = sum('converged');
    established = sum('established');
    if (converged === N) {
      // The first progress report of each worker that showed all its nodes converged.
      convergedAt = Math.max(
        ...workers.map((w) => w.events.find((e) => e.event === 'progress' && e.converged === w.size).t),
      );
      // …and the first that showed all its nodes synced with the API server and peering.
      syncedAt = Math.max(
        ...workers.map(
          (w) => w.events.find((e) => e.event === 'progress' && e.synced === w.size && e.peered === w.size).t,
        ),
      );
      break;
    }
    if (Date.now() - last > 10_000) {
      last = Date.now();
      const errors = {};
      for (const w of workers)
        for (const [k, v] of Object.entries(w.progress?.errors ?? {})) errors[k] = (errors[k] ?? 0) + v;
      const top = Object.entries(errors).sort((x, y) => y[1] - x[1])[0];
      log(
        `${label}: ${((Date.now() - t0) / 1000).toFixed(0)} s: synced ${sum('synced')}/${N}, sessions up ${sum('established')}/${N}, converged ${converged}/${N}${top ? `; sessions down: ${top[1]}× "${top[0]}"` : ''} (load ${load()})`,
      );
    }
    await sleep(250);
  }
  const cpu1 = rrPids.map(cpuS);
  return {
    workers,
    converged,
    // Nodes with both sessions up at the end (all of them once converged).
    established,
    convergeS: convergedAt ? (convergedAt - t0) / 1000 : Number.NaN,
    // From every node synced (its block known, its peers configured) to full convergence: the
    // reflectors' share, within the 0.5 s resolution of the workers' reports.
    afterSyncS: convergedAt ? (convergedAt - syncedAt) / 1000 : Number.NaN,
    rrCpuS: cpu1.map((c, i) => c - cpu0[i]),
  };
}

// The API server's address inside the namespace (unused with --bgp-only).
const server = 'http://127.0.0.1:6443';
let exitCode = 0;
let summary;
let cleaning;
async function cleanup() {
  cleaning ??= (async () => {
    for (const c of started) c.stdin?.end();
    await procs.stopAll(3000);
    if (ns) await deleteNetns(ns).catch(() => {});
    rmSync(work, { recursive: true, force: true });
  })();
  return cleaning;
}
// The machine is shared: past --max-rss-gb for all the bench's processes together, stop everything.
const guard = setInterval(() => {
  let total = 0;
  for (const c of started)
    if (c.exitCode === null && c.signalCode === null)
      try {
        const r = vmRss(c.pid);
        if (Number.isFinite(r)) total += r;
      } catch {
        /* exited meanwhile */
      }
  if (total <= maxRss) return;
  clearInterval(guard);
  console.error(
    `scale-sim: the bench's processes hold ${(total / 2 ** 30).toFixed(1)} GB, above --max-rss-gb ${maxRss / 2 ** 30}: stopping them all`,
  );
  cleanup().finally(() => process.exit(1));
}, 2000);
guard.unref();
for (const sig of ['SIGINT', 'SIGTERM'])
  process.on(sig, () => {
    log(`${sig}: stopping every process the bench started`);
    cleanup().finally(() => process.exit(130));
  });

try {
  await cleanupStale();
  ns = await createNetns('scalesim');
  log(`namespace ${ns.name}; ${N} nodes, ${perWorker} per worker; load ${load()}`);

  // ---- API server and driver (not with --bgp-only).
  let api;
  if (!bgpOnly) {
    const admin = randomBytes(18).toString('base64url');
    writeFileSync(join(work, 'tokens.csv'), nodes.map((n) => `${n.token},${n.name},${n.name}`).join('\n'), {
      mode: 0o600,
    });
    api = start(
      'apiserver',
      [
        join(root, 'packages/apiserver/dist/cli.js'),
        '--port',
        '6443',
        '--no-tls',
        '--token',
        admin,
        '--log-level',
        'warn',
        '--token-auth-file',
        join(work, 'tokens.csv'),
        '--kubeconfig',
        join(work, 'kubeconfig'),
      ],
      { nodeArgs: ['--max-old-space-size=8192'] },
    );
    // The CLI prints plain lines; wait until it answers /healthz through the driver's start instead.
    await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(
        () => reject(new Error(`API server not listening after 30 s: ${api.lastErr()}`)),
        30_000,
      );
      api.stdout.on('data', (d) => {
        out += d;
        if (out.includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      api.once('exit', () => reject(new Error(`API server exited: ${api.lastErr()}`)));
    });
    driver = start('driver', [join(lib, 'scale-sim-driver.mjs'), join(work, 'kubeconfig')], {
      nodeArgs: ['--max-old-space-size=4096'],
    });
    const setup = await ask(
      {
        cmd: 'setup',
        nodes: nodes.map(({ name, address }) => ({ name, address })),
        rrs: RRS,
        podCidr: POD_CIDR,
      },
      Math.max(600_000, timeoutMs),
    );
    log(`objects, ${N} Nodes and their blocks created in ${(setup.ms / 1000).toFixed(1)} s; load ${load()}`);
  }

  // ---- Phase 1: bgp-ts route reflectors.
  const rrs = RRS.map((address) =>
    start(
      `rr-${address}`,
      [
        join(lib, 'scale-sim-rr.mjs'),
        configFile({
          address,
          clusterId: RRS[0],
          clients: nodes.map((n) => n.address),
          ...(values['rr-heap-snapshot'] ? { heapSnapshotDir: resolve(values['rr-heap-snapshot']) } : {}),
        }),
        // A reflector is a podnet-agent on a node annotated as one: its node flags.
      ],
      { nodeArgs: agentNodeFlags },
    ),
  );
  await Promise.all(rrs.map((rr) => next(rr, (e) => e.event === 'ready', 30_000, `${rr.label} ready`)));
  const a = await coldStart(
    'bgp-ts',
    rrs.map((r) => r.pid),
  );
  // Not converged within --timeout: reported as such, and the BIRD reference still runs.
  if (!Number.isFinite(a.convergeS))
    log(`bgp-ts: only ${a.converged}/${N} nodes converged within ${timeoutMs / 1000} s`);
  const loadConverged = load();
  if (Number.isFinite(a.convergeS))
    log(`bgp-ts reflectors: converged in ${a.convergeS.toFixed(1)} s (load ${loadConverged})`);
  const rrRss = rrs.map((r) => mb(vmRss(r.pid)));
  // Where a reflector's memory is: V8's heap, and outside it (socket and other native buffers).
  const rrMem = await Promise.all(
    rrs.map((rr) => {
      const got = next(rr, (e) => e.event === 'mem', 600_000, `${rr.label} memory`);
      rr.stdin.write('mem\n');
      return got;
    }),
  );
  log(
    `bgp-ts reflectors' memory (MB): ${rrMem
      .map(
        (m) =>
          `rss ${mb(m.rss).toFixed(0)}, heap ${mb(m.heapUsed).toFixed(0)} used of ${mb(m.heapTotal).toFixed(0)}, external ${mb(m.external).toFixed(0)} (array buffers ${mb(m.arrayBuffers).toFixed(0)})`,
      )
      .join('; ')}`,
  );

  // Steady state.
  const s0 = bgpOnly ? undefined : await nodeCounts();
  const rrCpuSteady0 = rrs.map((r) => cpuS(r.pid));
  await sleep(steadyS * 1000);
  const s1 = bgpOnly ? undefined : await nodeCounts();
  const rrCpuSteady = rrs.map((r, i) => cpuS(r.pid) - rrCpuSteady0[i]);
  const steady = bgpOnly ? Number.NaN : perNodeMin(s0, s1);
  const single = a.workers.at(-1);
  const multi = a.workers.slice(0, -1);
  const workerRss = multi.map((w) => vmRss(w.pid));
  const hostedRss = workerRss.reduce((x, y) => x + y, 0) / (N - 1);
  const singleRss = vmRss(single.pid);
  const apiRss = api ? vmRss(api.pid) : Number.NaN;
  const loadSteady = load();
  if (!bgpOnly)
    log(`steady state: ${steady.toFixed(2)} API requests per node per minute (load ${loadSteady})`);

  // Churn.
  let churn;
  let churnRate = Number.NaN;
  let loadChurn = '';
  if (churnPods > 0 && !bgpOnly) {
    const c0 = await nodeCounts();
    churn = await ask(
      { cmd: 'churn', pods: churnPods, concurrency: 16, nodes: nodes.map((n) => n.name) },
      timeoutMs,
    );
    const c1 = await nodeCounts();
    churnRate = perNodeMin(c0, c1);
    loadChurn = load();
    log(
      `churn of ${churnPods} pods: created in ${(churn.createMs / 1000).toFixed(1)} s, deleted in ${(churn.deleteMs / 1000).toFixed(1)} s, ${churn.errors} errors${churn.firstError ? ` (first: ${churn.firstError})` : ''}; ${churnRate.toFixed(2)} requests per node per minute (load ${loadChurn})`,
    );
  }
  const apiCpu = api ? cpuS(api.pid) : Number.NaN;
  await Promise.all(a.workers.map(stopChild));
  await Promise.all(rrs.map(stopChild));

  // ---- Phase 2: BIRD 2 as the two route reflectors, the same nodes cold-started again.
  let b;
  let birdRss = [];
  let loadBird = '';
  if (!values['no-bird']) {
    const birds = RRS.map((address, i) => {
      const conf = [
        `router id ${address};`,
        'protocol device { scan time 60; }',
        // 127.0.0.0/8 on lo resolves the clients' next hops (iBGP next hops are recursive).
        'protocol direct { ipv4; interface "lo"; }',
        'template bgp C {',
        `  local ${address} as 64512; strict bind on; passive on;`,
        `  rr client; rr cluster id ${RRS[0]}; hold time 90;`,
        '  ipv4 { import all; export all; };',
        '}',
        ...nodes.map((n, k) => `protocol bgp c${k + 1} from C { neighbor ${n.address} as 64512; }`),
        '',
      ].join('\n');
      const file = join(work, `bird-${i + 1}.conf`);
      writeFileSync(file, conf);
      const child = procs.add(ns.spawn('bird', ['-f', '-c', file, '-s', join(work, `bird-${i + 1}.ctl`)]));
      started.push(child);
      child.label = `bird-${address}`;
      return child;
    });
    for (const [i] of birds.entries()) {
      const ctl = join(work, `bird-${i + 1}.ctl`);
      const t = Date.now();
      while (ns && Date.now() - t < 30_000) {
        const r = await ns.exec('birdc', ['-s', ctl, 'show', 'status'], { timeoutMs: 5000 });
        if (r.stdout.includes('Daemon is up')) break;
        if (birds[i].exitCode !== null) throw new Error(`BIRD ${RRS[i]} exited`);
        await sleep(200);
      }
    }
    b = await coldStart(
      'bird',
      birds.map((x) => x.pid),
    );
    loadBird = load();
    if (!Number.isFinite(b.convergeS))
      log(`BIRD: only ${b.converged}/${N} nodes converged within ${timeoutMs / 1000} s`);
    else log(`BIRD reflectors: converged in ${b.convergeS.toFixed(1)} s (load ${loadBird})`);
    birdRss = birds.map((x) => mb(vmRss(x.pid)));
    await Promise.all(b.workers.map(stopChild));
    await Promise.all(birds.map((x) => procs.stop(x, 3000)));
  }

  // ---- Report.
  const sum = (xs) => xs.reduce((x, y) => x + y, 0);
  console.log(
    `\nscale-sim: ${N} simulated nodes (${multi.length} workers of up to ${perWorker} + 1 single-node process), 2 route reflectors, ${bgpOnly ? 'BGP only (--bgp-only: no API server, no agent stack; each node a speaker announcing a given block)' : 'embedded API server'}`,
  );
  console.log(
    table(
      ['measure', 'value', 'load (1/5/15 min)'],
      [
        [
          'cold start → every node has every block, bgp-ts RRs (s)',
          Number.isFinite(a.convergeS)
            ? String(r1(a.convergeS))
            : `not within ${timeoutMs / 1000} (${a.converged}/${N})`,
          loadConverged,
        ],
        [
          'cold start → every node has every block, BIRD 2 RRs (s)',
          !b
            ? 'not run'
            : Number.isFinite(b.convergeS)
              ? String(r1(b.convergeS))
              : `not within ${timeoutMs / 1000} (${b.converged}/${N})`,
          loadBird,
        ],
        ['  of which after every node synced and peered, bgp-ts (s)', String(r1(a.afterSyncS)), ''],
        ['  of which after every node synced and peered, BIRD 2 (s)', b ? String(r1(b.afterSyncS)) : '', ''],
        [
          `API requests / node / min, steady state (${steadyS} s)`,
          bgpOnly ? 'not run' : steady.toFixed(2),
          bgpOnly ? '' : loadSteady,
        ],
        [
          `API requests / node / min, ${churnPods}-pod churn (${churn ? ((churn.createMs + churn.deleteMs) / 1000).toFixed(0) : 0} s)`,
          churn
            ? `${churnRate.toFixed(2)}${churn.errors ? ` (${churn.errors} driver errors)` : ''}`
            : 'not run',
          loadChurn,
        ],
        ['bgp-ts RR CPU during convergence (s, each)', a.rrCpuS.map((x) => x.toFixed(1)).join(' / '), ''],
        [
          'bgp-ts RR CPU at steady state (% of a core, each)',
          rrCpuSteady.map((x) => ((100 * x) / steadyS).toFixed(1)).join(' / '),
          '',
        ],
        ['bgp-ts RR RSS (MB, each)', rrRss.map((x) => x.toFixed(0)).join(' / '), ''],
        [
          'BIRD RR CPU during convergence (s, each)',
          b ? b.rrCpuS.map((x) => x.toFixed(1)).join(' / ') : '',
          '',
        ],
        ['BIRD RR RSS (MB, each)', birdRss.map((x) => x.toFixed(0)).join(' / '), ''],
        [
          `${bgpOnly ? 'speaker' : 'agent stack'}, single-node process RSS (MB)`,
          mb(singleRss).toFixed(0),
          '',
        ],
        [
          `${bgpOnly ? 'speaker' : 'agent stack'}, worker RSS / nodes hosted (MB)`,
          mb(hostedRss).toFixed(1),
          '',
        ],
        [
          'worker RSS (MB, min / max)',
          `${mb(Math.min(...workerRss)).toFixed(0)} / ${mb(Math.max(...workerRss)).toFixed(0)}`,
          '',
        ],
        [
          'API server RSS (MB) / CPU until after the churn (s)',
          `${mb(apiRss).toFixed(0)} / ${apiCpu.toFixed(0)}`,
          '',
        ],
      ],
    ),
  );
  console.log(
    `goals: steady-state requests per node per minute flat from 100 to 1,000 nodes (run both); bgp-ts convergence ≤ BIRD's (${b && Number.isFinite(b.convergeS) ? `${(a.convergeS / b.convergeS).toFixed(2)}×` : 'n/a'}); per-agent RSS ≤ 100 MB`,
  );
  summary = JSON.stringify({
    bench: 'scale-sim',
    mode: bgpOnly ? 'bgp-only' : 'full',
    nodes: N,
    per_worker: perWorker,
    api_req_per_node_min: r1(steady),
    api_req_per_node_min_churn: r1(churnRate),
    churn_pods: churnPods,
    churn_errors: churn ? churn.errors : null,
    converge_s: r1(a.convergeS),
    converge_bird_s: b ? r1(b.convergeS) : null,
    converged_nodes: a.converged,
    converged_nodes_bird: b ? b.converged : null,
    sessions_up_nodes: a.established,
    sessions_up_nodes_bird: b ? b.established : null,
    converge_after_sync_s: r1(a.afterSyncS),
    converge_bird_after_sync_s: b ? r1(b.afterSyncS) : null,
    load_bird: loadBird || null,
    converge_ratio: b ? Math.round((a.convergeS / b.convergeS) * 100) / 100 : null,
    rr_cpu_s: r1(sum(a.rrCpuS)),
    rr_rss_mb: r1(Math.max(...rrRss)),
    rr_heap_used_mb: r1(Math.max(...rrMem.map((m) => mb(m.heapUsed)))),
    rr_external_mb: r1(Math.max(...rrMem.map((m) => mb(m.external)))),
    bird_cpu_s: b ? r1(sum(b.rrCpuS)) : null,
    bird_rss_mb: birdRss.length ? r1(Math.max(...birdRss)) : null,
    // With --bgp-only a simulated node is only its speaker: not an agent stack.
    agent_rss_mb: bgpOnly ? null : r1(mb(singleRss)),
    agent_rss_per_hosted_node_mb: bgpOnly ? null : r1(mb(hostedRss)),
    ...(bgpOnly ? { speaker_rss_per_hosted_node_mb: r1(mb(hostedRss)) } : {}),
    load: loadConverged,
  });
} catch (err) {
  console.error(`scale-sim: ${err.message}`);
  exitCode = 1;
} finally {
  await cleanup();
}
if (summary) console.log(summary);
process.exit(exitCode);
