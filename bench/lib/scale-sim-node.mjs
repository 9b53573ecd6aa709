// A scale-sim worker: hosts several simulated nodes in one process. Each node is the agent's own
// datastore/informer stack (KubeDatastore over a KubeClient with the node's own bearer token) and
// the agent's compute() on every change, driving a real bgp-ts Speaker (no kernel routes, no ARP)
// that announces the node's blocks to the route reflectors named by the BGPPeer objects.
// Usage: node scale-sim-node.mjs <config.json>
//   { server, nodes: [{ name, address, token, block }], expect, podCidr, bgpOnly?: { rrs }, agentClient? }
// With bgpOnly (the bench's --bgp-only) a node is only its speaker: peers with the reflectors and
// announces the given block, without the API server or the agent's code.
// Prints JSON lines: {"event":"ready"} once every node's stack is started, then every 500 ms
// {"event":"progress","synced","peered","established","converged","routes","errors","t"} where converged
// counts nodes whose Loc-RIB holds `expect` blocks of other nodes. Exits when stdin closes.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { toPeerConfig } from '../../packages/agent/dist/adapters/bgp.js';
import { KubeDatastore } from '../../packages/agent/dist/adapters/datastore.js';
import { compute } from '../../packages/agent/dist/index.js';
import { kubeconfigYaml } from '../../packages/apiserver/dist/kubeconfig.js';
import { Speaker } from '../../packages/bgp/dist/index.js';
import { KubeClient } from '../../packages/k8s/dist/index.js';

// The configuration file (it holds the nodes' tokens, so not on the command line).
const inline = process.argv[2].startsWith('{');
const cfg = JSON.parse(inline ? process.argv[2] : readFileSync(process.argv[2], 'utf8'));
// With `agentClient` (the single-node process), each node's kubeconfig is a file read as the agent
// reads its own (`--kubeconfig`: the light transport, without client-node's index), so the process
// holds what an agent holds. The workers keep client-node's KubeConfig: with the light transport, 50
// nodes to a process synced more slowly (one run: 242 s to converge against 140 s).
const kubeconfigDir = !cfg.agentClient
  ? undefined
  : inline
    ? mkdtempSync(join(tmpdir(), 'podnet-scale-sim-'))
    : `${process.argv[2]}.kubeconfigs`;
if (kubeconfigDir) {
  mkdirSync(kubeconfigDir, { recursive: true });
  process.on('exit', () => rmSync(kubeconfigDir, { recursive: true, force: true }));
}
const { KubeConfig } = kubeconfigDir ? {} : await import('@kubernetes/client-node');
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const logger = pino({ level: 'error' }, pino.destination(2));
const [poolNet, poolLen] = cfg.podCidr.split('/');
const poolBase = poolNet.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const poolMask = 2 ** (32 - Number(poolLen));
const inPool = (prefix) => {
  const n = prefix
    .split('/')[0]
    .split('.')
    .reduce((a, o) => a * 256 + Number(o), 0);
  return n - poolBase >= 0 && n - poolBase < poolMask;
};

class SimNode {
  constructor({ name, address, token, block }) {
    this.name = name;
    this.address = address;
    this.block = block;
    this.synced = false;
    // The same objects whether or not they are used (--bgp-only), so its RSS is comparable.
    if (kubeconfigDir) {
      const kubeconfigPath = join(kubeconfigDir, name);
      writeFileSync(kubeconfigPath, kubeconfigYaml({ server: cfg.server, token }), { mode: 0o600 });
      this.client = new KubeClient({ kubeconfigPath });
    } else {
      const kc = new KubeConfig();
      kc.loadFromString(kubeconfigYaml({ server: cfg.server, token }));
      this.client = new KubeClient({ kubeConfig: kc });
    }
    this.ds = new KubeDatastore(this.client, { nodeName: name, namespace: 'kube-system', logger });
    // Like the agent's speaker, but without a listener: the route reflectors are passive.
    this.speaker = new Speaker({ asn: 64512, routerId: address, logger });
    this.peers = new Set();
    this.announced = new Map(); // prefix → next hop
    this.routes = 0; // other nodes' blocks in the Loc-RIB
    this.own = new Set();
    this.timer = undefined;
    this.speaker.on('bestpath', (c) => {
      if (this.own.has(c.prefix) || !inPool(c.prefix)) return;
      if (c.type === 'added') this.routes++;
      else if (c.type === 'removed') this.routes--;
    });
  }

