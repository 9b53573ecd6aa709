// Benchmark: podnet's nf_tables layer (@podnet/nft) against `nft -f`, same ruleset, same kernel,
// same run, in namespaces of its own. `npm run bench -- nft [--pods 5000] [--pools 50]
// [--changes 1000] [--slow-changes 50] [--runs 3] [--layouts flat,shared,perpod]`. Prints a table,
// then one JSON object as its last line.
//
// The table (`inet podnet`) is what the NAT/isolation model of issue 13 renders, plus the per-pod
// state NetworkPolicy (issue 14) will add, every pod treated as local (the worst case for one node):
// - NAT and isolation, from the pools: interval sets pools4/6, nat4/6, natexcl4/6, isolated4/6,
//   cluster4/6 (50 pools: an IPv4 /22 and an IPv6 /112 each; every 10th pool isolated, the others
//   natOutgoing; 2 exclusions; cluster = pools + 10 node addresses + the service range); chains
//   `postrouting` (nat, srcnat: masquerade nat4/nat6 to outside pools and exclusions) and
//   `forward` (filter: drop isolated traffic outside the cluster, then the policy checks).
// - Policy, per pod: its addresses in `pods4`/`pods6`, ingress allowed only from 4 peers (IPv4 and
//   IPv6), egress tcp/25 dropped: 12 elements per pod in every layout. The layouts
//   (bench/lib/nft-model.mjs) differ in where that state lives, which is what a pod change costs:
//   - `flat` (measured first, the JSON's main keys): elements only, in sets with concatenated keys
//     checked by fixed rules of `forward`: `oifname . ip saddr @in-allow4 accept` (and ip6),
//     `oifname @in-isolated drop`, `iifname . th dport @out-deny drop`. 2 chains.
//   - `shared`: ifname verdict maps `to_pod`/`from_pod` whose elements jump to one of two fixed
//     chains (np-in, np-out) holding the same concatenated checks. 4 chains.
//   - `perpod`: the verdict maps jump to two chains per pod (p<i>-in, p<i>-out) with two address
//     sets per pod: what packages/policy renders today. 10,002 chains.
// Measured, per layout:
// - from empty: NftTable.sync(model) (validate, render, `nft -f -`, read the rules back for drift)
//   against `nft -f <file>` of the very text sync applied, each in a fresh namespace, alternating
//   which goes first; medians of --runs (the first layout; 1 run for the others).
//   ratio_full = sync / nft -f.
// - single-pod changes: --changes transactions, each deleting or re-adding one pod's 12 elements,
//   acknowledged by the kernel, through NftTable.update() (the fast path over netlink); for the
//   first layout also through NftTable.sync() of the whole model and through `nft -f -` (a process
//   per change), --slow-changes each. single_change_p99_ms is update()'s p99 (first layout);
//   <layout>_single_change_p99_ms the others'.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NftTable, nftCli, renderElements, validate } from '../packages/nft/dist/index.js';
import { cleanupStale, deleteNetns, NetnsSet } from '../packages/testkit/dist/index.js';
import { LAYOUTS, nftModel } from './lib/nft-model.mjs';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const PODS = arg('pods', 5000);
const POOLS = arg('pools', 50);
const CHANGES = arg('changes', 1000);
const RUNS = arg('runs', 3);
// The comparison paths (sync of the whole model, an nft process per change) cost 100-1000× more
// per change; they get fewer samples.
const SLOW = arg('slow-changes', 50);
// --layouts flat,perpod: which layouts of the table (bench/lib/nft-model.mjs), the first in full.
const li = process.argv.indexOf('--layouts');
const LAYOUTS_RUN = li > 0 ? process.argv[li + 1].split(',') : LAYOUTS;
const lab = new NetnsSet();
const file = join(tmpdir(), `podnet-bench-nft-${process.pid}.nft`);

const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

const nftIn = (ns, args, input) =>
  execFileSync('ip', ['netns', 'exec', ns.name, 'nft', ...args], { input, maxBuffer: 512 << 20 }).toString();

/** Counts of what the kernel holds in podnet's table, read by nft itself. */
function census(ns) {
  const items = JSON.parse(nftIn(ns, ['-j', 'list', 'table', 'inet', 'podnet'])).nftables;
  const elems = (name) => items.find((x) => (x.set ?? x.map)?.name === name);
  return {
    chains: items.filter((x) => x.chain).length,
    rules: items.filter((x) => x.rule).length,
    sets: items.filter((x) => x.set || x.map).length,
    toPod: elems('to_pod')?.map.elem?.length ?? 0,
    pods4: elems('pods4').set.elem?.length ?? 0,
  };
}

