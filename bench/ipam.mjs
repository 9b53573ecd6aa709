// IPAM benchmark: `npm run bench -- ipam [--allocations N] [--nodes N] [--per-node N] [--node-processes]`.
// Starts the embedded API server as its own process (podnet-apiserver, HTTPS + token, as the lab
// runs it), installs the CRDs and one IPPool, lets each simulated node claim its first block (the
// steady state the goal is stated for), then times N pod allocations from the nodes running
// concurrently, each node with its own client, all on this process's event loop. With
// `--node-processes` each simulated node runs in its own process instead, as nodes are separate
// machines; on a small, loaded machine that costs more (five cold JITs and heaps competing for the
// same cores), so the default stays one process. Allocation i goes to node i mod nodes; each node
// times its own allocations and the latencies are pooled.
// Reference in the same run: the latency of one bare API write (creating an object) on the same
// server, which bounds what an allocation (two CAS writes) can cost. Duplicates are counted from the
// results, not assumed; the run ends by releasing everything and checking nothing leaked.
import { fork, spawn } from 'node:child_process';
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
const IN_PROCESS = !process.argv.includes('--node-processes');
// `--client-node` sends every request through client-node's fetch pipeline (KubeClient
// directRequests: false), for comparison with the direct requests the KubeClient makes by default.
const DIRECT = !process.argv.includes('--client-node');

/** CPU seconds (user+system) a process has used, from /proc. */
const cpuSeconds = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
};
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/**
 * One simulated node: its own client and Ipam. `warm()` claims its first block; `run(indices)`
 * allocates pods i of `indices` (PER_NODE at a time) and returns what it measured.
 */
function simulatedNode(kubeconfigPath, name) {
  const client = new KubeClient({ kubeconfigPath, directRequests: DIRECT });
  const ipam = new Ipam({ client });
  const results = [];
  return {
    async warm() {
      await ipam.allocate({ handle: `warm.${name}`, node: name });
    },
    async run(indices) {
      const w0 = client.stats.writes;
      const c0 = ipam.conflicts + client.stats.conflicts;
      const latencies = [];
      const steady = []; // allocations that did not have to claim a block
      let next = 0;
      await Promise.all(
        Array.from({ length: PER_NODE }, async () => {
          while (next < indices.length) {
            const i = indices[next++];
            const handle = `podnet.c${i}`;
            const claims = ipam.claims;
            const t = performance.now();
            const r = await ipam.allocate({
              handle,
              node: name,
              attrs: { namespace: 'bench', pod: `p${i}` },
            });
            const ms = performance.now() - t;
            latencies.push(ms);
            if (PER_NODE === 1 && ipam.claims === claims) steady.push(ms);
            results.push({ handle, node: name, address: r.ipv4.address });
          }
        }),
      );
      return {
        latencies,
        steady,
        results,
        writes: client.stats.writes - w0,
        conflicts: ipam.conflicts + client.stats.conflicts - c0,
      };
    },
    async release() {
      for (const r of results) await ipam.releaseByHandle(r.handle);
      await ipam.releaseByHandle(`warm.${name}`);
    },
    close: () => client.close(),
  };
}

// ---- Child role: one simulated node driven over IPC by the parent.
if (process.argv.includes('--node-worker')) {
  const at = (flag) => process.argv[process.argv.indexOf(flag) + 1];
  const node = simulatedNode(at('--kubeconfig'), at('--node'));
  process.on('message', async (m) => {
    try {
      if (m.type === 'warm') {
        await node.warm();
        process.send({ type: 'warm' });
      } else if (m.type === 'run') {
        const cpu0 = process.cpuUsage();
        const r = await node.run(m.indices);
        const cpu = process.cpuUsage(cpu0);
        process.send({ type: 'run', ...r, cpuMs: (cpu.user + cpu.system) / 1000 });
      } else if (m.type === 'release') {
        await node.release();
        await node.close();
        process.send({ type: 'release' });
        process.disconnect();
      }
    } catch (err) {
      process.send({ type: 'error', message: String(err?.stack ?? err) });
      process.exit(1);
    }
  });
} else {
  await main();
}

