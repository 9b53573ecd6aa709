// RFC 5881 §5: single-hop BFD packets leave with TTL / hop limit 255, and one that arrives with any
// other value is dropped. Real sockets in namespaces; the received TTL comes from recvmsg.
import { openUdp } from '@podnet/native';
import { cleanupStale, type Netns, NetnsSet, vethPair, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bfd } from './bfd.js';
import { BFD_PORT, decodePacket, encodePacket, State } from './packet.js';

const lab = new NetnsSet();
let a: Netns;
let b: Netns;

beforeAll(async () => {
  await cleanupStale();
  a = await lab.create('bfdttla');
  b = await lab.create('bfdttlb');
  await vethPair(a, 'v0', b, 'v1');
  await a.ip('addr', 'add', '10.78.0.1/24', 'dev', 'v0');
  await b.ip('addr', 'add', '10.78.0.2/24', 'dev', 'v1');
  await a.ip('addr', 'add', 'fd78::1/64', 'dev', 'v0', 'nodad');
  await b.ip('addr', 'add', 'fd78::2/64', 'dev', 'v1', 'nodad');
});
afterAll(() => lab.destroy());

const down = encodePacket({
  diag: 0,
  state: State.DOWN,
  poll: false,
  final: false,
  cpi: false,
  demand: false,
  detectMult: 3,
  myDiscr: 4242,
  yourDiscr: 0,
  desiredMinTx: 1_000_000,
  requiredMinRx: 300_000,
  requiredMinEchoRx: 0,
});

describe.each([
  ['IPv4', 4 as const, '10.78.0.1', '10.78.0.2'],
  ['IPv6', 6 as const, 'fd78::1', 'fd78::2'],
])('BFD over %s', (_name, family, ours, theirs) => {
  it('drops a packet that arrives with TTL 254 and takes the same packet at TTL 255', async () => {
    const bfd = new Bfd({ netns: a.path });
    bfd.start();
    // What our side sends: TTL 255, from a source port of 49152-65535, to 3784.
    const sniff = openUdp({ family, port: BFD_PORT, ttl: 255, netns: b.path });
    const seen: { ttl: number; port: number; state: number }[] = [];
    sniff.onDatagram((buf, meta) => {
      const d = decodePacket(buf);
      if (d.ok) seen.push({ ttl: meta.ttl, port: meta.port, state: d.packet.state });
    });
    try {
      bfd.addPeer({ peer: theirs });
      await waitFor('a packet from our session', () => seen.length > 0);
      expect(seen[0]!.ttl).toBe(255);
      expect(seen[0]!.port).toBeGreaterThanOrEqual(49152);

      const low = openUdp({ family, port: 0, ttl: 254, netns: b.path });
      low.send(down, ours, BFD_PORT);
      await waitFor('the TTL 254 packet to be counted', () => bfd.counters.ttlDropped === 1);
      expect(bfd.session(theirs)?.state).toBe('down');
      low.close();

      const good = openUdp({ family, port: 0, ttl: 255, netns: b.path });
      good.send(down, ours, BFD_PORT);
      await waitFor('the session to move to Init', () => bfd.session(theirs)?.state === 'init');
      expect(bfd.counters.ttlDropped).toBe(1);
      good.close();
    } finally {
      sniff.close();
      bfd.stop();
    }
  });
});