/** The executor with the time spent in each of its calls added up (where sync's time goes). */
function timed(exec) {
  const spent = {};
  const wrap = (name, f) =>
    f &&
    (async (...a) => {
      const t0 = process.hrtime.bigint();
      try {
        return await f(...a);
      } finally {
        const key = name === 'list' && a[1]?.terse ? 'list -t' : name;
        spent[key] = (spent[key] ?? 0) + ms(t0);
      }
    });
  return {
    spent,
    exec: {
      apply: wrap('apply', exec.apply),
      list: wrap('list', exec.list),
      applyElements: wrap('applyElements', exec.applyElements),
      ruleDigests: wrap('ruleDigests', exec.ruleDigests),
      generation: wrap('generation', exec.generation),
      close: exec.close,
    },
  };
}

async function fromEmptySync(m) {
  const ns = await lab.create('benchnft');
  const { exec, spent } = timed(nftCli({ netns: ns.name }));
  const nft = new NftTable({ exec });
  try {
    const t0 = process.hrtime.bigint();
    const r = await nft.sync(m);
    const took = ms(t0);
    const kernelSide = Object.values(spent).reduce((a, b) => a + b, 0);
    const parts = Object.entries(spent).map(([k, v]) => `${k} ${v.toFixed(0)}`);
    console.log(`    sync breakdown (ms): ${parts.join(', ')}, in-process ${(took - kernelSide).toFixed(0)}`);
    for (const k of Object.keys(spent)) delete spent[k];
    return { took, script: r.script, ns, nft };
  } catch (err) {
    nft.close();
    throw err;
  }
}

async function fromEmptyFile(script) {
  const ns = await lab.create('benchnftf');
  writeFileSync(file, script);
  const t0 = process.hrtime.bigint();
  nftIn(ns, ['-f', file]);
  const took = ms(t0);
  return { took, ns };
}

/** From empty (`runs` times each way) then single-pod changes, for one layout of the table. */
async function measure(layout, runs, slow) {
  const { model, podUpdate } = nftModel(PODS, POOLS, layout);
  const m = model();
  const expectChains = m.chains.length;
  const elements =
    m.sets.reduce((n, s) => n + s.elements.length, 0) + m.maps.reduce((n, s) => n + s.elements.length, 0);
  console.log(
    `layout ${layout}: ${PODS} pods in ${POOLS} pools, ${expectChains} chains, ${m.sets.length + m.maps.length} sets and maps, ${elements} elements`,
  );
  const ok = (c) =>
    c.chains === expectChains && c.pods4 === PODS && c.toPod === (layout === 'flat' ? 0 : PODS);
  const syncRuns = [];
  const fileRuns = [];
  let kept;
  for (let r = 0; r < runs; r++) {
    const order = r % 2 === 0 ? ['sync', 'file'] : ['file', 'sync'];
    for (const which of order) {
      if (which === 'sync') {
        const s = await fromEmptySync(m);
        syncRuns.push(s.took);
        const c = census(s.ns);
        if (!ok(c)) throw new Error(`sync left ${JSON.stringify(c)}`);
        if (!kept) kept = s;
        else {
          s.nft.close();
          await deleteNetns(s.ns);
        }
      } else {
        if (!kept) {
          // The file is the text sync applied; render it once from a sync (not timed).
          kept = await fromEmptySync(m);
        }
        const f = await fromEmptyFile(kept.script);
        fileRuns.push(f.took);
        const c = census(f.ns);
        if (!ok(c)) throw new Error(`nft -f left ${JSON.stringify(c)}`);
        await deleteNetns(f.ns);
      }
      console.log(
        `  from empty run ${r + 1} ${which}: ${(which === 'sync' ? syncRuns : fileRuns).at(-1).toFixed(0)} ms`,
      );
    }
  }

  // Single-pod changes on the kept namespace (its table holds the whole model).
  const { ns, nft } = kept;
  const before = census(ns);
  const handles = nftIn(ns, ['-j', 'list', 'chain', 'inet', 'podnet', 'forward']);
  const viaUpdate = [];
  for (let k = 0; k < CHANGES; k++) {
    const i = ((k >> 1) * 37) % PODS;
    const t0 = process.hrtime.bigint();
    const r = await nft.update(podUpdate(i, k % 2 === 0 ? 'delete' : 'add'));
    viaUpdate.push(ms(t0));
    if (r.via !== 'netlink' || r.mode !== 'elements') throw new Error(`update went ${r.mode}/${r.via}`);
  }
  const viaSync = [];
  for (let k = 0; k < Math.min(CHANGES, slow); k++) {
    const i = ((k >> 1) * 41) % PODS;
    const mk = model(k % 2 === 0 ? new Set([i]) : new Set());
    const t0 = process.hrtime.bigint();
    const r = await nft.sync(mk);
    viaSync.push(ms(t0));
    if (r.via !== 'netlink' || r.mode !== 'elements') throw new Error(`sync went ${r.mode}/${r.via}`);
  }
  const exec = nftCli({ netns: ns.name, netlink: false });
  const viaNft = [];
  const valid = validate(m);
  for (let k = 0; k < Math.min(CHANGES, slow); k++) {
    const i = ((k >> 1) * 43) % PODS;
    const del = k % 2 === 0;
    const elems = podUpdate(i, 'add').map((u) => {
      const text = (u.add ?? []).map((e) =>
        typeof e === 'string' ? e : `${e.key} : jump ${e.verdict.chain}`,
      );
      return { set: u.set ?? u.map, add: del ? [] : text, delete: del ? text : [] };
    });
    const script = renderElements(valid, elems);
    const t0 = process.hrtime.bigint();
    await exec.apply(script);
    viaNft.push(ms(t0));
  }
  const after = census(ns);
  if (JSON.stringify(after) !== JSON.stringify(before)) {
    throw new Error(
      `changes did not return to the start: ${JSON.stringify(before)} → ${JSON.stringify(after)}`,
    );
  }
  if (nftIn(ns, ['-j', 'list', 'chain', 'inet', 'podnet', 'forward']) !== handles) {
    throw new Error('a rule of the forward chain changed during element changes');
  }
  const drift = await nft.drift();
  if (drift.structural.length || drift.elements.length)
    throw new Error(`drift after the run: ${JSON.stringify(drift)}`);
  const counters = nft.counters;
  nft.close();
  await deleteNetns(ns);
  console.log(`  counters: ${JSON.stringify(counters)}`);
  return { layout, chains: expectChains, elements, syncRuns, fileRuns, viaUpdate, viaSync, viaNft };
}

