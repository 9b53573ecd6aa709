// Benchmark: install, dump and delete N routes with rtnetlink-ts vs `ip -batch`, same run, each
// round in a fresh network namespace. Rounds alternate which method goes first, and the best round
// of each method is reported (the machine may be shared; best-of-N measures what each can do).
// `npm run bench -- netlink [N] [rounds]`. Last line: one JSON object.
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Rtnl } from '../packages/rtnetlink/dist/index.js';

const N = Number(process.argv[2] ?? 100_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const PROTO = 80;
const nsNames = [];
const tmp = join(tmpdir(), `podnet-bench-netlink-${process.pid}`);

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

function dropNamespace(ns) {
  spawnSync('ip', ['netns', 'del', ns.name]);
  nsNames.splice(nsNames.indexOf(ns.name), 1);
}

function dst(i) {
  return `10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`;
}

function countRoutes(ns) {
  const out = sh('ip', ['-n', ns, 'route', 'show', 'proto', String(PROTO)]);
  return out ? out.split('\n').filter(Boolean).length : 0;
}

async function timeIt(fn) {
  const t0 = performance.now();
  const r = await fn();
  return [performance.now() - t0, r];
}

async function roundIp() {
  const ns = freshNamespace('benchip');
  try {
    const [addMs] = await timeIt(() => sh('ip', ['-n', ns.name, '-batch', `${tmp}-add`]));
    if (countRoutes(ns.name) !== N) throw new Error('ip -batch did not install every route');
    const [dumpMs, dumped] = await timeIt(() => countRoutes(ns.name));
    if (dumped !== N) throw new Error(`ip route show counted ${dumped}`);
    const [delMs] = await timeIt(() => sh('ip', ['-n', ns.name, '-batch', `${tmp}-del`]));
    if (countRoutes(ns.name) !== 0) throw new Error('ip -batch did not delete every route');
    return { addMs, dumpMs, delMs };
  } finally {
    dropNamespace(ns);
  }
}

async function roundPodnet() {
  const ns = freshNamespace('benchpn');
  const nl = await Rtnl.open({ netns: ns.path });
  try {
    const reqs = new Array(N);
    for (let i = 0; i < N; i++) {
      reqs[i] = { type: 'route.add', route: { dst: dst(i), oif: ns.ifindex, protocol: PROTO } };
    }
    // Timed from the request objects: encoding is part of the cost.
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
      throw new Error(
        `rtnetlink-ts: ${delFailed.length} deletes failed, first: ${delFailed[0].error.message}`,
      );
    if (countRoutes(ns.name) !== 0) throw new Error('rtnetlink-ts did not delete every route');
    return { addMs, dumpMs, delMs };
  } finally {
    nl.close();
    dropNamespace(ns);
  }
}

async function main() {
  let lines = '';
  for (let i = 0; i < N; i++) lines += `route add ${dst(i)} dev bv0 proto ${PROTO}\n`;
  writeFileSync(`${tmp}-add`, lines);
  lines = '';
  for (let i = 0; i < N; i++) lines += `route del ${dst(i)} dev bv0 proto ${PROTO}\n`;
  writeFileSync(`${tmp}-del`, lines);

  const ts = [];
  const ip = [];
  for (let round = 0; round < ROUNDS; round++) {
    if (round % 2 === 0) {
      ip.push(await roundIp());
      ts.push(await roundPodnet());
    } else {
      ts.push(await roundPodnet());
      ip.push(await roundIp());
    }
  }

  const rate = (ms) => Math.round(N / (ms / 1000));
  const best = (runs, key) => Math.min(...runs.map((r) => r[key]));
  const phases = [
    ['install', 'addMs'],
    ['dump', 'dumpMs'],
    ['delete', 'delMs'],
  ];

  console.log(
    `netlink benchmark: ${N} IPv4 /32 routes (dev, proto ${PROTO}), ${ROUNDS} rounds, each in a fresh namespace`,
  );
  console.log(`reference: ip -batch (install/delete), ip route show proto ${PROTO} (dump, text output)`);
  console.log('');
  console.log('per round, routes/s (rtnetlink-ts | ip):');
  for (let r = 0; r < ROUNDS; r++) {
    const cells = phases.map(([name, key]) => `${name} ${rate(ts[r][key])} | ${rate(ip[r][key])}`);
    console.log(`  round ${r + 1}: ${cells.join('   ')}`);
  }
  console.log('');
  console.log(
    `${'best'.padEnd(9)}${'rtnetlink-ts /s'.padStart(17)}${'ip /s'.padStart(12)}${'ratio'.padStart(8)}${'ms (ts / ip)'.padStart(20)}`,
  );
  for (const [name, key] of phases) {
    const a = best(ts, key);
    const b = best(ip, key);
    console.log(
      `${name.padEnd(9)}${String(rate(a)).padStart(17)}${String(rate(b)).padStart(12)}${(rate(a) / rate(b)).toFixed(2).padStart(8)}${`${a.toFixed(0)} / ${b.toFixed(0)}`.padStart(20)}`,
    );
  }
  const podnet = rate(best(ts, 'addMs'));
  const ref = rate(best(ip, 'addMs'));
  console.log(
    JSON.stringify({
      bench: 'netlink',
      routes: N,
      podnet_per_s: podnet,
      ip_batch_per_s: ref,
      ratio: Number((podnet / ref).toFixed(2)),
      dump_podnet_per_s: rate(best(ts, 'dumpMs')),
      dump_ip_per_s: rate(best(ip, 'dumpMs')),
      delete_podnet_per_s: rate(best(ts, 'delMs')),
      delete_ip_batch_per_s: rate(best(ip, 'delMs')),
      delete_ratio: Number((rate(best(ts, 'delMs')) / rate(best(ip, 'delMs'))).toFixed(2)),
      rounds: ROUNDS,
    }),
  );
}

try {
  await main();
} finally {
  for (const name of [...nsNames]) spawnSync('ip', ['netns', 'del', name]);
  rmSync(`${tmp}-add`, { force: true });
  rmSync(`${tmp}-del`, { force: true });
}
