// A hand-driven BGP peer on an in-memory connection: the test writes raw messages and reads what
// the speaker sends back. For inputs no real daemon would produce.

import type { Speaker } from '../speaker.js';
import { type Capability, decodeMessage, encodeMessage, type UpdateMessage } from '../wire/messages.js';
import { MemConn } from './memnet.js';

export { until } from './until.js';

export interface RawPeer {
  conn: MemConn;
  received: ReturnType<typeof decodeMessage>[];
  send(b: Buffer): void;
  announce(m: Omit<UpdateMessage, 'type'>): void;
  open(o?: { asn?: number; bgpId?: string; holdTime?: number; caps?: Capability[] }): void;
  keepalive(): void;
}

/** Connects a raw peer at `peerAddr` to speaker `s` (which must have that peer configured). */
export function rawPeer(s: Speaker, peerAddr: string, localAddr: string): RawPeer {
  const peer = new MemConn(peerAddr, localAddr);
  const ours = new MemConn(localAddr, peerAddr);
  peer.peer = ours;
  ours.peer = peer;
  const received: ReturnType<typeof decodeMessage>[] = [];
  peer.on('data', (b: Buffer) => {
    for (let off = 0; off < b.length; off += b.readUInt16BE(off + 16))
      received.push(decodeMessage(b.subarray(off)));
  });
  s.acceptConnection(ours, peerAddr);
  const send = (b: Buffer) => void peer.write(b);
  return {
    conn: peer,
    received,
    send,
    announce: (m) => send(encodeMessage({ type: 'update', ...m }, { as4: true })),
    open: (o = {}) =>
      send(
        encodeMessage({
          type: 'open',
          version: 4,
          myAs: o.asn ?? 65001,
          holdTime: o.holdTime ?? 9,
          bgpId: o.bgpId ?? peerAddr,
          capabilities: [{ type: 'four-octet-as', asn: o.asn ?? 65001 }, ...(o.caps ?? [])],
        }),
      ),
    keepalive: () => send(encodeMessage({ type: 'keepalive' })),
  };
}
