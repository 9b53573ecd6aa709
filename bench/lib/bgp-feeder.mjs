// The bgp-ingest feeder: a minimal BGP speaker that connects to a receiver, and once the session
// is Established writes a pre-encoded stream of UPDATEs (+ End-of-RIB) as fast as TCP takes it.
// Usage (inside a namespace): node bgp-feeder.mjs <feedFile> <localAddr> <remoteAddr> <asn> <peerAsn> <routerId> [warmFile]
// Prints JSON lines: {"event":"established","t":ms} then {"event":"sent","t":ms}. Exits when stdin closes.
// With a warmFile, that stream goes first ({"event":"warm-sent"}) and the feed waits for "go" on stdin.
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { wire } from '../../packages/bgp/dist/index.js';

const [feedFile, localAddress, host, asn, peerAsn, routerId, warmFile] = process.argv.slice(2);
const feed = readFileSync(feedFile);
const warm = warmFile ? readFileSync(warmFile) : undefined;
const sendFeed = () => sock.write(feed, () => out({ event: 'sent', t: Date.now() }));
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const sock = createConnection({ host, port: 179, localAddress });
sock.setNoDelay(true);
const framer = new wire.Framer();
let state = 'open-sent';
let ka;
sock.on('connect', () => {
  sock.write(
    wire.encodeMessage({
      type: 'open',
      version: 4,
      myAs: Number(asn),
      holdTime: 90,
      bgpId: routerId,
      capabilities: [
        { type: 'multiprotocol', afi: 1, safi: 1 },
        { type: 'route-refresh' },
        { type: 'four-octet-as', asn: Number(asn) },
      ],
    }),
  );
});
sock.on('data', (chunk) => {
  framer.push(chunk, (f, t) => {
    if (t === wire.MessageType.OPEN) {
      const m = wire.decodeMessage(f);
      if (
        m.type === 'open' &&
        m.capabilities.some((c) => c.type === 'four-octet-as' && c.asn !== Number(peerAsn))
      )
        out({ event: 'error', error: 'unexpected peer AS' });
      sock.write(wire.encodeMessage({ type: 'keepalive' }));
    } else if (t === wire.MessageType.KEEPALIVE && state === 'open-sent') {
      state = 'established';
      out({ event: 'established', t: Date.now() });
      ka = setInterval(() => sock.write(wire.encodeMessage({ type: 'keepalive' })), 20_000);
      if (warm) sock.write(warm, () => out({ event: 'warm-sent', t: Date.now() }));
      else sendFeed();
    } else if (t === wire.MessageType.NOTIFICATION) {
      const m = wire.decodeMessage(f);
      out({ event: 'error', error: `NOTIFICATION ${wire.notificationName(m.code, m.subcode)}` });
    }
  });
});
sock.on('error', (e) => out({ event: 'error', error: e.message }));
sock.on('close', () => {
  clearInterval(ka);
  out({ event: 'closed' });
});
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  if (warm && d.includes('go')) sendFeed();
});
process.stdin.on('end', () => {
  clearInterval(ka);
  sock.destroy();
  process.exit(0);
});
