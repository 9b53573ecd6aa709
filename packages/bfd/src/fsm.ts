// The BFD session state machine (RFC 5880 §6.2, §6.8) as one pure transition function:
// `(session, event) → { session, actions, reason }`. No clock and no socket: the driver
// (session.ts) keeps time, arms the transmit and detection timers from `txInterval` and
// `detectionTime`, and sends what the actions say.
import { type BfdPacket, Diag, State, type StateCode } from './packet.js';

/** While the session is not Up, packets go out no faster than once a second (RFC 5880 §6.8.3). */
export const SLOW_TX_US = 1_000_000;

/** The state variables of RFC 5880 §6.8.1 (times in microseconds). */
export interface SessionVars {
  state: StateCode;
  remoteState: StateCode;
  localDiscr: number;
  remoteDiscr: number;
  localDiag: number;
  /** What the operator configured. */
  desiredMinTx: number;
  requiredMinRx: number;
  detectMult: number;
  /** Values in force for timing: they differ from the configured ones during a Poll Sequence. */
  activeMinTx: number;
  activeMinRx: number;
  remoteMinRx: number;
  remoteMinTx: number;
  remoteDetectMult: number;
  /** The remote's Control Plane Independent bit, as last received. */
  remoteCpi: boolean;
  /** A Poll Sequence is running: packets carry P until one with F comes back. */
  polling: boolean;
}

export type BfdEvent =
  | { type: 'packet'; packet: BfdPacket }
  | { type: 'detection-timeout' }
  | { type: 'admin-down' }
  | { type: 'admin-up' }
  /** New timers from configuration; a running session switches with a Poll Sequence. */
  | { type: 'set-timers'; desiredMinTx: number; requiredMinRx: number; detectMult: number }
  /**
   * Take over the session that this system's previous process ran with the peer, as the peer's Up
   * packet names it (its Your Discriminator is our old one): see BfdSession's `resume`. Only from
   * Down; the new timers go out in a Poll Sequence.
   */
  | { type: 'resume'; packet: BfdPacket };

export type BfdAction =
  /** Send a Control packet now, outside the periodic schedule (a Final answers a Poll). */
  | { type: 'send-final' }
  /** The state changed: the driver reschedules transmission and detection. */
  | { type: 'state-changed'; from: StateCode; to: StateCode }
  /** Timers changed: recompute the transmit interval and detection time. */
  | { type: 'timers-changed' };

export interface BfdTransition {
  session: SessionVars;
  reason: string;
  actions: BfdAction[];
}

export function initialVars(opts: {
  localDiscr: number;
  desiredMinTx: number;
  requiredMinRx: number;
  detectMult: number;
  adminDown?: boolean;
}): SessionVars {
  return {
    state: opts.adminDown ? State.ADMIN_DOWN : State.DOWN,
    remoteState: State.DOWN,
    localDiscr: opts.localDiscr,
    remoteDiscr: 0,
    localDiag: opts.adminDown ? Diag.ADMINISTRATIVELY_DOWN : Diag.NONE,
    desiredMinTx: opts.desiredMinTx,
    requiredMinRx: opts.requiredMinRx,
    detectMult: opts.detectMult,
    activeMinTx: Math.max(opts.desiredMinTx, SLOW_TX_US),
    activeMinRx: opts.requiredMinRx,
    remoteMinRx: 1,
    remoteMinTx: 0,
    remoteDetectMult: 0,
    remoteCpi: false,
    polling: false,
  };
}

/** The Desired Min TX Interval to advertise and use in this state (§6.8.3: at least 1 s unless Up). */
function operationalTx(s: SessionVars, state: StateCode): number {
  return state === State.UP ? s.desiredMinTx : Math.max(s.desiredMinTx, SLOW_TX_US);
}

