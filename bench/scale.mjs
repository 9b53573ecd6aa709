// npm run bench -- scale [--nodes 50] [--mode rr|mesh]
//
// N simulated nodes, each a network namespace on the lab fabric running a real podnet-agent, one
// pod (so one block) per node, peering behind two route reflectors (--mode rr, default) or in a
// full mesh (--mode mesh), plus the BIRD ToR. Pods are created first (the CNI plugin needs only the
// API), then every agent is started at once: converge_s is the time from that start until every
// node has a kernel route to every other node's block. rss_mb_per_node is the agents' mean RSS
// after convergence.
// A full mesh of 50 nodes needs ~2,500 ARP entries, and the kernel's IPv4 neighbour table is one
// table shared by every namespace (net.ipv4.neigh.default.gc_thresh3, 1024 by default, a sysctl of
// the root namespace that the lab never touches): past it, connects fail with EHOSTUNREACH and
// sends with ENOBUFS, so --mode mesh converges only up to ~25-30 nodes on a default host.
// Last line: {"bench":"scale","nodes":…,"converge_s":…,"rss_mb_per_node":…}
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import { Lab, table } from '../packages/lab/dist/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: { nodes: { type: 'string', default: '50' }, mode: { type: 'string', default: 'rr' } },
});
const n = Number(values.nodes);
if (!Number.isInteger(n) || n < 2 || n > 200) {
  console.error(`scale: --nodes ${values.nodes}: expected 2..200`);
  process.exit(2);
}
if (values.mode !== 'rr' && values.mode !== 'mesh') {
  console.error(`scale: --mode ${values.mode}: expected rr or mesh`);
  process.exit(2);
}

// compose.yaml with node-a…c replaced by N nodes (IPv4 only, one pod each).
const compose = parse(readFileSync(join(root, 'compose.yaml'), 'utf8'), { merge: true });
const template = compose.services['node-a'];
for (const name of ['node-a', 'node-b', 'node-c', 'tor-frr']) delete compose.services[name];
compose['x-podnet'].podsPerNode = 1;
compose['x-podnet'].ipPools = compose['x-podnet'].ipPools.filter((p) => !p.cidr.includes(':'));
compose['x-podnet'].bgp.nodeToNodeMesh = values.mode === 'mesh';
const names = [];
for (let i = 0; i < n; i++) {
  const name = `n${String(i + 1).padStart(3, '0')}`;
  names.push(name);
  const svc = structuredClone(template);
  svc.command = ['podnet-agent', '--node-name', name, '--log-level', 'warn'];
  svc.environment = { ...svc.environment, NODENAME: name, PODNET_LOG_LEVEL: 'warn' };
  svc.networks = { fabric: { ipv4_address: `10.88.0.${11 + i}` } };
  svc['x-podnet'] = { ...svc['x-podnet'], gateway: { ipv4: '10.88.0.254' } };
  if (values.mode === 'rr' && i < 2) svc['x-podnet'].routeReflectorClusterId = '224.0.0.1';
  compose.services[name] = svc;
}
const work = `/tmp/podnet-bench-scale-${process.pid}`;
mkdirSync(work, { recursive: true });
const composeFile = join(work, 'compose.yaml');
writeFileSync(composeFile, stringify(compose));

const lab = new Lab({
  repoRoot: root,
  composeFile,
  stateDir: join(work, 'state'),
  prefix: `pnb${process.pid}-`,
  agents: false,
  timeouts: { bgpMs: 300_000 },
  log: (l) => process.stderr.write(`[lab] ${l}\n`),
});

const blockRoutes = (ns) => {
  const out = execFileSync('ip', [
    '-4',
    '-n',
    ns,
    '-json',
    'route',
    'show',
    'root',
    '10.244.0.0/16',
  ]).toString();
  const rs = out.trim() ? JSON.parse(out) : [];
  return rs.filter((r) => r.gateway || r.nexthops?.length).length;
};
const rssMb = (pid) => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
};

let exitCode = 0;
let summary;
try {
  await lab.up(); // namespaces, API objects, ToR, one pod per node through the CNI plugin
  const t0 = Date.now();
  await Promise.all(lab.nodes.map((s) => lab.startService(s.name)));
  const started = (Date.now() - t0) / 1000;
  process.stderr.write(`[bench] ${n} agents started in ${started.toFixed(1)} s\n`);
  const want = n - 1;
  let done = 0;
  const limitMs = 600_000;
  for (;;) {
    done = lab.nodes.filter((s) => blockRoutes(s.ns) >= want).length;
    if (done === n || Date.now() - t0 > limitMs) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const convergeS = done === n ? (Date.now() - t0) / 1000 : NaN;
  if (done !== n)
    process.stderr.write(`[bench] only ${done}/${n} nodes converged within ${limitMs / 1000} s\n`);
  const agents = lab.processes.filter((p) => names.includes(p.service));
  const rss = agents.map((p) => rssMb(p.pid)).filter(Number.isFinite);
  const meanRss = rss.reduce((a, b) => a + b, 0) / (rss.length || 1);
  console.log(
    `\nscale: ${n} nodes (${values.mode === 'rr' ? '2 route reflectors' : 'full mesh'}), 1 block each, BIRD ToR`,
  );
  console.log(
    table(
      ['measure', 'value'],
      [
        ['nodes', String(n)],
        ['nodes converged', `${done}/${n}`],
        ['agents started (s)', started.toFixed(1)],
        [
          'cold start → full convergence (s)',
          Number.isFinite(convergeS) ? convergeS.toFixed(1) : 'not converged',
        ],
        ['agent RSS mean (MB)', meanRss.toFixed(1)],
        ['agent RSS max (MB)', Math.max(...rss).toFixed(1)],
      ],
    ),
  );
  summary = JSON.stringify({
    bench: 'scale',
    nodes: n,
    mode: values.mode,
    converge_s: Number.isFinite(convergeS) ? Math.round(convergeS * 10) / 10 : null,
    rss_mb_per_node: Math.round(meanRss * 10) / 10,
  });
} catch (err) {
  console.error(`scale: ${err.message}`);
  exitCode = 1;
} finally {
  await lab.down({ quiet: true }).catch(() => {});
  rmSync(work, { recursive: true, force: true });
}
// The JSON line comes last, after the lab's teardown messages.
if (summary) console.log(summary);
process.exit(exitCode);
