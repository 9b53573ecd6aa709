// A failover-bench "node": a bgp-ts Speaker with BFD wired to it exactly as the agent wires it
// (packages/agent's BfdLink over @podnet/bfd), run inside the node's namespace.
// Usage: node bfd-node.mjs '<json config>'
//   { routerId, asn, originate: [prefix], watch: [prefix], peers: [{ address, asn, passive, holdTime,
//     keepalive, bfd?: { minTx, minRx, multiplier } }] }
// Prints JSON lines: {"event":"ready"}; {"event":"main-gc","at","ms"} for a main-thread GC over
// 50 ms; {"event":"route","prefix","present","t"} when a watched prefix enters or leaves the
// Loc-RIB; {"event":"bfd","peer","from","to","diag","t"} on every BFD change;
// {"event":"eor","t","locRib"} on End-of-RIB; and {"event":"stats",...} on the stdin line "stats"
// (BFD transmit intervals of this node since the last "stats", and the longest any periodic packet
// went out after its due time).
import { PerformanceObserver } from 'node:perf_hooks';
import { pino } from 'pino';
import { BfdLink } from '../../packages/agent/dist/adapters/bfd.js';
import { Bfd } from '../../packages/bfd/dist/index.js';
import { Speaker } from '../../packages/bgp/dist/index.js';

const cfg = JSON.parse(process.argv[2]);
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const logger = pino({ level: 'warn' }, pino.destination(2));
// cfg.mainThread: periodic BFD packets from timers on this event loop (for comparison); default:
// from the native addon's sending thread, as the agent sends them. This main thread's garbage
// collections over 50 ms are reported, stamped with the wall clock.
new PerformanceObserver((list) => {
  for (const e of list.getEntries())
    if (e.duration > 50)
      out({
        event: 'main-gc',
        at: Math.round(performance.timeOrigin + e.startTime + e.duration),
        ms: Math.round(e.duration),
        kind: e.detail?.kind,
      });
}).observe({ entryTypes: ['gc'] });
const bfd = new Bfd({
  logger,
  transmit: cfg.mainThread ? 'loop' : 'thread',
  measureTx: true,
  priority: cfg.mainThread ? undefined : (cfg.priority ?? undefined),
});
const speaker = new Speaker({ asn: cfg.asn, routerId: cfg.routerId, listen: { port: 179 }, logger });
const link = new BfdLink(() => speaker, { logger, bfd });
bfd.on('state', (c) =>
  out({ event: 'bfd', peer: c.peer, from: c.from, to: c.to, diag: c.diag, t: Date.now() }),
);
const watch = new Set(cfg.watch ?? []);
speaker.on('bestpath', (c) => {
  if (watch.has(c.prefix))
    out({ event: 'route', prefix: c.prefix, present: c.type !== 'removed', t: Date.now() });
});
speaker.on('end-of-rib', () => out({ event: 'eor', t: Date.now(), locRib: speaker.locRibSize }));
await speaker.start();
for (const p of cfg.peers) {
  speaker.addPeer({
    address: p.address,
    asn: p.asn,
    passive: p.passive,
    holdTime: p.holdTime,
    keepalive: p.keepalive,
    connectRetry: 1,
    // Like the agent towards its peers: only the node's own blocks go out (the ingested table is
    // not passed on to the fabric).
    export: {
      prefixList: (cfg.originate ?? []).map((prefix) => ({ prefix, action: 'accept' })),
      defaultAction: 'reject',
    },
  });
  // The agent's DesiredPeer, as far as BfdLink reads it.
  link.sync({
    key: `${p.address}:179`,
    address: p.address,
    port: 179,
    ...(p.bfd ? { bfd: { ...p.bfd, controlPlaneCheck: false } } : {}),
  });
}
for (const prefix of cfg.originate ?? []) speaker.originate(prefix, { nextHop: cfg.routerId });
out({ event: 'ready' });
let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
    const line = buf.slice(0, i).trim();
    buf = buf.slice(i + 1);
    if (line === 'stats') {
      const { gapsMs, maxLateMs } = bfd.drainTxGaps();
      const g = gapsMs.sort((a, b) => a - b);
      const q = (f) => (g.length ? g[Math.min(g.length - 1, Math.floor(f * g.length))] : 0);
      out({
        event: 'stats',
        n: g.length,
        min: g[0] ?? 0,
        p50: q(0.5),
        p99: q(0.99),
        max: g.at(-1) ?? 0,
        lateMax: maxLateMs,
        counters: bfd.counters,
      });
    }
  }
});
process.stdin.on('end', async () => {
  link.stop();
  await speaker.stop();
  process.exit(0);
});
