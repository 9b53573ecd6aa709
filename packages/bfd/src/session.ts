// One BFD session: applies the pure transition function (fsm.ts), keeps the detection timer on an
// injected clock, and hands its packets to an injected sender: the periodic ones to a transmitter
// that keeps their time (timers on the clock here; the native addon's sending thread in Bfd). No
// socket here.
import { EventEmitter } from 'node:events';
import {
  type BfdEvent,
  detectionTime,
  initialVars,
  jittered,
  outgoing,
  type SessionVars,
  transition,
  txInterval,
} from './fsm.js';
import { type BfdPacket, DIAG_NAMES, encodePacket, STATE_NAMES, State, type StateName } from './packet.js';

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  child(bindings: object): Logger;
}

export const silentLogger: Logger = {
  info() {},
  warn() {},
  debug() {},
  child() {
    return silentLogger;
  },
};

/** Timers of a session, in milliseconds (the wire carries microseconds). */
export interface BfdTimers {
  /** Desired Min TX Interval (default 300). */
  minTx: number;
  /** Required Min RX Interval (default 300). */
  minRx: number;
  /** Detect Mult (default 3). */
  multiplier: number;
}

export const DEFAULT_TIMERS: BfdTimers = { minTx: 300, minRx: 300, multiplier: 3 };

export interface StateChange {
  peer: string;
  from: StateName;
  to: StateName;
  /** The local diagnostic after the change (RFC 5880 §4.1), by name. */
  diag: string;
  /** The transition's reason (`detection-time-expired`, `neighbor-signaled-down`, …). */
  reason: string;
  /** The remote's Control Plane Independent bit (RFC 5880 §4.1, RFC 5882 §4.3). */
  remoteCpi: boolean;
}

export interface SessionStatus {
  peer: string;
  state: StateName;
  remoteState: StateName;
  localDiscr: number;
  remoteDiscr: number;
  diag: string;
  /** Negotiated transmit interval and detection time, ms. */
  txIntervalMs: number;
  detectionTimeMs: number;
  remoteMultiplier: number;
  polling: boolean;
  remoteCpi: boolean;
  /** Clock time of the last state change. */
  since: number;
  sent: number;
  received: number;
}

/**
 * The periodic transmission of a session's Control packet (§6.8.7): the session decides the packet
 * and the interval; the transmitter sends it every interval less the jitter (`jittered`).
 */
export interface PeriodicTransmit {
  /**
   * Sends `packet` every `intervalUs` less the jitter, the first at once, or with `paced` 75% of
   * the interval after the previous periodic packet (at once if that is past).
   */
  arm(packet: Buffer, intervalUs: number, detectMult: number, paced: boolean): void;
  /** The packet for the next periodic sends (the schedule stays). */
  update(packet: Buffer): void;
  /** No periodic packets until the next `arm`. */
  pause(): void;
  /** Periodic packets sent so far. */
  sent(): number;
  /**
   * Measurement: the time between consecutive periodic packets (ms) and the longest any went out
   * after its due time, since the last call. Empty unless the transmitter measures.
   */
  drain(): { gapsMs: number[]; maxLateMs: number };
  /** For good (Bfd closes the native sender with its session). */
  close(): void;
}

/** Periodic packets from the clock's timers, on the caller's event loop. */
export class TimerTransmit implements PeriodicTransmit {
  private timer: unknown;
  private packet: Buffer | undefined;
  private intervalUs = 0;
  private detectMult = 3;
  private due = 0;
  private lastTx = Number.NEGATIVE_INFINITY;
  private count = 0;
  private gapsMs: number[] = [];
  private maxLateMs = 0;

  constructor(
    private readonly clock: Clock,
    private readonly random: () => number,
    /** Sends one packet; false when it failed (not counted). */
    private readonly send: (packet: Buffer) => boolean,
    private readonly measure = false,
  ) {}

  arm(packet: Buffer, intervalUs: number, detectMult: number, paced: boolean): void {
    this.packet = packet;
    this.intervalUs = intervalUs;
    this.detectMult = detectMult;
    const now = this.clock.now();
    this.schedule(paced ? Math.max(0, this.lastTx + (intervalUs / 1000) * 0.75 - now) : 0);
  }

  update(packet: Buffer): void {
    this.packet = packet;
  }

