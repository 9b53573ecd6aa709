// npm run bench -- policy [--pods 1000] [--policies 200] [--changes 100] [--concurrency 6]
//
// NetworkPolicy enforcement on the lab (compose.yaml's three nodes, real agents with their default
// flags, IPv4 and IPv6 pools): --pods pods, each a Pod object plus a network namespace wired by
// podnet-cni (so an address and a pn… interface), spread round robin over the nodes and over 20
// namespaces npb-00…19 (labels team=t0…t3), pod labels app=a0…a9, container port `http` 8080.
// --policies policies, policy k in npb-(k mod 20) selecting app=a((k/20) mod 10) (so each selects
// its own ~pods/200 pods and every pod is selected once), ingress from app=a((k+1) mod 10) of its
// namespace OR (team=t(k mod 4) namespaces AND app=a(k mod 3)), on TCP 80 and the named port http.
// Probe pods in namespace npb-probe: a source `src` on the first node and a target `t-<node>`
// (role=target, a UDP echo server on port 80) on every node; bench/lib/np-probe.mjs in src's
// namespace sends a datagram to every target every 4 ms from a fresh socket.
// Measured:
// (a) create: t0 = just before POSTing a policy selecting the targets (ingress only from
//     access=yes pods, which src is not), until the first of 3 consecutive datagrams dropped on
//     EVERY target (one per node); then the delete of that policy until allowed again. --changes each.
// (b) label: with a policy allowing the targets' ingress only from access=yes, t0 = just before
//     PATCHing src's labels, until allowed (access=yes) / dropped (label removed) on every target.
// (c) each agent's RSS (VmRSS) before the pods, with the pods, with the policies:
//     rss_bytes_per_remote_pod = (with pods - before) / (pods not on that node), mean over agents
//     (it includes what the agent keeps for its own pods and V8's heap growth: an upper bound, and
//     noise at small pod counts); bytes_per_remote_pod = the heap the agent's own pod store code
//     (projectPod into a Map, packages/agent/src/__fixtures__/policy-memory.mjs) keeps per pod for
//     20,000 realistic Pods, after full GCs, run here in a child process.
// (a, b) also the agents' side: from the API call to the kernel transaction done on every node,
//     from each agent's 'netfilter table applied' log line (pino time, ms), and of it the slowest
//     agent's sync (the line's `ms`: the transaction and its checks, not the watch or the pass).
// (d) rules in `inet podnet` on every node (nft -j list), against the pod-policy pairs
//     (selected pods × policies selecting them) and the node's own np-forward rules.
// Reference, same run: `nft -f` of node 1's final `inet podnet` (nft list table) into a fresh
// namespace, median of 3. ratio = p99_ms / ref_nft_f_ms.
// Last line: {"bench":"policy","pods":…,"policies":…,"p99_ms":…,"bytes_per_remote_pod":…,"rules":…,…}
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Lab, table } from '../packages/lab/dist/index.js';
import { jsonLines, vmRss } from './lib/proc.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '1000' },
    policies: { type: 'string', default: '200' },
    changes: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '6' },
  },
});
const int = (name, lo, hi) => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < lo || n > hi) {
    console.error(`policy: --${name} ${values[name]}: expected an integer ${lo}..${hi}`);
    process.exit(2);
  }
  return n;
};
const nPods = int('pods', 0, 5000);
const nPolicies = int('policies', 0, 2000);
const nChanges = int('changes', 1, 1000);
const concurrency = int('concurrency', 1, 32);

const NAMESPACES = 20;
const APPS = 10;
const work = `/tmp/podnet-bench-policy-${process.pid}`;
mkdirSync(work, { recursive: true });
const prefix = `pnb${process.pid}-`;
const refNs = `${prefix}nftref`;
const lab = new Lab({
  repoRoot: root,
  composeFile: join(root, 'compose.yaml'),
  stateDir: join(work, 'state'),
  prefix,
  podsPerNode: 0,
  log: (l) => process.stderr.write(`[lab] ${l}\n`),
});
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (l) => process.stderr.write(`[bench] ${l}\n`);
const ns = (i) => `npb-${String(i).padStart(2, '0')}`;

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : Number.NaN;
};
const r1 = (x) => Math.round(x * 10) / 10;