/** Enters a new state; leaving Up slows transmission down at once, entering Up starts a Poll to speed up. */
function enter(s: SessionVars, to: StateCode, diag: number, actions: BfdAction[]): SessionVars {
  const from = s.state;
  let next: SessionVars = { ...s, state: to, localDiag: diag };
  if (to === State.UP) {
    // The advertised Desired Min TX drops from 1 s to the configured value: a change of timers,
    // which the remote learns through a Poll Sequence (§6.8.3).
    const tx = operationalTx(next, to);
    if (tx !== next.activeMinTx) {
      next = { ...next, polling: true, activeMinTx: Math.min(tx, next.activeMinTx) };
    }
  } else {
    next = { ...next, activeMinTx: operationalTx(next, to), activeMinRx: next.requiredMinRx, polling: false };
  }
  actions.push({ type: 'state-changed', from, to });
  return next;
}

/** RFC 5880 §6.8.6 from "If the Your Discriminator field is nonzero…" on: the packet already passed decodePacket. */
function onPacket(s: SessionVars, p: BfdPacket): BfdTransition {
  const actions: BfdAction[] = [];
  let n: SessionVars = {
    ...s,
    remoteDiscr: p.myDiscr,
    remoteState: p.state,
    remoteMinRx: p.requiredMinRx,
    remoteMinTx: p.desiredMinTx,
    remoteDetectMult: p.detectMult,
    remoteCpi: p.cpi,
  };
  const timersMoved =
    s.remoteMinRx !== p.requiredMinRx ||
    s.remoteMinTx !== p.desiredMinTx ||
    s.remoteDetectMult !== p.detectMult;
  let reason = 'packet';
  if (p.final && s.polling) {
    // The Poll Sequence is over: the new intervals take effect (§6.5).
    n = { ...n, polling: false, activeMinTx: operationalTx(n, n.state), activeMinRx: n.requiredMinRx };
    actions.push({ type: 'timers-changed' });
    reason = 'poll-complete';
  } else if (timersMoved) actions.push({ type: 'timers-changed' });
  if (s.state === State.ADMIN_DOWN) return { session: n, reason: 'admin-down', actions };
  if (p.state === State.ADMIN_DOWN) {
    if (s.state !== State.DOWN) {
      n = enter(n, State.DOWN, Diag.NEIGHBOR_SIGNALED_SESSION_DOWN, actions);
      reason = 'neighbor-admin-down';
    }
  } else if (s.state === State.DOWN) {
    if (p.state === State.DOWN) {
      n = enter(n, State.INIT, Diag.NONE, actions);
      reason = 'neighbor-down-seen';
    } else if (p.state === State.INIT) {
      n = enter(n, State.UP, Diag.NONE, actions);
      reason = 'neighbor-init-seen';
    }
  } else if (s.state === State.INIT) {
    if (p.state === State.INIT || p.state === State.UP) {
      n = enter(n, State.UP, Diag.NONE, actions);
      reason = 'neighbor-up-seen';
    }
  } else if (s.state === State.UP && p.state === State.DOWN) {
    n = enter(n, State.DOWN, Diag.NEIGHBOR_SIGNALED_SESSION_DOWN, actions);
    reason = 'neighbor-signaled-down';
  }
  if (p.poll) actions.push({ type: 'send-final' });
  return { session: n, reason, actions };
}

