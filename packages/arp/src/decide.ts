// The responder's decision, pure: one received frame + the interface it came in on → reply (with
// the frame to send), ignore (with a named reason) or malformed (counted and dropped).
import {
  ARP_FRAME_LEN,
  ARPOP,
  type ArpPacket,
  checkArpFrame,
  ETH_ZLEN,
  encodeArpFrame,
  type MalformedReason,
} from './frame.js';

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
  | { type: 'reply'; frame: Buffer }
  | { type: 'ignore'; reason: IgnoreReason }
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

// Byte-level caches: the responder sees the same few MACs and addresses over and over.
const macCache = new Map<string, Buffer>();
const ipCache = new Map<string, number>();

function macBytes(mac: string): Buffer {
  let b = macCache.get(mac);
  if (!b) {
    b = Buffer.from(mac.replace(/:/g, ''), 'hex');
    if (macCache.size > 4096) macCache.clear();
    macCache.set(mac, b);
  }
  return b;
}

function ipv4Number(ip: string): number {
  let n = ipCache.get(ip);
  if (n === undefined) {
    n = ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
    if (ipCache.size > 4096) ipCache.clear();
    ipCache.set(ip, n);
  }
  return n;
}

const REPLY_HEADER = Buffer.from([0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02]);

/**
 * Decides what to do with one frame received on `iface`. Answers requests from the pod for
 * 169.254.1.1 and for every other address that is not the pod's own, with the host MAC.
 * Works on the bytes (no per-field strings): this runs for every ARP frame a pod sends.
 */
export function decide(
  frame: Buffer,
  meta: { ifindex: number; pktType: number },
  iface: ArpInterface,
): ArpDecision {
  if (meta.ifindex !== iface.ifindex) return { type: 'ignore', reason: 'other-interface' };
  if (meta.pktType === PACKET_TYPE.outgoing) return { type: 'ignore', reason: 'outgoing' };
  const bad = checkArpFrame(frame);
  if (bad) return { type: 'malformed', ...bad };
  if (frame.readUInt16BE(20) !== ARPOP.request) return { type: 'ignore', reason: 'not-request' };
  const spa = frame.readUInt32BE(28);
  const tpa = frame.readUInt32BE(38);
  if (spa === 0) return { type: 'ignore', reason: 'probe' };
  if (spa === tpa) return { type: 'ignore', reason: 'gratuitous' };
  let fromPod = iface.podIPs.length === 0;
  for (const ip of iface.podIPs) {
    const n = ipv4Number(ip);
    if (n === tpa) return { type: 'ignore', reason: 'own-address' };
    if (n === spa) fromPod = true;
  }
  if (!fromPod) return { type: 'ignore', reason: 'foreign-sender' };
  // The reply: to the requester, "tpa is at hostMac" (RFC 826 swaps sender and target).
  const host = macBytes(iface.hostMac);
  const reply = Buffer.alloc(ETH_ZLEN);
  frame.copy(reply, 0, 22, 28); // Ethernet destination: the requester's hardware address
  host.copy(reply, 6); // Ethernet source
  REPLY_HEADER.copy(reply, 12); // ethertype, htype, ptype, hlen, plen, op = reply
  host.copy(reply, 22); // sha
  frame.copy(reply, 28, 38, 42); // spa = the address asked for
  frame.copy(reply, 32, 22, ARP_FRAME_LEN - 10); // tha = the requester's sha
  frame.copy(reply, 38, 28, 32); // tpa = the requester's spa
  return { type: 'reply', frame: reply };
}
