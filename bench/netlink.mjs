// Benchmark: install, dump and delete N routes with rtnetlink-ts vs `ip -batch`, same run, each in
// a fresh network namespace. `npm run bench -- netlink [N]`. Last line: one JSON object.
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Rtnl } from '../packages/rtnetlink/dist/index.js';

const N = Number(process.argv[2] ?? 100_000);
const PROTO = 80;
const nsNames = [];

function sh(cmd, args, input) {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

function freshNamespace(tag) {
  // Same naming as @podnet/testkit (pnt-<tag>-<pid>-<n>), so a crashed run is cleaned up by cleanupStale().
  const name = `pnt-${tag}-${process.pid}-${nsNames.length + 1}`;
  sh('ip', ['netns', 'add', name]);
  nsNames.push(name);
  sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', name, 'link', 'add', 'bv0', 'type', 'veth', 'peer', 'name', 'bv1']);
  sh('ip', ['-n', name, 'link', 'set', 'bv0', 'up']);
  sh('ip', ['-n', name, 'link', 'set', 'bv1', 'up']);
  sh('ip', ['-n', name, 'addr', 'add', '192.168.255.1/24', 'dev', 'bv0']);
  const ifindex = JSON.parse(sh('ip', ['-n', name, '-json', 'link', 'show', 'bv0']))[0].ifindex;
  return { name, path: `/var/run/netns/${name}`, ifindex };
}

function dst(i) {
  return `10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`;
}

function countRoutes(ns) {
  const out = sh('ip', ['-n', ns, 'route', 'show', 'proto', String(PROTO)]);
  return out ? out.split('\n').filter(Boolean).length : 0;
}

function timeIt(fn) {
  const t0 = performance.now();
  const r = fn();
  return r instanceof Promise ? r.then((v) => [performance.now() - t0, v]) : [performance.now() - t0, r];
}

async function main() {
  const tmp = join(tmpdir(), `podnet-bench-netlink-${process.pid}`);
  const rows = [];

  // --- ip -batch --------------------------------------------------------------------------------
  const ipNs = freshNamespace('benchip');
  let lines = '';
  for (let i = 0; i < N; i++) lines += `route add ${dst(i)} dev bv0 proto ${PROTO}\n`;
  writeFileSync(`${tmp}-add`, lines);
  const [ipAddMs] = timeIt(() => sh('ip', ['-n', ipNs.name, '-batch', `${tmp}-add`]));
  if (countRoutes(ipNs.name) !== N) throw new Error('ip -batch did not install every route');
  const [ipDumpMs, ipDumped] = timeIt(() => countRoutes(ipNs.name));
  lines = '';
  for (let i = 0; i < N; i++) lines += `route del ${dst(i)} dev bv0 proto ${PROTO}\n`;
  writeFileSync(`${tmp}-del`, lines);
  const [ipDelMs] = timeIt(() => sh('ip', ['-n', ipNs.name, '-batch', `${tmp}-del`]));
  if (countRoutes(ipNs.name) !== 0) throw new Error('ip -batch did not delete every route');
  rmSync(`${tmp}-add`, { force: true });
  rmSync(`${tmp}-del`, { force: true });

  // --- rtnetlink-ts -----------------------------------------------------------------------------
  const ns = freshNamespace('benchpn');
  const nl = await Rtnl.open({ netns: ns.path });
  const reqs = new Array(N);
  for (let i = 0; i < N; i++) {
    reqs[i] = { type: 'route.add', route: { dst: dst(i), oif: ns.ifindex, protocol: PROTO } };
  }
  const [addMs, addRes] = await timeIt(() => nl.batch(reqs));
  const addFailed = addRes.filter((r) => !r.ok);
  if (addFailed.length)
    throw new Error(`rtnetlink-ts: ${addFailed.length} adds failed, first: ${addFailed[0].error.message}`);
  if (countRoutes(ns.name) !== N) throw new Error('rtnetlink-ts did not install every route');
  const [dumpMs, dumped] = await timeIt(() => nl.routes.list({ protocol: PROTO, family: 4 }));
  if (dumped.length !== N)
    throw new Error(`rtnetlink-ts dump returned ${dumped.length} routes, expected ${N}`);
  const dels = dumped.map((route) => ({ type: 'route.del', route }));
  const [delMs, delRes] = await timeIt(() => nl.batch(dels));
  const delFailed = delRes.filter((r) => !r.ok);
  if (delFailed.length)
    throw new Error(`rtnetlink-ts: ${delFailed.length} deletes failed, first: ${delFailed[0].error.message}`);
  if (countRoutes(ns.name) !== 0) throw new Error('rtnetlink-ts did not delete every route');
  nl.close();

  const rate = (ms) => Math.round(N / (ms / 1000));
  rows.push(['install', rate(addMs), rate(ipAddMs), addMs, ipAddMs]);
  rows.push(['dump', rate(dumpMs), rate(ipDumpMs), dumpMs, ipDumpMs]);
  rows.push(['delete', rate(delMs), rate(ipDelMs), delMs, ipDelMs]);
  if (ipDumped !== N) throw new Error(`ip route show counted ${ipDumped}`);

  console.log(
    `netlink benchmark: ${N} IPv4 /32 routes (dev, proto ${PROTO}), each method in a fresh namespace`,
  );
  console.log('');
  console.log(
    `${'phase'.padEnd(9)}${'rtnetlink-ts /s'.padStart(17)}${'ip /s'.padStart(12)}${'ratio'.padStart(8)}${'ms (ts / ip)'.padStart(20)}`,
  );
  for (const [phase, ts, ip, tsMs, ipMs] of rows) {
    console.log(
      `${phase.padEnd(9)}${String(ts).padStart(17)}${String(ip).padStart(12)}${(ts / ip).toFixed(2).padStart(8)}${`${tsMs.toFixed(0)} / ${ipMs.toFixed(0)}`.padStart(20)}`,
    );
  }
  console.log('');
  console.log('reference: ip -batch (install/delete), ip route show proto 80 (dump, text output)');
  const podnet = rate(addMs);
  const ref = rate(ipAddMs);
  console.log(
    JSON.stringify({
      bench: 'netlink',
      routes: N,
      podnet_per_s: podnet,
      ip_batch_per_s: ref,
      ratio: Number((podnet / ref).toFixed(2)),
      dump_podnet_per_s: rate(dumpMs),
      dump_ip_per_s: rate(ipDumpMs),
      delete_podnet_per_s: rate(delMs),
      delete_ip_batch_per_s: rate(ipDelMs),
      delete_ratio: Number((rate(delMs) / rate(ipDelMs)).toFixed(2)),
    }),
  );
}

try {
  await main();
} finally {
  for (const name of nsNames) spawnSync('ip', ['netns', 'del', name]);
}