export function transition(s: SessionVars, ev: BfdEvent): BfdTransition {
  switch (ev.type) {
    case 'packet':
      return onPacket(s, ev.packet);
    case 'detection-timeout': {
      // §6.8.4: only Init and Up time out; the remote discriminator is forgotten.
      if (s.state !== State.INIT && s.state !== State.UP)
        return { session: s, reason: 'ignored', actions: [] };
      const actions: BfdAction[] = [];
      const n = enter(
        { ...s, remoteDiscr: 0, remoteState: State.DOWN },
        State.DOWN,
        Diag.CONTROL_DETECTION_TIME_EXPIRED,
        actions,
      );
      return { session: n, reason: 'detection-time-expired', actions };
    }
    case 'resume': {
      const p = ev.packet;
      if (s.state !== State.DOWN || p.state !== State.UP || p.yourDiscr === 0)
        return { session: s, reason: 'ignored', actions: [] };
      // The peer still holds the session Up with the timers our previous process advertised last
      // (a long Desired Min TX before a planned restart): ours differ, so a Poll Sequence runs.
      const n: SessionVars = {
        ...s,
        localDiscr: p.yourDiscr,
        remoteDiscr: p.myDiscr,
        remoteState: p.state,
        remoteMinRx: p.requiredMinRx,
        remoteMinTx: p.desiredMinTx,
        remoteDetectMult: p.detectMult,
        remoteCpi: p.cpi,
      };
      const actions: BfdAction[] = [];
      const up = enter(n, State.UP, Diag.NONE, actions);
      return {
        session: { ...up, polling: true, activeMinTx: s.desiredMinTx },
        reason: 'resumed',
        actions: p.poll ? [...actions, { type: 'send-final' }] : actions,
      };
    }
    case 'admin-down': {
      if (s.state === State.ADMIN_DOWN) return { session: s, reason: 'ignored', actions: [] };
      const actions: BfdAction[] = [];
      return {
        session: enter(s, State.ADMIN_DOWN, Diag.ADMINISTRATIVELY_DOWN, actions),
        reason: 'admin-down',
        actions,
      };
    }
    case 'admin-up': {
      if (s.state !== State.ADMIN_DOWN) return { session: s, reason: 'ignored', actions: [] };
      const actions: BfdAction[] = [];
      return { session: enter(s, State.DOWN, Diag.NONE, actions), reason: 'admin-up', actions };
    }
    case 'set-timers': {
      const n: SessionVars = {
        ...s,
        desiredMinTx: ev.desiredMinTx,
        requiredMinRx: ev.requiredMinRx,
        detectMult: ev.detectMult,
      };
      if (s.state !== State.UP) {
        // Nothing to protect: the new values are in force at once (and go out in the next packet).
        return {
          session: { ...n, activeMinTx: operationalTx(n, n.state), activeMinRx: n.requiredMinRx },
          reason: 'timers-set',
          actions: [{ type: 'timers-changed' }],
        };
      }
      // §6.8.3: a larger Desired Min TX waits for the Poll Sequence to end before it is used; a
      // smaller Required Min RX waits too (the remote may still send at the old pace). Changes the
      // other way take effect at once.
      return {
        session: {
          ...n,
          polling: true,
          activeMinTx: Math.min(s.activeMinTx, n.desiredMinTx),
          activeMinRx: Math.max(s.activeMinRx, n.requiredMinRx),
        },
        reason: 'timers-set-poll',
        actions: [{ type: 'timers-changed' }],
      };
    }
  }
}

/**
 * The periodic transmit interval in microseconds before jitter (§6.8.7), or 0 when periodic
 * packets must not be sent (the remote asked for none with Required Min RX 0).
 */
export function txInterval(s: SessionVars): number {
  if (s.remoteMinRx === 0) return 0;
  return Math.max(s.activeMinTx, s.remoteMinRx);
}

/** The next transmission delay with the jitter of §6.8.7: 75–100% of the interval (75–90% with multiplier 1). */
export function jittered(intervalUs: number, detectMult: number, random: () => number): number {
  const cut = detectMult === 1 ? 0.1 + 0.15 * random() : 0.25 * random();
  return intervalUs * (1 - cut);
}

/** Detection time in microseconds, asynchronous mode (§6.8.4): remote multiplier × agreed interval. */
export function detectionTime(s: SessionVars): number {
  return s.remoteDetectMult * Math.max(s.activeMinRx, s.remoteMinTx);
}

/** The Control packet to send now (§6.8.7). `final` answers a Poll and never carries P. */
export function outgoing(s: SessionVars, final: boolean): Omit<BfdPacket, 'version' | 'auth' | 'multipoint'> {
  return {
    diag: s.localDiag,
    state: s.state,
    poll: s.polling && !final,
    final,
    // Our BFD runs in the agent's process: it shares fate with the control plane.
    cpi: false,
    demand: false,
    detectMult: s.detectMult,
    myDiscr: s.localDiscr,
    yourDiscr: s.remoteDiscr,
    desiredMinTx: operationalTx(s, s.state),
    requiredMinRx: s.requiredMinRx,
    requiredMinEchoRx: 0,
  };
}
