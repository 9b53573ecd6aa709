// One BFD session: applies the pure transition function (fsm.ts), keeps the transmit and detection
// timers on an injected clock, and hands each packet to an injected sender. No socket here.
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
}

/**
 * Emits 'state' (StateChange) on every state change. `receive()` takes packets that passed
 * decodePacket and the transport's checks (TTL, discriminator demultiplexing).
 */
export class BfdSession extends EventEmitter {
  readonly peer: string;
  private vars: SessionVars;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly sendFn: (packet: Buffer) => void;
  private readonly afterInput: (check: () => void) => void;
  private txTimer: unknown;
  private detectTimer: unknown;
  private lastTx = Number.NEGATIVE_INFINITY;
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
    this.random = init.random ?? Math.random;
    this.log = (init.logger ?? silentLogger).child({ component: 'bfd', peer: init.peer });
    this.sendFn = init.send;
    this.afterInput = init.afterPendingInput ?? ((check) => check());
    this.vars = initialVars({ localDiscr: init.localDiscr, ...toWire(init.timers) });
    this.resumeListenMs = init.resumeListenMs ?? 0;
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
    if (this.resumeListenMs > 0 && this.vars.state === State.DOWN && this.sent === 0) {
      this.resuming = true;
      this.resumeTimer = this.clock.setTimeout(() => this.endResume(), this.resumeListenMs);
      return;
    }
    this.scheduleTx(true);
  }

  stop(): void {
    this.running = false;
    this.stopListening();
    this.clearTimer('tx');
    this.clearTimer('detect');
  }

  receive(packet: BfdPacket): void {
    if (!this.running) return;
    this.received++;
    this.lastRx = this.clock.now();
    if (this.resuming) {
      const resumable = packet.state === State.UP && packet.yourDiscr !== 0;
      this.stopListening();
      this.dispatch(resumable ? { type: 'resume', packet } : { type: 'packet', packet });
      this.scheduleTx(true);
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
      sent: this.sent,
      received: this.received,
    };
  }

  private dispatch(ev: BfdEvent): void {
    const t = transition(this.vars, ev);
    if (t.reason === 'ignored') return;
    const from = this.vars.state;
    this.vars = t.session;
    if (t.reason === 'poll-complete') this.emit('poll-complete');
    for (const a of t.actions) {
      switch (a.type) {
        case 'send-final':
          this.transmit(true);
          break;
        case 'timers-changed':
          if (this.running) this.scheduleTx(false);
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
          if (this.running) this.scheduleTx(false);
          this.emit('state', change);
          break;
        }
      }
    }
  }

  private transmit(final: boolean): void {
    try {
      this.sendFn(encodePacket(outgoing(this.vars, final)));
      this.sent++;
    } catch (err) {
      this.log.debug({ event: 'bfd-send-failed', err: (err as Error).message }, 'BFD send failed');
    }
  }

  /**
   * Arms the periodic transmission. After a change (`now` false), the next packet goes out as soon
   * as the new interval allows, counted from the last one, never earlier than 75% of the interval.
   */
  private scheduleTx(now: boolean): void {
    this.clearTimer('tx');
    const interval = txInterval(this.vars) / 1000;
    if (interval === 0) return;
    const due = now ? 0 : Math.max(0, this.lastTx + interval * 0.75 - this.clock.now());
    this.txTimer = this.clock.setTimeout(() => this.periodic(), due);
  }

  private periodic(): void {
    this.txTimer = undefined;
    if (!this.running) return;
    this.transmit(false);
    this.lastTx = this.clock.now();
    const interval = txInterval(this.vars);
    if (interval === 0) return;
    this.txTimer = this.clock.setTimeout(
      () => this.periodic(),
      jittered(interval, this.vars.detectMult, this.random) / 1000,
    );
  }

  private armDetection(): void {
    this.clearTimer('detect');
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

  private clearTimer(which: 'tx' | 'detect'): void {
    const h = which === 'tx' ? this.txTimer : this.detectTimer;
    if (h !== undefined && h !== 'checking') this.clock.clearTimeout(h);
    if (which === 'tx') this.txTimer = undefined;
    else this.detectTimer = undefined;
  }
}

function toWire(t: BfdTimers): { desiredMinTx: number; requiredMinRx: number; detectMult: number } {
  return {
    desiredMinTx: Math.round(t.minTx * 1000),
    requiredMinRx: Math.round(t.minRx * 1000),
    detectMult: t.multiplier,
  };
}