async function main() {
  await cleanupStale();
  const results = [];
  for (const layout of LAYOUTS_RUN) {
    // The first layout is the one measured in full; the others get one from-empty run each way
    // and only the update() changes (they are there to compare a change's cost).
    const first = results.length === 0;
    results.push(await measure(layout, first ? RUNS : 1, first ? SLOW : 0));
  }
  await lab.destroy();
  rmSync(file, { force: true });

  const row = (name, xs) =>
    xs.length === 0
      ? ''
      : `${name.padEnd(44)}${pct(xs, 50).toFixed(3).padStart(10)}${pct(xs, 99).toFixed(3).padStart(10)}${Math.max(
          ...xs,
        )
          .toFixed(3)
          .padStart(10)}${String(xs.length).padStart(8)}\n`;
  console.log(`\nfrom empty (median of runs, alternating order, fresh namespace each), ms`);
  for (const r of results) {
    const a = median(r.syncRuns);
    const b = median(r.fileRuns);
    console.log(
      `  ${`${r.layout} (${r.chains} chains, ${r.elements} elements)`.padEnd(42)} sync ${a.toFixed(0).padStart(7)}   nft -f ${b.toFixed(0).padStart(7)}   ratio ${(a / b).toFixed(3)}   runs ${r.syncRuns.map((x) => x.toFixed(0)).join(', ')} / ${r.fileRuns.map((x) => x.toFixed(0)).join(', ')}`,
    );
  }
  console.log(`\nsingle-pod change (12 elements), acknowledged by the kernel, ms`);
  let out = `${''.padEnd(44)}${'p50'.padStart(10)}${'p99'.padStart(10)}${'max'.padStart(10)}${'n'.padStart(8)}\n`;
  for (const r of results) {
    out += row(`${r.layout}: NftTable.update (netlink)`, r.viaUpdate);
    out += row(`${r.layout}: NftTable.sync whole model`, r.viaSync);
    out += row(`${r.layout}: nft -f - (a process per change)`, r.viaNft);
  }
  process.stdout.write(out);
  const [p] = results;
  const json = {
    bench: 'nft',
    pods: PODS,
    pools: POOLS,
    layout: p.layout,
    chains: p.chains,
    full_sync_ms: +median(p.syncRuns).toFixed(1),
    full_nft_file_ms: +median(p.fileRuns).toFixed(1),
    ratio_full: +(median(p.syncRuns) / median(p.fileRuns)).toFixed(3),
    single_change_p50_ms: +pct(p.viaUpdate, 50).toFixed(3),
    single_change_p99_ms: +pct(p.viaUpdate, 99).toFixed(3),
  };
  if (p.viaSync.length) {
    json.single_change_sync_p50_ms = +pct(p.viaSync, 50).toFixed(3);
    json.single_change_sync_p99_ms = +pct(p.viaSync, 99).toFixed(3);
    json.single_change_nft_p50_ms = +pct(p.viaNft, 50).toFixed(3);
    json.single_change_nft_p99_ms = +pct(p.viaNft, 99).toFixed(3);
  }
  for (const r of results.slice(1)) {
    json[`${r.layout}_chains`] = r.chains;
    json[`${r.layout}_ratio_full`] = +(median(r.syncRuns) / median(r.fileRuns)).toFixed(3);
    json[`${r.layout}_single_change_p50_ms`] = +pct(r.viaUpdate, 50).toFixed(3);
    json[`${r.layout}_single_change_p99_ms`] = +pct(r.viaUpdate, 99).toFixed(3);
  }
  console.log(JSON.stringify(json));
}

main().catch(async (err) => {
  console.error(`bench nft: ${err.stack ?? err}`);
  await lab.destroy();
  rmSync(file, { force: true });
  process.exit(1);
});