  pause(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  sent(): number {
    return this.count;
  }

  drain(): { gapsMs: number[]; maxLateMs: number } {
    const out = { gapsMs: this.gapsMs, maxLateMs: this.maxLateMs };
    this.gapsMs = [];
    this.maxLateMs = 0;
    return out;
  }

  close(): void {
    this.pause();
  }

  private schedule(ms: number): void {
    this.pause();
    this.due = this.clock.now() + ms;
    this.timer = this.clock.setTimeout(() => this.fire(), ms);
  }

  private fire(): void {
    this.timer = undefined;
    const now = this.clock.now();
    if (this.measure) {
      if (this.lastTx !== Number.NEGATIVE_INFINITY && this.gapsMs.length < 4096)
        this.gapsMs.push(now - this.lastTx);
      this.maxLateMs = Math.max(this.maxLateMs, now - this.due);
    }
    if (this.packet && this.send(this.packet)) this.count++;
    this.lastTx = now;
    this.schedule(jittered(this.intervalUs, this.detectMult, this.random) / 1000);
  }
}

export interface SessionInit {
  peer: string;
  localDiscr: number;
  timers: BfdTimers;
  /** Sends one encoded packet (the transport: UDP from a source port of the session, TTL 255). */
  send(packet: Buffer): void;
  clock?: Clock;
  /** Uniform in [0, 1): the jitter source (tests inject a fixed one). */
  random?: () => number;
  logger?: Logger;
  /**
   * Runs `check` once received packets already waiting have been read. The detection timer uses it
   * before declaring the session Down: after a busy spell, Node runs due timers before it polls
   * sockets, so packets that did arrive in time would otherwise be read too late. Default: at once.
   */
  afterPendingInput?: (check: () => void) => void;
  /**
   * Listen this long (ms) before sending anything, to resume a session that this system's previous
   * process ran with the peer (see {@link BfdSession.holdOver}): a Down packet from us would fail
   * the peer's session (RFC 5882 §4.3). An Up packet from the peer that names a discriminator we
   * do not know is that session, and it is taken over in Up. Any other packet, or the end of the
   * wait, starts the session as usual. Default 0: send at once.
   */
  resumeListenMs?: number;
  /**
   * Sends the periodic packets (default: a TimerTransmit on `clock`, with `send`). Whoever passes
   * one closes it (Bfd does, with the session's socket).
   */
  periodic?: PeriodicTransmit;
  /** The default transmitter keeps the gaps between packets for `drainTx` (benchmarks). */
  measureTx?: boolean;
}

/**
 * Emits 'state' (StateChange) on every state change. `receive()` takes packets that passed
 * decodePacket and the transport's checks (TTL, discriminator demultiplexing).
 */
export class BfdSession extends EventEmitter {
  readonly peer: string;
  private vars: SessionVars;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly sendFn: (packet: Buffer) => void;
  private readonly afterInput: (check: () => void) => void;
  private readonly periodic: PeriodicTransmit;
  /** The interval the periodic packets were armed with (µs; 0: not sending). */
  private armedUs = 0;
  /** The periodic packet the transmitter holds. */
  private lastPeriodic: Buffer | undefined;
  private detectTimer: unknown;
  private lastRx = 0;
  private running = false;
  private sinceT: number;
  private sent = 0;
  private received = 0;
  private readonly resumeListenMs: number;
  private resumeTimer: unknown;
  /** Listening before the first packet, to resume the previous process's session. */
  resuming = false;

  constructor(init: SessionInit) {
    super();
    this.peer = init.peer;
    this.clock = init.clock ?? systemClock;
    this.log = (init.logger ?? silentLogger).child({ component: 'bfd', peer: init.peer });
    this.sendFn = init.send;
    this.afterInput = init.afterPendingInput ?? ((check) => check());
    this.vars = initialVars({ localDiscr: init.localDiscr, ...toWire(init.timers) });
    this.resumeListenMs = init.resumeListenMs ?? 0;
    this.periodic =
      init.periodic ??
      new TimerTransmit(this.clock, init.random ?? Math.random, (p) => this.transmitPacket(p));
    this.sinceT = this.clock.now();
  }

  get state(): StateName {
    return STATE_NAMES[this.vars.state];
  }