  async start() {
    await this.speaker.start();
    if (!cfg.bgpOnly) return this.ds.start(() => this.schedule());
    this.synced = true;
    for (const address of cfg.bgpOnly.rrs) {
      this.peers.add(address);
      this.speaker.addPeer({
        address,
        asn: 64512,
        sourceAddress: this.address,
        holdTime: 90,
        connectRetry: 2,
      });
    }
    this.speaker.originate(this.block, { nextHop: this.address });
    this.own.add(this.block);
  }

  /** The agent reconciles on a short debounce; so does the simulation (100 ms). */
  schedule() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reconcile();
    }, 100);
  }

  reconcile() {
    if (!this.ds.synced()) return;
    const snap = this.ds.snapshot();
    const desired = compute({ nodeName: this.name, ...snap, rib: [] });
    for (const p of desired.peers) {
      const key = `${p.address}:${p.port}`;
      if (this.peers.has(key)) continue;
      this.peers.add(key);
      this.speaker.addPeer(toPeerConfig({ ...p, localAddress: p.localAddress ?? this.address }));
    }
    const want = new Map(desired.advertisements.map((a) => [a.prefix, a.nextHop]));
    for (const [prefix, nextHop] of want)
      if (this.announced.get(prefix) !== nextHop) {
        this.speaker.originate(prefix, { nextHop });
        this.own.add(prefix);
      }
    for (const prefix of this.announced.keys())
      if (!want.has(prefix)) {
        this.speaker.withdraw(prefix);
        this.own.delete(prefix);
      }
    this.announced = want;
  }

  established() {
    return this.speaker.peers().filter((p) => p.state === 'established').length;
  }

  async stop() {
    clearTimeout(this.timer);
    await this.speaker.stop().catch(() => {});
    if (!cfg.bgpOnly) await this.ds.stop().catch(() => {});
    await this.client.close().catch(() => {});
  }
}

const nodes = cfg.nodes.map((n) => new SimNode(n));
// Started a few at a time so that a worker's initial LISTs do not all land in the same instant.
for (let i = 0; i < nodes.length; i += 10) await Promise.all(nodes.slice(i, i + 10).map((n) => n.start()));
out({ event: 'ready', t: Date.now() });
const progress = setInterval(() => {
  let synced = 0;
  let peered = 0;
  let established = 0;
  let converged = 0;
  let routes = 0;
  // Why the sessions that are not up went down last, counted (diagnostics for slow convergence).
  const errors = {};
  for (const n of nodes) {
    for (const p of n.speaker.peers())
      if (p.state !== 'established') {
        const k = `${p.state}${p.lastError ? `: ${p.lastError}` : ''}`;
        errors[k] = (errors[k] ?? 0) + 1;
      }
    if (n.synced || n.ds.synced()) synced++;
    if (n.peers.size) peered++;
    if (n.established() >= n.peers.size && n.peers.size) established++;
    if (n.routes >= cfg.expect) converged++;
    routes += n.routes;
  }
  out({ event: 'progress', synced, peered, established, converged, routes, errors, t: Date.now() });
}, 500);
process.stdin.resume();
process.stdin.on('end', async () => {
  clearInterval(progress);
  await Promise.race([Promise.all(nodes.map((n) => n.stop())), new Promise((r) => setTimeout(r, 5000))]);
  process.exit(0);
});
