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

// Byte-level cache: the responder sees the same few addresses over and over.
const ipCache = new Map<string, number>();

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
 * An interface made ready for the hot path, once per addInterface: pod addresses as numbers, the
 * host MAC as bytes, and one reply frame (with its decision) reused for every answer.
 */
export interface PreparedInterface {
  readonly iface: ArpInterface;
  readonly podIPs: readonly number[];
  readonly hostMac: Buffer;
  /** The reply frame (ETH_ZLEN bytes, padding zero), rewritten for every answer. */
  readonly reply: Buffer;
  readonly replyDecision: { readonly type: 'reply'; readonly frame: Buffer };
}

export function prepareInterface(iface: ArpInterface): PreparedInterface {
  const reply = Buffer.alloc(ETH_ZLEN);
  // Buffer.alloc, not Buffer.from: a small Buffer.from is a view of Node's 64 KiB pool, and this
  // one lives as long as the interface, keeping the whole pool block.
  const hostMac = Buffer.alloc(6);
  hostMac.write(iface.hostMac.replace(/:/g, ''), 'hex');
  // The constant part of every reply: Ethernet source, ethertype…op = reply, sha.
  hostMac.copy(reply, 6);
  REPLY_HEADER.copy(reply, 12);
  hostMac.copy(reply, 22);
  return {
    iface,
    podIPs: iface.podIPs.map(ipv4Number),
    hostMac,
    reply,
    replyDecision: Object.freeze({ type: 'reply' as const, frame: reply }),
  };
}

/** One shared, frozen decision per ignore reason: ignoring a frame allocates nothing. */
const IGNORE = Object.freeze(
  Object.fromEntries(IGNORE_REASONS.map((reason) => [reason, Object.freeze({ type: 'ignore', reason })])),
) as Readonly<Record<IgnoreReason, ArpDecision>>;

/**
 * The hot path of `decide`, on a prepared interface. Allocates nothing for a reply or an ignored
 * frame: a reply's frame is `p.reply`, valid until the next call for the same interface (send it
 * before deciding the next frame).
 */
export function decidePrepared(
  frame: Buffer,
  meta: { ifindex: number; pktType: number },
  p: PreparedInterface,
): ArpDecision {
  if (meta.ifindex !== p.iface.ifindex) return IGNORE['other-interface'];
  if (meta.pktType === PACKET_TYPE.outgoing) return IGNORE.outgoing;
  const bad = checkArpFrame(frame);
  if (bad) return { type: 'malformed', ...bad };
  if (frame.readUInt16BE(20) !== ARPOP.request) return IGNORE['not-request'];
  const spa = frame.readUInt32BE(28);
  const tpa = frame.readUInt32BE(38);
  if (spa === 0) return IGNORE.probe;
  if (spa === tpa) return IGNORE.gratuitous;
  const ips = p.podIPs;
  let fromPod = ips.length === 0;
  for (let i = 0; i < ips.length; i++) {
    const n = ips[i];
    if (n === tpa) return IGNORE['own-address'];
    if (n === spa) fromPod = true;
  }
  if (!fromPod) return IGNORE['foreign-sender'];
  // The reply: to the requester, "tpa is at hostMac" (RFC 826 swaps sender and target). The
  // constant bytes are in place already (prepareInterface).
  // Byte stores rather than Buffer#copy: 20 bytes are cheaper than four calls into C++.
  const reply = p.reply;
  for (let i = 0; i < 6; i++) {
    const b = frame[22 + i]!; // the requester's hardware address (sha)
    reply[i] = b; // Ethernet destination
    reply[32 + i] = b; // tha
  }
  for (let i = 0; i < 4; i++) {
    reply[28 + i] = frame[38 + i]!; // spa = the address asked for
    reply[38 + i] = frame[28 + i]!; // tpa = the requester's spa
  }
  return p.replyDecision;
}

/**
 * The bytes of a frame that `decidePrepared` reads, as [start, end) ranges: the Ethernet source
 * (not read, but kept in the key: a pod's requests carry its own MAC there), ethertype, htype,
 * ptype, hlen, plen, op, sha, spa, and tpa. Not read: the Ethernet destination (broadcast or the
 * host MAC), tha (zero, or whatever the pod last knew) and padding. Besides these bytes a decision
 * depends only on the frame being at least ARP_FRAME_LEN long (the last range ends there), the
 * receiving ifindex and packet type, and the prepared interface. Two frames equal on these bytes,
 * with the same meta and interface, get the same decision and the same reply bytes (a property
 * test holds this to `decidePrepared`): that is what makes a decision cacheable by its key.
 */
export const DECISION_BYTES: readonly (readonly [number, number])[] = [
  [6, 32],
  [38, ARP_FRAME_LEN],
];

/** DECISION_BYTES as a byte mask over the first ARP_FRAME_LEN bytes (0xff where read); a new Buffer. */
export function decisionMask(): Buffer {
  const mask = Buffer.alloc(ARP_FRAME_LEN);
  for (const [start, end] of DECISION_BYTES) mask.fill(0xff, start, end);
  return mask;
}

/**
 * Decides what to do with one frame received on `iface`. Answers requests from the pod for
 * 169.254.1.1 and for every other address that is not the pod's own, with the host MAC.
 * Works on the bytes (no per-field strings). A reply carries a frame of its own; the responder
 * uses `decidePrepared`, which reuses one per interface.
 */
export function decide(
  frame: Buffer,
  meta: { ifindex: number; pktType: number },
  iface: ArpInterface,
): ArpDecision {
  return decidePrepared(frame, meta, prepareInterface(iface));
}