  get localDiscr(): number {
    return this.vars.localDiscr;
  }

  /** The state variables (read-only copy) for tests and status. */
  get variables(): Readonly<SessionVars> {
    return this.vars;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    if (this.resumeListenMs > 0 && this.vars.state === State.DOWN && this.sent + this.periodic.sent() === 0) {
      this.resuming = true;
      this.resumeTimer = this.clock.setTimeout(() => this.endResume(), this.resumeListenMs);
      return;
    }
    this.scheduleTx(true);
  }

  stop(): void {
    this.running = false;
    this.stopListening();
    this.periodic.pause();
    this.armedUs = 0;
    this.clearTimer();
  }

  receive(packet: BfdPacket): void {
    if (!this.running) return;
    this.received++;
    this.lastRx = this.clock.now();
    if (this.resuming) {
      const resumable = packet.state === State.UP && packet.yourDiscr !== 0;
      this.stopListening();
      this.dispatch(resumable ? { type: 'resume', packet } : { type: 'packet', packet }, true);
    } else this.dispatch({ type: 'packet', packet });
    this.armDetection();
  }

  private stopListening(): void {
    this.resuming = false;
    if (this.resumeTimer !== undefined) this.clock.clearTimeout(this.resumeTimer);
    this.resumeTimer = undefined;
  }

  /** Nothing to resume came: a running session starts as usual. */
  private endResume(): void {
    if (!this.resuming) return;
    this.stopListening();
    if (this.running) this.scheduleTx(true);
  }

