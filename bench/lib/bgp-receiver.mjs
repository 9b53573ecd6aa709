// The bgp-ingest receiver for bgp-ts: one Speaker listening for the feeder. Run with --expose-gc.
// Usage: node --expose-gc bgp-receiver.mjs <routerId> <asn> <feederAddr> <feederAsn>
// Prints {"event":"ready","rss":...} once listening, then {"event":"eor","t":ms,"rss":...,"locRib":n}
// when the feeder's End-of-RIB has been processed (every UPDATE before it is in the Loc-RIB).
import { Speaker } from '../../packages/bgp/dist/index.js';

const [routerId, asn, feeder, feederAsn] = process.argv.slice(2);
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const speaker = new Speaker({ asn: Number(asn), routerId, listen: { port: 179 } });
speaker.addPeer({ address: feeder, asn: Number(feederAsn), passive: true, holdTime: 90 });
speaker.on('peer', (e) => {
  if (e.to === 'established') out({ event: 'established', t: Date.now() });
});
speaker.on('end-of-rib', () => {
  const t = Date.now();
  globalThis.gc?.();
  const m = process.memoryUsage();
  out({
    event: 'eor',
    t,
    rss: m.rss,
    heapUsed: m.heapUsed,
    locRib: speaker.locRibSize,
    sets: speaker.attributeSets,
  });
});
await speaker.start();
globalThis.gc?.();
const m = process.memoryUsage();
out({ event: 'ready', rss: m.rss, heapUsed: m.heapUsed });
process.stdin.resume();
process.stdin.on('end', async () => {
  await speaker.stop();
  process.exit(0);
});
