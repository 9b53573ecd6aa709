// A tiny UDP peer for the netfilter namespace tests: the receiver reports the source address it
// sees, so translation is observed rather than assumed.
//   node udp-peer.mjs listen <port>            one JSON line per datagram: {"tag":…,"from":…,"port":…}
//   node udp-peer.mjs send <host> <port> <tag> sends <tag> three times (a first packet can wait on ARP/ND)
import dgram from 'node:dgram';

const [mode, a, b, c] = process.argv.slice(2);

if (mode === 'listen') {
  // One dual-stack socket: IPv4 peers show as ::ffff:a.b.c.d, printed as a.b.c.d.
  const s = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  s.on('message', (msg, rinfo) => {
    const from = rinfo.address.startsWith('::ffff:') ? rinfo.address.slice(7) : rinfo.address;
    process.stdout.write(`${JSON.stringify({ tag: msg.toString(), from, port: rinfo.port })}\n`);
  });
  s.bind(Number(a), '::', () => process.stdout.write(`${JSON.stringify({ listening: Number(a) })}\n`));
} else if (mode === 'send') {
  const host = a;
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  let n = 0;
  const once = () =>
    s.send(c, Number(b), host, () => {
      if (++n === 3) s.close();
      else setTimeout(once, 50);
    });
  once();
} else {
  process.stderr.write('usage: udp-peer.mjs listen <port> | send <host> <port> <tag>\n');
  process.exit(2);
}