/** A node in a child process, with the same interface as simulatedNode (plus its CPU time). */
function childNode(kubeconfigPath, name) {
  const child = fork(
    fileURLToPath(import.meta.url),
    [
      '--node-worker',
      '--per-node',
      String(PER_NODE),
      '--kubeconfig',
      kubeconfigPath,
      '--node',
      name,
      ...(DIRECT ? [] : ['--client-node']),
    ],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  const ask = (msg) =>
    new Promise((resolve, reject) => {
      const onMessage = (m) => {
        child.off('exit', onExit);
        if (m.type === 'error') reject(new Error(`node ${name}: ${m.message}`));
        else resolve(m);
      };
      const onExit = (code) => {
        child.off('message', onMessage);
        reject(new Error(`node ${name} exited with ${code}`));
      };
      child.once('message', onMessage);
      child.once('exit', onExit);
      child.send(msg);
    });
  return {
    warm: () => ask({ type: 'warm' }),
    run: (indices) => ask({ type: 'run', indices }),
    release: () => ask({ type: 'release' }),
    close: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
    },
  };
}

async function main() {
  // The API server runs in its own process (as in the lab), so its event loop is not the clients'.
  const dir = mkdtempSync(join(tmpdir(), 'podnet-bench-ipam-'));
  const kubeconfigPath = join(dir, 'kubeconfig');
  const cli = fileURLToPath(new URL('../packages/apiserver/dist/cli.js', import.meta.url));
  const server = spawn(
    process.execPath,
    [cli, '--port', '0', '--kubeconfig', kubeconfigPath, '--log-level', 'warn'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const stopServer = () =>
    new Promise((resolve) => {
      if (server.exitCode !== null) return resolve();
      server.once('exit', resolve);
      server.kill('SIGTERM');
      setTimeout(() => server.exitCode === null && server.kill('SIGKILL'), 5000).unref();
    });
  const nodes = [];
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

    for (let i = 0; i < NODES; i++)
      nodes.push((IN_PROCESS ? simulatedNode : childNode)(kubeconfigPath, `node-${i}`));
    // Warm-up: every node claims its first block.
    await Promise.all(nodes.map((n) => n.warm()));

    const serverCpu0 = cpuSeconds(server.pid);
    const clientCpu0 = process.cpuUsage();
    const t0 = performance.now();
    const runs = await Promise.all(
      nodes.map((n, k) =>
        n.run(Array.from({ length: ALLOCATIONS }, (_, i) => i).filter((i) => i % NODES === k)),
      ),
    );
    const elapsed = (performance.now() - t0) / 1000;
    const serverCpuMs = ((cpuSeconds(server.pid) - serverCpu0) * 1000) / ALLOCATIONS;
    const ownCpu = process.cpuUsage(clientCpu0);
    const clientCpuMs =
      (IN_PROCESS ? (ownCpu.user + ownCpu.system) / 1000 : runs.reduce((s, r) => s + r.cpuMs, 0)) /
      ALLOCATIONS;
    const latencies = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
    const steady = runs.flatMap((r) => r.steady).sort((a, b) => a - b);
    const results = runs.flatMap((r) => r.results);
    const writes = runs.reduce((s, r) => s + r.writes, 0);
    const conflicts = runs.reduce((s, r) => s + r.conflicts, 0);
    const seen = new Map();
    let duplicates = 0;
    for (const r of results) {
      if (seen.has(r.address)) duplicates++;
      seen.set(r.address, r.handle);
    }
    const checker = new Ipam({ client: admin });
    const usage = await checker.usage();
    const problems = await checker.check();

    // Release everything, then verify that nothing leaked.
    const r0 = performance.now();
    await Promise.all(nodes.map((n) => n.release()));
    const releaseS = (performance.now() - r0) / 1000;
    const after = await checker.usage();

    const rows = [
      ['allocations', ALLOCATIONS],
      [
        'nodes (concurrent)',
        `${NODES} x ${PER_NODE} in flight, ${IN_PROCESS ? 'all in one process' : 'one process each'}`,
      ],
      [
        'requests',
        DIRECT ? 'direct over the pooled connection (default)' : 'through client-node fetch (--client-node)',
      ],
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
      ['release of all (by handle, nodes in parallel)', `${round(releaseS)} s`],
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
        nodes: NODES,
        node_processes: !IN_PROCESS,
        direct_requests: DIRECT,
        per_s: round(ALLOCATIONS / elapsed, 1),
        p50_ms: round(pct(latencies, 50)),
        p99_ms: round(pct(latencies, 99)),
        steady_p50_ms: round(pct(steady, 50)),
        steady_p99_ms: round(pct(steady, 99)),
        writes_per_alloc: round(writes / ALLOCATIONS, 3),
        conflicts,
        duplicates,
        leaked: after.totals.used,
        release_s: round(releaseS),
        ref_write_p50_ms: round(pct(ref, 50)),
      }),
    );
    await admin.close();
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
    await stopServer();
    rmSync(dir, { recursive: true, force: true });
  }
}
