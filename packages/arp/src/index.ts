// @podnet/arp — the ARP proxy responder for the pods' gateway (169.254.1.1).
//
//   const arp = new ArpResponder({ mode: 'userspace' | 'kernel', logger, registry, netns?, followLinks? });
//   await arp.addInterface({ ifname, ifindex, podIPs, hostMac });  // idempotent; re-call to update podIPs
//   await arp.removeInterface(ifname);                              // a vanished interface is fine
//   (followLinks, default true: an interface the kernel deletes is dropped by itself, via rtnetlink)
//   arp.stats() → { replies, repliesFromCache, ignored: {reason: n}, malformed: {reason: n}, errors, interfaces }
//   await arp.close();
//
// userspace (default): an AF_PACKET socket per interface answers requests from the pod for any
// address that is not the pod's own, at once, with the host MAC (and sets proxy_arp=0 so the
// kernel does not answer as well). kernel: proxy_arp=1 and proxy_delay=0 on the interface.
// Hot path: frames are read into one buffer the packet socket reuses (reuseFrameBuffer), and
// `decidePrepared` answers from a per-interface prepared form (pod IPs as numbers, one reply frame
// rewritten in place), so an answered request allocates nothing. Each socket's reply cache (in the
// addon) repeats the replies decide made for requests seen before, without calling JS; see README.md.
// The pure parts (frame codec, `decide`) are exported for podnetctl diagnostics and tests.

export { netnsSysctl, procSysctl, type SysctlEntry, type SysctlWriter } from '@podnet/rtnetlink';
export {
  type ArpDecision,
  type ArpInterface,
  buildReply,
  DECISION_BYTES,
  decide,
  decidePrepared,
  decisionMask,
  IGNORE_REASONS,
  type IgnoreReason,
  PACKET_TYPE,
  POD_GATEWAY,
  type PreparedInterface,
  prepareInterface,
} from './decide.js';
export { ARP_ERROR_CODES, ArpError, type ArpErrorCode } from './errors.js';
export {
  ARP_FRAME_LEN,
  ARPHRD_ETHER,
  ARPOP,
  type ArpPacket,
  BROADCAST_MAC,
  type DecodeResult,
  decodeArpFrame,
  ETH_P_ARP,
  ETH_P_IP,
  encodeArpFrame,
  MALFORMED_REASONS,
  type MalformedReason,
  normalizeMac,
  ZERO_MAC,
} from './frame.js';
export {
  type ArpMode,
  ArpResponder,
  type ArpResponderOptions,
  type ArpStats,
  checkInterface,
} from './responder.js';