  /**
   * Before a planned restart of this process (RFC 5882 §4.3): announce a Desired Min TX Interval
   * long enough that the peer's detection time (our Detect Mult times it) covers `ms`, in a Poll
   * Sequence. Resolves true once the peer's Final shows it took the new interval, false if the
   * session is not Up or no Final came within `waitMs`. The next process resumes the session
   * (`resumeListenMs`) before the peer's detection time runs out.
   */
  holdOver(ms: number, waitMs: number): Promise<boolean> {
    if (this.vars.state !== State.UP || !this.running) return Promise.resolve(false);
    const desiredMinTx = Math.min(0xffff_ffff, Math.ceil((ms * 1000) / this.vars.detectMult));
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        this.clock.clearTimeout(timer);
        this.off('poll-complete', onFinal);
        resolve(ok);
      };
      const onFinal = () => done(true);
      const timer = this.clock.setTimeout(() => done(false), waitMs);
      this.on('poll-complete', onFinal);
      this.dispatch({
        type: 'set-timers',
        desiredMinTx,
        requiredMinRx: this.vars.requiredMinRx,
        detectMult: this.vars.detectMult,
      });
      this.log.info(
        { event: 'bfd-hold-over', holdOverMs: ms, desiredMinTxMs: desiredMinTx / 1000 },
        'BFD: asking the peer to wait through a planned restart',
      );
    });
  }

  /** The transmitter's measurements since the last call (see PeriodicTransmit.drain). */
  drainTx(): { gapsMs: number[]; maxLateMs: number } {
    return this.periodic.drain();
  }

  setTimers(t: BfdTimers): void {
    this.dispatch({ type: 'set-timers', ...toWire(t) });
  }

  adminDown(): void {
    this.dispatch({ type: 'admin-down' });
  }

  adminUp(): void {
    this.dispatch({ type: 'admin-up' });
  }

  status(): SessionStatus {
    const v = this.vars;
    return {
      peer: this.peer,
      state: this.state,
      remoteState: STATE_NAMES[v.remoteState],
      localDiscr: v.localDiscr,
      remoteDiscr: v.remoteDiscr,
      diag: DIAG_NAMES[v.localDiag] ?? String(v.localDiag),
      txIntervalMs: txInterval(v) / 1000,
      detectionTimeMs: detectionTime(v) / 1000,
      remoteMultiplier: v.remoteDetectMult,
      polling: v.polling,
      remoteCpi: v.remoteCpi,
      since: this.sinceT,
      sent: this.sent + this.periodic.sent(),
      received: this.received,
    };
  }

  /** Applies one event; `sendNow` (re)starts the periodic packets at once (from the new state). */
  private dispatch(ev: BfdEvent, sendNow = false): void {
    const t = transition(this.vars, ev);
    if (t.reason === 'ignored') {
      if (sendNow && this.running) this.scheduleTx(true);
      return;
    }
    const from = this.vars.state;
    this.vars = t.session;
    let rearm = false;
    if (t.reason === 'poll-complete') this.emit('poll-complete');
    for (const a of t.actions) {
      switch (a.type) {
        case 'send-final':
          this.sendFinal();
          break;
        case 'timers-changed':
          rearm = true;
          break;
        case 'state-changed': {
          this.sinceT = this.clock.now();
          const change: StateChange = {
            peer: this.peer,
            from: STATE_NAMES[from],
            to: STATE_NAMES[a.to],
            diag: DIAG_NAMES[this.vars.localDiag] ?? String(this.vars.localDiag),
            reason: t.reason,
            remoteCpi: this.vars.remoteCpi,
          };
          this.log.info({ event: 'bfd-state', ...change }, 'BFD session state change');
          rearm = true;
          this.emit('state', change);
          break;
        }
      }
    }
    // Every periodic packet from now on carries the new variables, at the interval they give (a
    // remote's new Required Min RX changes it without an action). A listener of 'state' may have
    // stopped the session meanwhile.
    if (this.running && !this.resuming && (sendNow || rearm || txInterval(this.vars) !== this.armedUs))
      this.scheduleTx(sendNow);
    else {
      // Most packets received change nothing we send: the transmitter is told only of a change.
      const p = this.packet(false);
      if (!this.lastPeriodic?.equals(p)) {
        this.lastPeriodic = p;
        this.periodic.update(p);
      }
    }
  }

  private packet(final: boolean): Buffer {
    return encodePacket(outgoing(this.vars, final));
  }

  /** The Final answering a Poll: at once, not waiting for the periodic packet (§6.8.7). */
  private sendFinal(): void {
    if (this.transmitPacket(this.packet(true))) this.sent++;
  }

  private transmitPacket(p: Buffer): boolean {
    try {
      this.sendFn(p);
      return true;
    } catch (err) {
      this.log.debug({ event: 'bfd-send-failed', err: (err as Error).message }, 'BFD send failed');
      return false;
    }
  }

  /**
   * Arms the periodic transmission. After a change (`now` false), the next packet goes out as soon
   * as the new interval allows, counted from the last one, never earlier than 75% of the interval.
   */
  private scheduleTx(now: boolean): void {
    const interval = txInterval(this.vars);
    this.armedUs = interval;
    try {
      if (interval === 0) this.periodic.pause();
      else {
        this.lastPeriodic = this.packet(false);
        this.periodic.arm(this.lastPeriodic, interval, this.vars.detectMult, !now);
      }
    } catch (err) {
      // Not expected (the intervals are in range); the session then sends nothing, and says so.
      this.log.warn(
        { event: 'bfd-tx-arm-failed', intervalUs: interval, err: (err as Error).message },
        'BFD: periodic packets could not be scheduled',
      );
    }
  }

  private armDetection(): void {
    this.clearTimer();
    const ms = detectionTime(this.vars) / 1000;
    if (ms <= 0) return;
    const check = () => {
      if (!this.running || this.detectTimer !== 'checking') return;
      this.detectTimer = undefined;
      // Checked against the time of the last packet: one read meanwhile pushes the deadline on.
      const left = this.lastRx + detectionTime(this.vars) / 1000 - this.clock.now();
      if (left > 0) {
        this.detectTimer = this.clock.setTimeout(fire, left);
        return;
      }
      this.dispatch({ type: 'detection-timeout' });
    };
    const fire = () => {
      this.detectTimer = 'checking';
      this.afterInput(check);
    };
    this.detectTimer = this.clock.setTimeout(fire, ms);
  }

  /** Clears the detection timer. */
  private clearTimer(): void {
    const h = this.detectTimer;
    if (h !== undefined && h !== 'checking') this.clock.clearTimeout(h);
    this.detectTimer = undefined;
  }
}

function toWire(t: BfdTimers): { desiredMinTx: number; requiredMinRx: number; detectMult: number } {
  return {
    desiredMinTx: Math.round(t.minTx * 1000),
    requiredMinRx: Math.round(t.minRx * 1000),
    detectMult: t.multiplier,
  };
}
