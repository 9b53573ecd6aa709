// Benchmark: the podnet CNI plugin's ADD and DEL latency over N pods on one node, as a runtime
// sees it (one process per call, environment + stdin), against the embedded API server; the
// reference `ptp` plugin with `host-local` IPAM (Debian containernetworking-plugins) is run on the
// same node in the same run for comparison. Three paths, interleaved pod by pod so that the
// machine's noise falls on all of them alike:
// - podnet through the socket: the shim (dist/podnet-cni-shim) hands the command to a real
//   podnet-agent running in the node's namespace with --cni-socket;
// - podnet's fallback: the same shim with no agent answering, so it execs the standalone plugin
//   (dist/podnet-standalone: Node from the plugin's startup snapshot);
// - the reference ptp + host-local.
// Process start is measured apart (VERSION wall time).
//   npm run bench -- cni [pods] [--load] [--spares N]
//   --load: two busy processes (one per core, bounded to 15 minutes) run beside the whole measurement.
//   --spares N: the agent's --cni-spare-addresses (default 4; 0: every ADD allocates through the API).
//   CNI_BENCH_PLUGIN=/path/to/podnet-cni[.js] npm run bench -- cni   (another standalone build; .js runs with node)
//   CNI_BENCH_AGENT_NODE_FLAGS='--max-opt=2' npm run bench -- cni   (Node/V8 flags for the agent instead
//   of its own, those of podnet-agent's #! line; its RSS at the end is reported as agent_rss_mb)
// Everything runs in namespaces named pnt-cnibench-<pid>-<n> (removed at the end, or by the
// testkit's cleanupStale() after a crash). Last line: one JSON object.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { startApiServer } from '../packages/apiserver/dist/index.js';
import { IPPOOL, installCrds, KubeClient } from '../packages/k8s/dist/index.js';
import { shebangNodeFlags } from '../packages/lab/dist/index.js';

const args = process.argv.slice(2);
const LOAD = args.includes('--load');
const sparesAt = args.indexOf('--spares');
const SPARES = sparesAt >= 0 ? Number(args[sparesAt + 1]) : 4;
if (!Number.isInteger(SPARES) || SPARES < 0 || SPARES > 64)
  throw new Error(`--spares ${args[sparesAt + 1]}: expected a whole number from 0 to 64`);
const PODS = Number(args.find((a, i) => /^\d+$/.test(a) && (sparesAt < 0 || i !== sparesAt + 1)) ?? 200);
const SHIM = fileURLToPath(new URL('../packages/cni/dist/podnet-cni-shim', import.meta.url));
const AGENT = fileURLToPath(new URL('../packages/agent/dist/podnet-agent.js', import.meta.url));
/** How long the --load workers may spin at most (they are also ended when the bench ends). */
const LOAD_MAX_MS = 15 * 60_000;
// CNI_BENCH_PLUGIN=<path to podnet-cni.js> measures another build (e.g. an older one, side by side).
const PLUGIN =
  process.env.CNI_BENCH_PLUGIN ?? fileURLToPath(new URL('../packages/cni/dist/podnet-cni', import.meta.url));
const SCRIPT = fileURLToPath(new URL('../packages/cni/dist/podnet-cni.js', import.meta.url));
const REF_DIR = '/usr/lib/cni';
const AGENT_NODE_FLAGS =
  process.env.CNI_BENCH_AGENT_NODE_FLAGS === undefined
    ? shebangNodeFlags(AGENT)
    : process.env.CNI_BENCH_AGENT_NODE_FLAGS.split(/\s+/).filter(Boolean);
const NODE = 'bench-node';
const namespaces = [];
/** The --load busy processes. */
const loadWorkers = [];

function sh(cmd, args, input) {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

function netns(tag) {
  const name = `pnt-${tag}-${process.pid}-${namespaces.length + 1}`;
  sh('ip', ['netns', 'add', name]);
  namespaces.push(name);
  sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return { name, path: `/var/run/netns/${name}` };
}

/** Runs one CNI call inside the node's namespace and returns its wall time (ms) and outcome. */
function cni(node, cmd, env, config) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('nsenter', [`--net=${node.path}`, ...cmd], {
      env: {
        PATH: process.env.PATH,
        CNI_PATH: REF_DIR,
        ...(process.env.CNI_BENCH_NODE_OPTIONS ? { NODE_OPTIONS: process.env.CNI_BENCH_NODE_OPTIONS } : {}),
        ...env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (err += b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const ms = performance.now() - t0;
      if (code !== 0) reject(new Error(`${env.CNI_COMMAND} exited ${code ?? signal}: ${out} ${err}`));
      else resolve({ ms, out, err });
    });
    child.stdin.end(JSON.stringify(config));
  });
}

