/**
 * @podnet/bfd: Bidirectional Forwarding Detection (RFC 5880), single hop (RFC 5881), asynchronous
 * mode, no authentication. A standalone library: bgp-ts never imports it; the agent connects the two.
 * The periodic packets go out from the native addon's sending thread, so a busy event loop delays
 * none of them.
 *
 * ```ts
 * const bfd = new Bfd({ logger });
 * bfd.start();                                           // UDP 3784, IPv4 and IPv6
 * bfd.addPeer({ peer: '10.0.0.254', timers: { minTx: 300, minRx: 300, multiplier: 3 } });
 * bfd.on('down', (c: StateChange) => ...);               // an Up session went Down: c.diag, c.remoteCpi
 * bfd.on('state', (c: StateChange) => ...);              // every change
 * bfd.updatePeer('10.0.0.254', { minTx: 100 });          // Poll Sequence, no flap
 * bfd.sessions();                                        // status for podnetctl
 * ```
 */
export {
  Bfd,
  BfdConfigError,
  type BfdCounters,
  type BfdInstance,
  type BfdOptions,
  type BfdPeerConfig,
} from './bfd.js';
export {
  type BfdAction,
  type BfdEvent,
  type BfdTransition,
  detectionTime,
  initialVars,
  jittered,
  outgoing,
  type SessionVars,
  transition,
  txInterval,
} from './fsm.js';
export {
  BFD_PORT,
  BFD_TTL,
  type BfdPacket,
  DIAG_NAMES,
  Diag,
  decodePacket,
  encodePacket,
  STATE_NAMES,
  State,
  type StateName,
} from './packet.js';
export {
  BfdSession,
  type BfdTimers,
  type Clock,
  DEFAULT_TIMERS,
  type Logger,
  type PeriodicTransmit,
  type SessionStatus,
  type StateChange,
  TimerTransmit,
} from './session.js';
