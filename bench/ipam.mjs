// IPAM benchmark: `npm run bench -- ipam [--allocations N] [--nodes N] [--per-node N]`.
// Starts the embedded API server as its own process (podnet-apiserver, HTTPS + token, as the lab
// runs it), installs the CRDs and one IPPool, lets each simulated node claim its first block (the
// steady state the goal is stated for), then times N pod allocations from the nodes running
// concurrently, each node with its own client.
// Reference in the same run: the latency of one bare API write (creating an object) on the same
// server, which bounds what an allocation (two CAS writes) can cost. Duplicates are counted from the
// results, not assumed; the run ends by releasing everything and checking nothing leaked.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Ipam } from '../packages/ipam/dist/index.js';
import { IPAMHANDLE, IPPOOL, installCrds, KubeClient } from '../packages/k8s/dist/index.js';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const ALLOCATIONS = arg('allocations', 1000);
const NODES = arg('nodes', 5);
const PER_NODE = arg('per-node', 1); // allocations in flight per node (CNI ADDs at once)

/** CPU seconds (user+system) a process has used, from /proc. */
const cpuSeconds = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
};
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

// The API server runs in its own process (as in the lab), so its event loop is not the clients'.
const dir = mkdtempSync(join(tmpdir(), 'podnet-bench-ipam-'));
const kubeconfigPath = join(dir, 'kubeconfig');
const cli = fileURLToPath(new URL('../packages/apiserver/dist/cli.js', import.meta.url));
const server = spawn(
  process.execPath,
  [cli, '--port', '0', '--kubeconfig', kubeconfigPath, '--log-level', 'warn'],
  {
    stdio: ['ignore', 'ignore', 'inherit'],
  },
);
const stopServer = () =>
  new Promise((resolve) => {
    if (server.exitCode !== null) return resolve();
    server.once('exit', resolve);
    server.kill('SIGTERM');
    setTimeout(() => server.exitCode === null && server.kill('SIGKILL'), 5000).unref();
  });