function pct(samples, p) {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}
const r1 = (x) => Math.round(x * 10) / 10;

/** Serves 127.0.0.1:port of this namespace inside `node` through a unix socket (no link, no route). */
async function forward(node, port) {
  const sock = join(tmpdir(), `pnt-cnibench-${process.pid}.sock`);
  if (existsSync(sock)) unlinkSync(sock);
  const server = createServer((c) => {
    const up = connect(port, '127.0.0.1');
    c.pipe(up);
    up.pipe(c);
    const end = () => {
      c.destroy();
      up.destroy();
    };
    c.on('error', end);
    up.on('error', end);
    c.on('close', end);
    up.on('close', end);
  });
  await new Promise((r) => server.listen(sock, r));
  const inner = `const net=require('node:net');const [s,p]=process.argv.slice(1);net.createServer((c)=>{const u=net.connect(s);c.pipe(u);u.pipe(c);const e=()=>{c.destroy();u.destroy()};c.on('error',e);u.on('error',e);c.on('close',e);u.on('close',e)}).listen(Number(p),'127.0.0.1',()=>process.stdout.write('ready\\n'));setInterval(()=>{if(process.ppid===1)process.exit(0)},1000);`;
  const child = spawn('nsenter', [`--net=${node.path}`, process.execPath, '-e', inner, sock, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (b) => String(b).includes('ready') && resolve());
    child.once('exit', (c) => reject(new Error(`forwarder exited ${c}`)));
  });
  return async () => {
    child.kill('SIGTERM');
    await new Promise((r) => server.close(r));
    if (existsSync(sock)) unlinkSync(sock);
  };
}

/** Starts one busy process per core (bounded to LOAD_MAX_MS); returns a function that ends them. */
function startLoad() {
  const spin = `const end = Date.now() + ${LOAD_MAX_MS}; let x = 0; while (Date.now() < end) x += Math.sqrt(x + 1);`;
  for (let i = 0; i < availableParallelism(); i++)
    loadWorkers.push(spawn(process.execPath, ['-e', spin], { stdio: 'ignore' }));
  return () => {
    for (const w of loadWorkers) if (w.exitCode === null) w.kill('SIGKILL');
  };
}