async function pool(items, n, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

function rulesOf(nsName) {
  const out = execFileSync('ip', ['netns', 'exec', nsName, 'nft', '-j', 'list', 'table', 'inet', 'podnet'], {
    maxBuffer: 1 << 28,
  }).toString();
  const items = JSON.parse(out).nftables ?? [];
  let all = 0;
  let np = 0;
  for (const it of items)
    if (it.rule) {
      all++;
      if (it.rule.chain.startsWith('np-')) np++;
    }
  return { all, np };
}

const agentPids = () => lab.nodes.map((n) => lab.processes.find((p) => p.service === n.name)?.pid);
const rssAll = () => agentPids().map((pid) => (pid ? vmRss(pid) : Number.NaN));

function policySpec(k) {
  return {
    podSelector: { matchLabels: { app: `a${Math.floor(k / NAMESPACES) % APPS}` } },
    policyTypes: ['Ingress'],
    ingress: [
      {
        from: [
          { podSelector: { matchLabels: { app: `a${(k + 1) % APPS}` } } },
          {
            namespaceSelector: { matchLabels: { team: `t${k % 4}` } },
            podSelector: { matchLabels: { app: `a${k % 3}` } },
          },
        ],
        ports: [{ protocol: 'TCP', port: 80 }, { port: 'http' }],
      },
    ],
  };
}

const policyPath = (n) => `/apis/networking.k8s.io/v1/namespaces/${n}/networkpolicies`;

let exitCode = 0;
let summary;
let probe;
// Interrupted: take the lab down before leaving (its namespaces and agents are ours).
for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, () => {
    console.error(`policy: ${sig}, taking the lab down`);
    if (probe?.pid && probe.exitCode === null) process.kill(probe.pid);
    lab
      .down({ quiet: true })
      .catch(() => {})
      .finally(() => {
        rmSync(work, { recursive: true, force: true });
        process.exit(130);
      });
  });