try {
  for (let i = 0; i < 200 && !existsSync(kubeconfigPath); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(kubeconfigPath))
    throw new Error('podnet-apiserver did not write its kubeconfig within 10 s');
  const admin = new KubeClient({ kubeconfigPath });
  await installCrds(admin);
  await admin
    .resource(IPPOOL)
    .create({ metadata: { name: 'bench' }, spec: { cidr: '10.0.0.0/16', blockSize: 26 } });

  // Reference: bare API writes on the same server.
  const ref = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    await admin
      .resource(IPAMHANDLE)
      .create({ metadata: { name: `ref-${i}` }, spec: { handleID: `ref-${i}`, block: {} } });
    ref.push(performance.now() - t);
  }
  for (let i = 0; i < 200; i++) await admin.resource(IPAMHANDLE).delete(`ref-${i}`);
  ref.sort((a, b) => a - b);

  const nodes = Array.from({ length: NODES }, (_, i) => {
    const client = new KubeClient({ kubeconfigPath });
    return { name: `node-${i}`, client, ipam: new Ipam({ client }) };
  });
  // Warm-up: every node claims its first block.
  await Promise.all(nodes.map((n) => n.ipam.allocate({ handle: `warm.${n.name}`, node: n.name })));
  const before = nodes.map((n) => ({
    writes: n.client.stats.writes,
    conflicts: n.ipam.conflicts + n.client.stats.conflicts,
  }));

  const latencies = [];
  const steady = []; // allocations that did not have to claim a block
  const results = [];
  let next = 0;
  const serverCpu0 = cpuSeconds(server.pid);
  const clientCpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    nodes.flatMap((n) =>
      Array.from({ length: PER_NODE }, async () => {
        for (;;) {
          const i = next++;
          if (i >= ALLOCATIONS) return;
          const handle = `podnet.c${i}`;
          const claims = n.ipam.claims;
          const t = performance.now();
          const r = await n.ipam.allocate({
            handle,
            node: n.name,
            attrs: { namespace: 'bench', pod: `p${i}` },
          });
          const ms = performance.now() - t;
          latencies.push(ms);
          if (PER_NODE === 1 && n.ipam.claims === claims) steady.push(ms);
          results.push({ handle, node: n.name, address: r.ipv4.address });
        }
      }),
    ),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const serverCpuMs = ((cpuSeconds(server.pid) - serverCpu0) * 1000) / ALLOCATIONS;
  const clientCpu = process.cpuUsage(clientCpu0);
  const clientCpuMs = (clientCpu.user + clientCpu.system) / 1000 / ALLOCATIONS;
  const writes = nodes.reduce((s, n, i) => s + n.client.stats.writes - before[i].writes, 0);
  const conflicts = nodes.reduce(
    (s, n, i) => s + n.ipam.conflicts + n.client.stats.conflicts - before[i].conflicts,
    0,
  );
  const seen = new Map();
  let duplicates = 0;
  for (const r of results) {
    if (seen.has(r.address)) duplicates++;
    seen.set(r.address, r.handle);
  }
  latencies.sort((a, b) => a - b);
  steady.sort((a, b) => a - b);
  const usage = await nodes[0].ipam.usage();
  const problems = await nodes[0].ipam.check();

  // Release everything, then verify that nothing leaked.
  await Promise.all(
    nodes.map(async (n) => {
      for (const r of results.filter((x) => x.node === n.name)) await n.ipam.releaseByHandle(r.handle);
      await n.ipam.releaseByHandle(`warm.${n.name}`);
    }),
  );
  const after = await nodes[0].ipam.usage();

  const rows = [
    ['allocations', ALLOCATIONS],
    ['nodes (concurrent)', `${NODES} x ${PER_NODE} in flight`],
    ['elapsed', `${round(elapsed)} s`],
    ['allocations/s', round(ALLOCATIONS / elapsed, 1)],
    ['latency p50', `${round(pct(latencies, 50))} ms`],
    ['latency p99', `${round(pct(latencies, 99))} ms`],
    ['latency max', `${round(latencies.at(-1))} ms`],
    [`steady state p50 (${steady.length} without a block claim)`, `${round(pct(steady, 50))} ms`],
    ['steady state p99', `${round(pct(steady, 99))} ms`],
    ['API writes / allocation', round(writes / ALLOCATIONS, 3)],
    ['conflicts retried', conflicts],
    ['API server CPU / allocation', `${round(serverCpuMs)} ms`],
    ['clients CPU / allocation', `${round(clientCpuMs)} ms`],
    ['blocks claimed', usage.totals.blocks],
    ['duplicates', duplicates],
    ['ipam check problems', problems.length],
    ['addresses left after release', after.totals.used],
    ['ref: bare API write p50', `${round(pct(ref, 50))} ms`],
    ['ref: bare API write p99', `${round(pct(ref, 99))} ms`],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  console.log('IPAM: pod allocations against the embedded API server (podnet-apiserver process, HTTPS)');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v}`);
  if (problems.length) console.log(problems.map((p) => `  problem: ${p.message}`).join('\n'));
  console.log(
    JSON.stringify({
      bench: 'ipam',
      allocations: ALLOCATIONS,
      per_s: round(ALLOCATIONS / elapsed, 1),
      p50_ms: round(pct(latencies, 50)),
      p99_ms: round(pct(latencies, 99)),
      steady_p50_ms: round(pct(steady, 50)),
      steady_p99_ms: round(pct(steady, 99)),
      writes_per_alloc: round(writes / ALLOCATIONS, 3),
      conflicts,
      duplicates,
      leaked: after.totals.used,
      ref_write_p50_ms: round(pct(ref, 50)),
    }),
  );
  await Promise.all([admin.close(), ...nodes.map((n) => n.client.close())]);
} finally {
  await stopServer();
  rmSync(dir, { recursive: true, force: true });
}