/** Starts podnet-agent in the node's namespace serving `socket`; resolves once the socket is there. */
async function startAgent(node, kubeconfig, socket, logFile) {
  const { openSync } = await import('node:fs');
  const out = openSync(logFile, 'a');
  const child = spawn(
    'nsenter',
    [
      `--net=${node.path}`,
      process.execPath,
      ...AGENT_NODE_FLAGS,
      AGENT,
      '--node-name',
      NODE,
      '--kubeconfig',
      kubeconfig,
      '--ip-autodetection-method',
      'interface=up0',
      '--status-listen',
      'none',
      '--metrics-listen',
      'none',
      '--cni-socket',
      socket,
      '--cni-spare-addresses',
      String(SPARES),
      '--log-level',
      process.env.CNI_BENCH_AGENT_LOGLEVEL ?? 'warn',
    ],
    { stdio: ['ignore', out, out] },
  );
  const t0 = Date.now();
  while (!existsSync(socket)) {
    if (child.exitCode !== null) throw new Error(`podnet-agent exited ${child.exitCode}: see ${logFile}`);
    if (Date.now() - t0 > 60_000) throw new Error(`podnet-agent did not serve ${socket} within 60 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(t);
  };
  // nsenter execs the agent in place: the child's pid is the agent's.
  const rssMb = () => {
    try {
      return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) / 1024;
    } catch {
      return null;
    }
  };
  return { stop, rssMb };
}

async function main() {
  for (const f of [PLUGIN, SHIM, AGENT])
    if (!existsSync(f)) throw new Error(`${f} is missing: run the build first (npx turbo run build)`);
  const tmp = mkdtempSync(join(tmpdir(), 'podnet-bench-cni-'));
  const api = await startApiServer({ port: 0, host: '127.0.0.1', kubeconfigPath: join(tmp, 'kubeconfig') });
  let stopForward = async () => {};
  let agent = { stop: async () => {}, rssMb: () => null };
  let stopLoad = () => {};
  try {
    const client = new KubeClient({ kubeconfigPath: join(tmp, 'kubeconfig') });
    await installCrds(client);
    await client
      .resource(IPPOOL)
      .create({ metadata: { name: 'bench' }, spec: { cidr: '10.88.0.0/16', blockSize: 26 } });
    await client.core.createNode({ body: { metadata: { name: NODE } } });

    const node = netns('cnibench');
    sh('ip', ['-n', node.name, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up1']);
    sh('ip', ['-n', node.name, 'link', 'set', 'up0', 'up']);
    sh('ip', ['-n', node.name, 'link', 'set', 'up1', 'up']);
    sh('ip', ['-n', node.name, 'addr', 'add', '192.0.2.1/24', 'dev', 'up0']);
    sh('ip', ['-n', node.name, 'route', 'add', 'default', 'via', '192.0.2.2']);
    stopForward = await forward(node, Number(new URL(api.url).port));

    // Three pod sets, one per path, all present at once (as pods pile up on a node).
    // Pod 0 of each path is the warm-up (not counted): the node's first block claim, the agent's
    // first command (its API connection, its spares read), host-local's first file.
    const groups = { socket: [], fallback: [], ref: [] };
    for (let i = 0; i <= PODS; i++) {
      for (const [g, tag] of [
        ['socket', 's'],
        ['fallback', 'f'],
        ['ref', 'r'],
      ]) {
        const name = `bench-${tag}${i}`;
        if (g !== 'ref')
          await client.core.createNamespacedPod({
            namespace: 'default',
            body: {
              metadata: { name },
              spec: { nodeName: NODE, containers: [{ name: 'c', image: 'none' }] },
            },
          });
        groups[g].push({ name, ns: netns('cnibench'), id: `bench${tag}${String(i).padStart(6, '0')}` });
      }
    }

    const node24 = PLUGIN.endsWith('.js') ? [process.execPath, PLUGIN] : [PLUGIN];
    const snapshot = !PLUGIN.endsWith('.js') && readFileSync(PLUGIN, 'utf8').includes('--snapshot-blob');
    const socket = join(tmp, 'run', 'cni.sock');
    const conf = {
      cniVersion: '1.0.0',
      name: 'podnet',
      type: 'podnet',
      kubeconfig: join(tmp, 'kubeconfig'),
      nodeName: NODE,
      mtu: 1500,
      cacheDir: join(tmp, 'cache'),
      logLevel: process.env.CNI_BENCH_LOGLEVEL ?? 'warn',
    };
    // No standalone plugin behind the socket path: a command the agent did not answer fails the bench.
    const socketEnv = { PODNET_CNI_SOCKET: socket, PODNET_CNI_FALLBACK: join(tmp, 'no-standalone-plugin') };
    const fallbackEnv = {
      PODNET_CNI_SOCKET: join(tmp, 'run', 'nobody-serves-this.sock'),
      ...(process.env.CNI_BENCH_PLUGIN ? { PODNET_CNI_FALLBACK: PLUGIN } : {}),
    };
    if (LOAD) stopLoad = startLoad();
    agent = await startAgent(node, join(tmp, 'kubeconfig'), socket, join(tmp, 'agent.log'));

    // Process start: VERSION loads nothing but the bundle; the first runs fill the compile cache.
    for (let i = 0; i < 3; i++) await cni(node, node24, { CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' });
    const start = [];
    for (let i = 0; i < 20; i++)
      start.push((await cni(node, node24, { CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' })).ms);
    const script = [];
    for (let i = 0; i < 3; i++) await cni(node, [process.execPath, SCRIPT], { CNI_COMMAND: 'VERSION' }, {});
    for (let i = 0; i < 20; i++)
      script.push((await cni(node, [process.execPath, SCRIPT], { CNI_COMMAND: 'VERSION' }, {})).ms);
    const bare = [];
    for (let i = 0; i < 20; i++) {
      bare.push((await cni(node, [process.execPath, '-e', '0'], { CNI_COMMAND: 'VERSION' }, {})).ms);
    }

    const env = (p, cmd) => ({
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: p.id,
      CNI_NETNS: p.ns.path,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${p.name}`,
    });
    // The reference: ptp + host-local (veth, /32 address, routes; IPAM in a local file).
    const refConf = {
      cniVersion: '1.0.0',
      name: 'ref',
      type: 'ptp',
      mtu: 1500,
      ipam: { type: 'host-local', subnet: '10.99.0.0/16', dataDir: join(tmp, 'host-local') },
    };
    const ref = [join(REF_DIR, 'ptp')];
    const add = [];
    const del = [];
    const fbAdd = [];
    const fbDel = [];
    const refAdd = [];
    const refDel = [];
    const phases = {};
    const apiCalls = [];
    for (const [path, e, c] of [
      [[SHIM], { ...env(groups.socket[0], 'ADD'), ...socketEnv }, conf],
      [[SHIM], { ...env(groups.fallback[0], 'ADD'), ...fallbackEnv }, conf],
      [ref, env(groups.ref[0], 'ADD'), refConf],
    ]) {
      await cni(node, path, e, c);
    }
    for (let i = 1; i <= PODS; i++) {
      add.push((await cni(node, [SHIM], { ...env(groups.socket[i], 'ADD'), ...socketEnv }, conf)).ms);
      const r = await cni(node, [SHIM], { ...env(groups.fallback[i], 'ADD'), ...fallbackEnv }, conf);
      fbAdd.push(r.ms);
      // With CNI_BENCH_LOGLEVEL=info the standalone plugin logs its phases ('ADD done'): collect them.
      for (const line of r.err.split('\n')) {
        if (!line.includes('"ADD done"')) continue;
        const o = JSON.parse(line);
        if (o.apiCalls) apiCalls.push(o.apiCalls);
        for (const k of [
          'startMs',
          'openMs',
          'allocateMs',
          'wireMs',
          'annotateMs',
          'sinceProcessStartMs',
          'apiRequests',
        ]) {
          phases[k] ??= [];
          phases[k].push(o[k]);
        }
      }
      refAdd.push((await cni(node, ref, env(groups.ref[i], 'ADD'), refConf)).ms);
    }
    const links = sh('ip', ['-n', node.name, '-json', 'link', 'show']);
    const wired = JSON.parse(links).filter((l) => l.ifname.startsWith('pn')).length;
    if (wired !== 2 * (PODS + 1))
      throw new Error(`expected ${2 * (PODS + 1)} podnet host interfaces after ADD, found ${wired}`);
    const agentLog = readFileSync(join(tmp, 'agent.log'), 'utf8');
    if (agentLog.includes('CNI request left to the standalone plugin'))
      throw new Error(`the agent declined requests the bench meant for it:\n${agentLog}`);
    // With CNI_BENCH_AGENT_LOGLEVEL=info the agent logs the same phases for the socket path.
    const agentPhases = {};
    for (const line of agentLog.split('\n')) {
      if (!line.includes('"ADD done"')) continue;
      const o = JSON.parse(line);
      for (const k of ['openMs', 'allocateMs', 'linkMs', 'wireMs', 'annotateMs', 'apiRequests']) {
        if (typeof o[k] !== 'number') continue;
        agentPhases[k] ??= [];
        agentPhases[k].push(o[k]);
      }
    }
    for (let i = 1; i <= PODS; i++) {
      del.push((await cni(node, [SHIM], { ...env(groups.socket[i], 'DEL'), ...socketEnv }, conf)).ms);
      fbDel.push((await cni(node, [SHIM], { ...env(groups.fallback[i], 'DEL'), ...fallbackEnv }, conf)).ms);
      refDel.push((await cni(node, ref, env(groups.ref[i], 'DEL'), refConf)).ms);
    }
    stopLoad();

    const res = {
      bench: 'cni',
      pods: PODS,
      loaded: LOAD,
      spares: SPARES,
      agent_node_flags: AGENT_NODE_FLAGS.join(' '),
      agent_rss_mb: agent.rssMb() === null ? null : r1(agent.rssMb()),
      add_p50_ms: r1(pct(add, 0.5)),
      add_p99_ms: r1(pct(add, 0.99)),
      del_p50_ms: r1(pct(del, 0.5)),
      del_p99_ms: r1(pct(del, 0.99)),
      fallback_add_p50_ms: r1(pct(fbAdd, 0.5)),
      fallback_add_p99_ms: r1(pct(fbAdd, 0.99)),
      fallback_del_p99_ms: r1(pct(fbDel, 0.99)),
      process_start_ms: r1(pct(start, 0.5)),
      launcher: snapshot ? 'snapshot' : 'script',
      script_start_ms: r1(pct(script, 0.5)),
      node_bare_start_ms: r1(pct(bare, 0.5)),
      ref_add_p50_ms: r1(pct(refAdd, 0.5)),
      ref_add_p99_ms: r1(pct(refAdd, 0.99)),
      ref_del_p99_ms: r1(pct(refDel, 0.99)),
      add_p99_ratio: Math.round((pct(add, 0.99) / pct(refAdd, 0.99)) * 100) / 100,
      add_p50_ratio_vs_ref: Math.round((pct(add, 0.5) / pct(refAdd, 0.5)) * 100) / 100,
      fallback_add_p99_ratio: Math.round((pct(fbAdd, 0.99) / pct(refAdd, 0.99)) * 100) / 100,
    };
    const rows = [
      ['podnet ADD (shim → agent socket)', add],
      ['podnet DEL (shim → agent socket)', del],
      ['podnet ADD (shim → standalone fallback)', fbAdd],
      ['podnet DEL (shim → standalone fallback)', fbDel],
      [`podnet VERSION (process start, ${res.launcher})`, start],
      ['podnet VERSION (node podnet-cni.js)', script],
      ['node -e 0 (bare Node start)', bare],
      ['ref ptp+host-local ADD', refAdd],
      ['ref ptp+host-local DEL', refDel],
    ];
    console.log(
      `CNI latency over ${PODS} pods per path on one node (ms, wall time per process incl. nsenter)` +
        (LOAD ? `, with ${availableParallelism()} busy processes beside it (--load)` : ''),
    );
    const cols = ['p50', 'p90', 'p99', 'max'];
    console.log(`${'call'.padEnd(44)}${cols.map((c) => c.padStart(9)).join('')}`);
    for (const [k, v] of rows) {
      const f = [0.5, 0.9, 0.99, 1].map((p) => String(r1(pct(v, p))).padStart(9));
      console.log(`${k.padEnd(44)}${f.join('')}`);
    }
    if (Object.keys(phases).length > 0) {
      console.log('ADD phases inside the standalone plugin (p50 ms):');
      for (const [k, v] of Object.entries(phases))
        console.log(`  ${k.padEnd(22)}${String(r1(pct(v, 0.5))).padStart(8)}`);
    }
    if (Object.keys(agentPhases).length > 0) {
      console.log('ADD phases inside the agent, socket path (p50 / p99 ms):');
      for (const [k, v] of Object.entries(agentPhases))
        console.log(
          `  ${k.padEnd(22)}${String(r1(pct(v, 0.5))).padStart(8)}${String(r1(pct(v, 0.99))).padStart(8)}`,
        );
    }
    if (apiCalls.length > 1) {
      console.log('API requests of the first standalone ADD (claims a block) and of the last one:');
      for (const c of apiCalls[0]) console.log(`  first  ${c}`);
      for (const c of apiCalls[apiCalls.length - 1]) console.log(`  last   ${c}`);
    }
    console.log(JSON.stringify(res));
  } finally {
    stopLoad();
    await agent.stop();
    await stopForward();
    await api.close();
    for (const n of namespaces) spawnSync('ip', ['netns', 'del', n]);
    if (process.env.CNI_BENCH_KEEP) console.error(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
}

// Interrupted: the namespaces and the --load workers go too (the agent, in a namespace, follows
// its namespace's removal only by its own exit; it is ended by the finally block when reached).
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    for (const w of loadWorkers) if (w.exitCode === null) w.kill('SIGKILL');
    for (const n of namespaces) spawnSync('ip', ['netns', 'del', n]);
    process.exit(1);
  });
}

main().catch((err) => {
  console.error(err);
  for (const n of namespaces) spawnSync('ip', ['netns', 'del', n]);
  process.exit(1);
});