try {
  await lab.up();
  const nodes = lab.nodes.map((n) => n.name);
  const kube = lab.kube;
  await sleep(3000);
  const rssBefore = rssAll();

  // Namespaces, the probe pods, their echo servers and the prober.
  for (let i = 0; i < NAMESPACES; i++)
    await kube.apply('/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns(i), labels: { team: `t${i % 4}` } },
    });
  await kube.apply('/api/v1/namespaces', {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'npb-probe' },
  });
  const src = await lab.addPod(nodes[0], 'src', { namespace: 'npb-probe', labels: { role: 'source' } });
  const targets = [];
  for (const node of nodes) {
    const t = await lab.addPod(node, `t-${node}`, { namespace: 'npb-probe', labels: { role: 'target' } });
    targets.push(t);
    lab.spawnDetached(
      `echo-npb-${node}`,
      t.ns,
      [
        process.execPath,
        join(root, 'packages', 'lab', 'dist', 'echo-cli.js'),
        'serve',
        '--port',
        '80',
        '--lifetime-s',
        '7200',
      ],
      {},
      join(work, 'state', 'echo', `npb-${node}.log`),
    );
  }
  const targetIps = targets.map((t) => t.ipv4);
  probe = spawn(
    'ip',
    ['netns', 'exec', src.ns, process.execPath, join(root, 'bench', 'lib', 'np-probe.mjs')],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const waiting = new Map();
  jsonLines(probe, (o) => {
    const w = waiting.get(o.id);
    if (!w) return;
    w.results.set(o.target, o);
    if (w.results.size === w.n) {
      waiting.delete(o.id);
      w.resolve(w.results);
    }
  });
  let watchId = 0;
  /** The start of every measured change, by kind, for the agents' side of it (agentSide below). */
  const starts = { create: [], delete: [], label: [] };
  /** Starts watching every target for `want`, runs `act`, resolves with the ms from act's start until the last target flipped. */
  async function measure(want, act, kind) {
    const id = ++watchId;
    const done = new Promise((res) =>
      waiting.set(id, { n: targetIps.length, results: new Map(), resolve: res }),
    );
    probe.stdin.write(`${JSON.stringify({ id, want, port: 80, targets: targetIps })}\n`);
    const t0 = now();
    starts[kind]?.push(t0);
    await act();
    const results = await done;
    let last = 0;
    for (const r of results.values()) {
      if (r.timeout)
        throw new Error(`target ${r.target} never became ${want === 'drop' ? 'dropped' : 'allowed'}`);
      last = Math.max(last, r.at - t0);
    }
    return last;
  }
  // Everything open before any policy.
  await measure('allow', async () => {});

  // The pods.
  const started = now();
  const pods = Array.from({ length: nPods }, (_, i) => ({
    node: nodes[i % nodes.length],
    namespace: ns(i % NAMESPACES),
    name: `p${i}`,
    app: `a${Math.floor(i / NAMESPACES) % APPS}`,
  }));
  let made = 0;
  await pool(pods, concurrency, async (p) => {
    await lab.addPod(p.node, p.name, {
      namespace: p.namespace,
      labels: { app: p.app },
      ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
    });
    if (++made % 100 === 0) log(`${made}/${nPods} pods (${((now() - started) / 1000).toFixed(0)} s)`);
  });
  log(`${nPods} pods in ${((now() - started) / 1000).toFixed(0)} s`);
  await sleep(10_000);
  const rssPods = rssAll();

  // The policies.
  for (let k = 0; k < nPolicies; k++)
    await kube.apply(policyPath(ns(k % NAMESPACES)), {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: `np${k}` },
      spec: policySpec(k),
    });
  await sleep(10_000);
  const rssPolicies = rssAll();
  const pairsPerNode = nodes.map((n) => {
    let pairs = 0;
    for (let k = 0; k < nPolicies; k++) {
      const app = `a${Math.floor(k / NAMESPACES) % APPS}`;
      pairs += pods.filter((p) => p.node === n && p.namespace === ns(k % NAMESPACES) && p.app === app).length;
    }
    return pairs;
  });

  // (a) create → enforced on every node; delete → open again.
  const gate = (name) => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name },
    spec: {
      podSelector: { matchLabels: { role: 'target' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { access: 'yes' } } }] }],
    },
  });
  const creates = [];
  const deletes = [];
  for (let i = 0; i < nChanges; i++) {
    creates.push(
      await measure('drop', () => kube.apply(policyPath('npb-probe'), gate(`deny-${i}`)), 'create'),
    );
    deletes.push(await measure('allow', () => kube.delete(`${policyPath('npb-probe')}/deny-${i}`), 'delete'));
    if ((i + 1) % 20 === 0) log(`create/delete ${i + 1}/${nChanges}`);
  }

  // (b) src's label opens and closes every target.
  await measure('drop', () => kube.apply(policyPath('npb-probe'), gate('gate')));
  const labelOpen = [];
  const labelClose = [];
  const srcPath = '/api/v1/namespaces/npb-probe/pods/src';
  const patch = (labels) =>
    kube.request('PATCH', srcPath, { metadata: { labels } }, 'application/merge-patch+json');
  for (let i = 0; i < nChanges; i++) {
    const list = i % 2 === 0 ? labelOpen : labelClose;
    list.push(
      await measure(
        i % 2 === 0 ? 'allow' : 'drop',
        () => patch(i % 2 === 0 ? { role: 'source', access: 'yes' } : { role: 'source', access: null }),
        'label',
      ),
    );
  }
  const labels = [...labelOpen, ...labelClose];

  // The agents' side of each change: from its start to the first 'netfilter table applied' line
  // (pino's `time`, ms) after it in every agent's log, i.e. the kernel transaction done on every
  // node (the line follows the transaction; after a patch also the read-back of its rules).
  const applied = lab.nodes.map((n) => {
    const log = lab.processes.find((p) => p.service === n.name)?.log;
    const out = [];
    for (const line of (log ? readFileSync(log, 'utf8') : '').split('\n'))
      if (line.includes('"netfilter table applied"')) {
        const o = JSON.parse(line);
        out.push({ time: o.time, mode: o.mode, via: o.via, ms: o.ms, phases: o.phases });
      }
    return out;
  });
  // `sync`: the longest of the agents' own syncs of the change (the line's `ms`: the transaction
  // and its checks, without the watch delivery and the pass before it).
  const agentSide = (kind, what = 'applied') =>
    starts[kind].map((t0) => {
      let last = 0;
      for (const lines of applied) {
        const first = lines.find((l) => l.time >= Math.floor(t0));
        if (!first) return Number.NaN;
        last = Math.max(last, what === 'sync' ? (first.ms ?? Number.NaN) : first.time - t0);
      }
      return last;
    });
  const syncCreates = agentSide('create', 'sync').filter(Number.isFinite);
  // Where the slowest agent's sync of each create went (NftTable's phases), per phase over creates.
  const createPhases = {};
  for (const t0 of starts.create) {
    let slowest;
    for (const lines of applied) {
      const first = lines.find((l) => l.time >= Math.floor(t0));
      if (first?.phases && (!slowest || first.ms > slowest.ms)) slowest = first;
    }
    for (const [k, v] of Object.entries(slowest?.phases ?? {})) {
      createPhases[k] ??= [];
      createPhases[k].push(v);
    }
  }
  const syncLabels = agentSide('label', 'sync').filter(Number.isFinite);
  // A change some agent logged no transaction for (none seen after it) is left out, and counted.
  const agentAll = [...agentSide('create'), ...agentSide('label')];
  const agentCreates = agentSide('create').filter(Number.isFinite);
  const agentLabels = agentSide('label').filter(Number.isFinite);
  const agentMissing = agentAll.filter((x) => !Number.isFinite(x)).length;
  const modes = {};
  // By mode and by the way it went to the kernel (`patch/netlink`, `patch/nft`, …).
  for (const lines of applied)
    for (const l of lines) {
      const k = l.via ? `${l.mode}/${l.via}` : l.mode;
      modes[k] = (modes[k] ?? 0) + 1;
    }

  // (d) rules, and the reference.
  const rules = lab.nodes.map((n) => rulesOf(n.ns));
  const text = execFileSync(
    'ip',
    ['netns', 'exec', lab.nodes[0].ns, 'nft', 'list', 'table', 'inet', 'podnet'],
    {
      maxBuffer: 1 << 28,
    },
  ).toString();
  const file = join(work, 'ruleset.nft');
  writeFileSync(file, text);
  const refs = [];
  for (let i = 0; i < 3; i++) {
    execFileSync('ip', ['netns', 'add', refNs]);
    try {
      const t = now();
      execFileSync('ip', ['netns', 'exec', refNs, 'nft', '-f', file]);
      refs.push(now() - t);
    } finally {
      execFileSync('ip', ['netns', 'del', refNs]);
    }
  }
  const ref = pct(refs, 50);

  const remote = nodes.map((n) => pods.filter((p) => p.node !== n).length + targets.length);
  const perRemote = nodes.map((_, i) => (rssPods[i] - rssBefore[i]) / remote[i]);
  const bytesPerRemote = perRemote.reduce((a, b) => a + b, 0) / perRemote.length;
  const heapPerPod = JSON.parse(
    execFileSync(process.execPath, [
      '--expose-gc',
      join(root, 'packages', 'agent', 'src', '__fixtures__', 'policy-memory.mjs'),
      '20000',
    ])
      .toString()
      .trim(),
  ).bytes_per_remote_pod;
  const mb = (b) => (b / 2 ** 20).toFixed(1);
  const totalRules = rules.reduce((a, r) => a + r.all, 0);
  const npRules = rules.reduce((a, r) => a + r.np, 0);
  const pairs = pairsPerNode.reduce((a, b) => a + b, 0);
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(
    `\npolicy: ${nPods} pods on ${nodes.length} nodes, ${nPolicies} policies, ${nChanges} changes each; load ${load}`,
  );
  console.log(
    table(
      ['measure', 'p50', 'p99', 'max'],
      [
        [
          '(a) policy create → dropped on every node (ms)',
          ...[50, 99, 100].map((p) => pct(creates, p).toFixed(1)),
        ],
        [
          '    policy delete → allowed on every node (ms)',
          ...[50, 99, 100].map((p) => pct(deletes, p).toFixed(1)),
        ],
        [
          '    of which the agents: create → applied on every node (ms)',
          ...[50, 99, 100].map((p) => pct(agentCreates, p).toFixed(1)),
        ],
        [
          '      of which the slowest sync of the change (ms)',
          ...[50, 99, 100].map((p) => pct(syncCreates, p).toFixed(1)),
        ],
        ...Object.entries(createPhases).map(([k, v]) => [
          `        its ${k} (ms)`,
          ...[50, 99, 100].map((p) => pct(v, p).toFixed(1)),
        ]),
        [
          '(b) pod label change → flipped on every node (ms)',
          ...[50, 99, 100].map((p) => pct(labels, p).toFixed(1)),
        ],
        [
          '    of which the agents: label → applied on every node (ms)',
          ...[50, 99, 100].map((p) => pct(agentLabels, p).toFixed(1)),
        ],
        [
          '      of which the slowest sync of the change (ms)',
          ...[50, 99, 100].map((p) => pct(syncLabels, p).toFixed(1)),
        ],
        ['reference: nft -f of the final table (ms)', ref.toFixed(1), '', Math.max(...refs).toFixed(1)],
        ['heap per remote pod in the pod store (bytes)', String(heapPerPod), '', ''],
      ],
    ),
  );
  console.log(
    table(
      [
        'node',
        'RSS before (MB)',
        'with pods',
        'with policies',
        'RSS per remote pod (B)',
        'rules',
        'np- rules',
        'pod×policy pairs',
      ],
      nodes.map((n, i) => [
        n,
        mb(rssBefore[i]),
        mb(rssPods[i]),
        mb(rssPolicies[i]),
        perRemote[i].toFixed(0),
        String(rules[i].all),
        String(rules[i].np),
        String(pairsPerNode[i]),
      ]),
    ),
  );
  summary = JSON.stringify({
    bench: 'policy',
    nodes: nodes.length,
    pods: nPods,
    policies: nPolicies,
    changes: nChanges,
    p50_ms: r1(pct(creates, 50)),
    p99_ms: r1(pct(creates, 99)),
    delete_p99_ms: r1(pct(deletes, 99)),
    label_p50_ms: r1(pct(labels, 50)),
    label_p99_ms: r1(pct(labels, 99)),
    agent_p99_ms: r1(pct(agentCreates, 99)),
    label_agent_p99_ms: r1(pct(agentLabels, 99)),
    sync_p99_ms: r1(pct(syncCreates, 99)),
    label_sync_p99_ms: r1(pct(syncLabels, 99)),
    sync_phase_p50_ms: Object.fromEntries(Object.entries(createPhases).map(([k, v]) => [k, r1(pct(v, 50))])),
    agent_missing: agentMissing,
    transactions: modes,
    bytes_per_remote_pod: heapPerPod,
    rss_bytes_per_remote_pod: Math.round(bytesPerRemote),
    rss_policies_delta_mb: r1(
      rssPolicies.reduce((a, b, i) => a + (b - rssPods[i]), 0) / nodes.length / 2 ** 20,
    ),
    rules: totalRules,
    np_rules: npRules,
    pod_policy_pairs: pairs,
    ref_nft_f_ms: r1(ref),
    ratio: Math.round((pct(creates, 99) / ref) * 1000) / 1000,
    load,
  });
} catch (err) {
  console.error(`policy: ${err.stack ?? err.message}`);
  exitCode = 1;
} finally {
  if (probe) {
    probe.stdin.end(`${JSON.stringify({ quit: true })}\n`);
    await sleep(200);
    if (probe.exitCode === null && probe.pid) process.kill(probe.pid);
  }
  try {
    execFileSync('ip', ['netns', 'del', refNs], { stdio: 'ignore' });
  } catch {
    /* not there */
  }
  await lab.down({ quiet: true }).catch(() => {});
  rmSync(work, { recursive: true, force: true });
}
// The JSON line comes last, after the lab's teardown messages.
if (summary) console.log(summary);
process.exit(exitCode);
