// The responder's decision, pure: one received frame + the interface it came in on → reply (with
// the frame to send), ignore (with a named reason) or malformed (counted and dropped).
import { ARPOP, type ArpPacket, decodeArpFrame, encodeArpFrame, type MalformedReason } from './frame.js';

/** Linux sll_pkttype values (linux/if_packet.h). */
export const PACKET_TYPE = { host: 0, broadcast: 1, multicast: 2, otherhost: 3, outgoing: 4 } as const;

/** The gateway address every pod's default route points at. */
export const POD_GATEWAY = '169.254.1.1';

/** One pod interface as the responder sees it (the host side of the pod's veth). */
export interface ArpInterface {
  ifname: string;
  ifindex: number;
  /** The pod's own IPv4 addresses: never answered for (so duplicate address detection works). */
  podIPs: readonly string[];
  /** The host side's MAC (ee:ee:ee:ee:ee:ee in podnet): the answer to every request. */
  hostMac: string;
}

export type IgnoreReason =
  /** The frame arrived on another interface than the one the socket serves. */
  | 'other-interface'
  /** Our own transmitted frames, which a packet socket also sees. */
  | 'outgoing'
  /** A reply (or any opcode other than request). */
  | 'not-request'
  /** Gratuitous ARP: the sender announces its own address (spa = tpa). */
  | 'gratuitous'
  /** An RFC 5227 probe (spa 0.0.0.0): the pod checks whether an address is free. */
  | 'probe'
  /** A request for one of the pod's own addresses (duplicate address detection). */
  | 'own-address'
  /** The sender address is not one of the pod's, so the request is not the pod's. */
  | 'foreign-sender';

export const IGNORE_REASONS: readonly IgnoreReason[] = [
  'other-interface',
  'outgoing',
  'not-request',
  'gratuitous',
  'probe',
  'own-address',
  'foreign-sender',
];

export type ArpDecision =
  | { type: 'reply'; frame: Buffer; request: ArpPacket }
  | { type: 'ignore'; reason: IgnoreReason; packet?: ArpPacket }
  | { type: 'malformed'; reason: MalformedReason; detail: string };

/** Builds the reply to `req`: "tpa is at hostMac", sent back to the requester. */
export function buildReply(req: ArpPacket, hostMac: string): Buffer {
  return encodeArpFrame({
    ethDst: req.sha,
    ethSrc: hostMac,
    op: ARPOP.reply,
    sha: hostMac,
    spa: req.tpa,
    tha: req.sha,
    tpa: req.spa,
  });
}

/**
 * Decides what to do with one frame received on `iface`. Answers requests from the pod for
 * 169.254.1.1 and for every other address that is not the pod's own, with the host MAC.
 */
export function decide(
  frame: Buffer,
  meta: { ifindex: number; pktType: number },
  iface: ArpInterface,
): ArpDecision {
  if (meta.ifindex !== iface.ifindex) return { type: 'ignore', reason: 'other-interface' };
  if (meta.pktType === PACKET_TYPE.outgoing) return { type: 'ignore', reason: 'outgoing' };
  const d = decodeArpFrame(frame);
  if (d.type === 'malformed') return d;
  const p = d.packet;
  if (p.op !== ARPOP.request) return { type: 'ignore', reason: 'not-request', packet: p };
  if (p.spa === '0.0.0.0') return { type: 'ignore', reason: 'probe', packet: p };
  if (p.spa === p.tpa) return { type: 'ignore', reason: 'gratuitous', packet: p };
  if (iface.podIPs.includes(p.tpa)) return { type: 'ignore', reason: 'own-address', packet: p };
  if (iface.podIPs.length > 0 && !iface.podIPs.includes(p.spa)) {
    return { type: 'ignore', reason: 'foreign-sender', packet: p };
  }
  return { type: 'reply', frame: buildReply(p, iface.hostMac), request: p };
}
