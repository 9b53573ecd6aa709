// A scale-sim route reflector: one bgp-ts Speaker listening on its own loopback address, every
// simulated node a passive route-reflector client.
// Usage: node scale-sim-rr.mjs <config.json>   { address, clusterId, clients: [address], heapSnapshotDir? }
// Prints {"event":"ready"} once listening; on the stdin line "stats":
// {"event":"stats","established","locRib","updatesOut"}; on "mem": {"event":"mem", …} with
// process.memoryUsage() (bytes: rss, heapTotal, heapUsed, external, arrayBuffers); with
// `heapSnapshotDir` in the configuration, a V8 heap snapshot written there too
// (rr-<address>.heapsnapshot; the figures are taken before it).
// Exits when stdin closes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { pino } from 'pino';
import { Speaker } from '../../packages/bgp/dist/index.js';

// The configuration file (it holds the nodes' tokens, so not on the command line).
const cfg = JSON.parse(
  process.argv[2].startsWith('{') ? process.argv[2] : readFileSync(process.argv[2], 'utf8'),
);
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const logger = pino({ level: 'error' }, pino.destination(2));
const speaker = new Speaker({
  asn: 64512,
  routerId: cfg.address,
  clusterId: cfg.clusterId,
  listen: { port: 179, address: cfg.address },
  logger,
});
for (const address of cfg.clients)
  speaker.addPeer({ address, asn: 64512, passive: true, routeReflectorClient: true, holdTime: 90 });
await speaker.start();
out({ event: 'ready', t: Date.now() });
let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
    const line = buf.slice(0, i).trim();
    buf = buf.slice(i + 1);
    if (line === 'mem') {
      const mem = process.memoryUsage(); // before the snapshot's own full GC
      if (cfg.heapSnapshotDir) writeHeapSnapshot(join(cfg.heapSnapshotDir, `rr-${cfg.address}.heapsnapshot`));
      out({ event: 'mem', ...mem });
    }
    if (line !== 'stats') continue;
    const peers = speaker.peers();
    out({
      event: 'stats',
      established: peers.filter((p) => p.state === 'established').length,
      locRib: speaker.locRibSize,
      updatesOut: peers.reduce((a, p) => a + p.updatesOut, 0),
    });
  }
});
process.stdin.on('end', async () => {
  await Promise.race([speaker.stop(), new Promise((r) => setTimeout(r, 3000))]);
  process.exit(0);
});
