// The session driver: owns one peer's TCP connection(s) and timers, frames the byte stream,
// validates OPEN, and feeds events into the pure FSM (fsm.ts), then applies its actions.
// Clock and transport are injected so tests run it with a fake clock and fake sockets.
import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import {
  Afi,
  AS_TRANS,
  BGP_VERSION,
  CeaseSubcode,
  ErrorCode,
  HEADER_LEN,
  MessageType,
  notificationName,
  OpenSubcode,
  Safi,
} from '../wire/constants.js';
import { BgpError, openError } from '../wire/errors.js';
import { Framer } from '../wire/framer.js';
import { type Capability, decodeMessage, encodeMessage, type OpenMessage } from '../wire/messages.js';
import { type FsmAction, type FsmEvent, type FsmState, type TimerName, transition } from './fsm.js';
import { connectWithMd5 } from './md5.js';

/**
 * Cease subcodes sent as a Hard Reset when the N bit was negotiated (RFC 8538 §5): they mean the
 * peer should forget our routes. Administrative Reset is left to the implementation there; ours
 * means a reset. BFD Down (RFC 9384) is sent when our BFD saw the path fail: a hard end too.
 */
const HARD_RESET_SUBCODES: ReadonlySet<number> = new Set([
  CeaseSubcode.MAX_PREFIXES,
  CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
  CeaseSubcode.PEER_DECONFIGURED,
  CeaseSubcode.ADMINISTRATIVE_RESET,
  CeaseSubcode.BFD_DOWN,
]);

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** The socket surface the session needs (a net.Socket satisfies it). */
export interface Conn {
  write(b: Uint8Array): boolean;
  end(): void;
  destroy(): void;
  on(ev: 'data', fn: (b: Buffer) => void): this;
  on(ev: 'close', fn: () => void): this;
  on(ev: 'error', fn: (e: Error) => void): this;
  on(ev: 'drain', fn: () => void): this;
  once(ev: 'connect', fn: () => void): this;
  removeAllListeners(): this;
  setNoDelay?(v: boolean): this;
  /** Stop and restart reading (net.Socket): a burst of UPDATEs is read a chunk per loop turn. */
  pause?(): this;
  resume?(): this;
  remoteAddress?: string | undefined;
  localAddress?: string | undefined;
}

export interface ConnectOptions {
  host: string;
  port: number;
  localAddress?: string | undefined;
  md5Password?: string | undefined;
}

export interface Transport {
  /** Starts an outgoing connection; the conn emits 'connect' or 'error'. */
  connect(opts: ConnectOptions): Conn;
}

export const tcpTransport: Transport = {
  connect(opts) {
    if (opts.md5Password) return connectWithMd5({ ...opts, md5Password: opts.md5Password });
    const s: Socket = createConnection({ host: opts.host, port: opts.port, localAddress: opts.localAddress });
    s.setNoDelay(true);
    return s;
  },
};

export interface LocalConfig {
  asn: number;
  routerId: string;
  /** Families we offer (Multiprotocol capability). */
  families: { afi: number; safi: number }[];
  /**
   * Our Graceful Restart capability. `restarting` sets the R bit (we came back from a restart);
   * the F bit is set for the AFIs in `forwardingPreserved`, and only while `restarting`.
   */
  gracefulRestart?:
    | {
        restartTime: number;
        restarting: boolean;
        forwardingPreserved: number[];
        /** RFC 8538: set the N bit (Graceful Restart after a NOTIFICATION or a Hold Timer expiry). */
        notification?: boolean | undefined;
      }
    | undefined;
  /**
   * Our Long-Lived Graceful Restart capability (RFC 9494): the stale time we ask the peer to keep
   * our routes for, past the restart time. Sent only beside `gracefulRestart`.
   */
  longLivedGracefulRestart?: { staleTime: number } | undefined;
}

export interface SessionConfig {
  address: string;
  port: number;
  asn: number;
  passive: boolean;
  holdTime: number;
  /** Keepalive interval to use; defaults to negotiated hold / 3. */
  keepalive?: number | undefined;
  connectRetry: number;
  sourceAddress?: string | undefined;
  md5Password?: string | undefined;
  /** Backoff for automatic restart after an error: first delay and cap, in seconds. */
  idleHoldMin: number;
  idleHoldMax: number;
}

/** What both OPENs agreed on. */
export interface Negotiated {
  holdTime: number;
  keepalive: number;
  as4: boolean;
  peerAsn: number;
  peerId: string;
  families: { afi: number; safi: number }[];
  routeRefresh: boolean;
  /** The peer's Graceful Restart capability, if it sent one. */
  peerGracefulRestart?: {
    restarting: boolean;
    restartTime: number;
    families: { afi: number; safi: number; forwardingPreserved: boolean }[];
  };
  /** We both sent Graceful Restart. */
  gracefulRestart: boolean;
  /**
   * We both sent Graceful Restart with the N bit (RFC 8538): a NOTIFICATION other than Cease/Hard
   * Reset, sent or received, and a Hold Timer expiry end the session gracefully too.
   */
  notificationGracefulRestart: boolean;
  /** The peer's Long-Lived Graceful Restart capability (RFC 9494), if it sent one. */
  peerLongLivedGracefulRestart?: {
    families: { afi: number; safi: number; forwardingPreserved: boolean; staleTime: number }[];
  };
  /** We both sent Graceful Restart and Long-Lived Graceful Restart (RFC 9494). */
  longLivedGracefulRestart: boolean;
}

export interface SessionHandlers {
  onEstablished(n: Negotiated): void;
  /** `graceful` is true when GR was negotiated and the session ended without a NOTIFICATION. */
  onDown(reason: string, graceful: boolean, error?: BgpError): void;
  /** An UPDATE body (after the 19-octet header); valid only during the call. */
  onUpdate(body: Buffer): void;
  onRouteRefresh(afi: number, safi: number): void;
  onStateChange?(from: FsmState, to: FsmState, reason: string): void;
}

export interface SessionCounters {
  messagesIn: number;
  messagesOut: number;
  updatesIn: number;
  updatesOut: number;
  establishedTransitions: number;
  lastError?: string | undefined;
}

export class Session extends EventEmitter {
  state: FsmState = 'idle';
  since = Date.now();
  negotiated?: Negotiated | undefined;
  readonly counters: SessionCounters = {
    messagesIn: 0,
    messagesOut: 0,
    updatesIn: 0,
    updatesOut: 0,
    establishedTransitions: 0,
  };
  private conn?: Conn | undefined;
  private outbound = false;
  private pendingIncoming?: { conn: Conn; framer: Framer } | undefined;
  private framer = new Framer();
  private timers = new Map<TimerName, unknown>();
  private holdSeconds = 0;
  private keepaliveSeconds = 0;
  private lastRecv = 0;
  /** A whole KEEPALIVE or UPDATE arrived in the chunk being processed. */
  private holdFed = false;
  /** The chunk being read held an UPDATE (onData then yields before reading the next). */
  private updateSeen = false;
  private lastSent = 0;
  private failures = 0;
  private enabled = false;
  private sentNotification = false;
  /** The NOTIFICATION sent or received on this connection was Cease/Hard Reset (RFC 8538 §3). */
  private hardReset = false;
  private writeQueue: Buffer[] = [];
  private draining = false;
  private readonly log: Logger;

  constructor(
    readonly local: LocalConfig,
    public config: SessionConfig,
    private readonly handlers: SessionHandlers,
    private readonly clock: Clock = systemClock,
    private readonly transport: Transport = tcpTransport,
    logger: Logger = silentLogger,
  ) {
    super();
    this.log = logger.child({ peer: config.address });
  }

  start(): void {
    this.enabled = true;
    this.dispatch({ type: 'start' });
  }

  /** Stops the session: NOTIFICATION Cease `subcode` unless `notify` is false (graceful). */
  stop(subcode: number = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, notify = true): void {
    this.enabled = false;
    this.dropPending(subcode);
    this.dispatch({ type: 'stop', subcode, notify });
  }

  /** Resets the session with a NOTIFICATION (used for session-reset UPDATE errors and max-prefix). */
  fail(error: BgpError): void {
    this.dispatch({ type: 'message-error', error });
  }

  /** Hands over an accepted connection from this peer (passive side, or a collision). */
  incoming(conn: Conn): void {
    if (!this.enabled) {
      this.rejectConn(conn, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN);
      return;
    }
    if (this.state === 'idle' || this.state === 'connect' || this.state === 'active') {
      // Take the accepted connection and abandon any outgoing attempt.
      if (this.state === 'idle') {
        this.stopTimer('idle-hold');
        this.state = this.config.passive ? 'active' : 'connect';
      }
      this.detach();
      this.attach(conn, false);
      this.dispatch({ type: 'tcp-connected' });
      return;
    }
    if (this.state === 'established' && this.negotiated?.gracefulRestart) {
      // RFC 4724 §4.2: a new connection from a peer Established with graceful restart is that peer
      // restarting, not a collision. Close the old session as if its TCP connection had gone (its
      // routes are kept stale), and take the new one.
      this.log.info({ event: 'peer-restarted' }, 'new connection from the peer: it restarted');
      this.dispatch({ type: 'tcp-closed' });
      if ((this.state as FsmState) === 'idle') {
        this.incoming(conn);
        return;
      }
    }
    if (this.state === 'established' || this.pendingIncoming) {
      // RFC 4271 §6.8: a collision with an established session closes the new connection.
      this.rejectConn(conn, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION);
      return;
    }
    // OpenSent / OpenConfirm: run OPEN on the second connection and resolve when its OPEN arrives.
    const framer = new Framer();
    this.pendingIncoming = { conn, framer };
    conn.setNoDelay?.(true);
    conn.write(this.openMessage());
    conn.on('data', (chunk) => {
      try {
        framer.push(chunk, (f, t) => {
          if (this.pendingIncoming?.conn !== conn) return;
          if (t !== MessageType.OPEN) return;
          const open = decodeMessage(f) as OpenMessage;
          this.resolveCollision(conn, open);
        });
      } catch {
        this.dropPending(CeaseSubcode.CONNECTION_COLLISION_RESOLUTION);
      }
    });
    conn.on('error', () => {});
    conn.on('close', () => {
      if (this.pendingIncoming?.conn === conn) this.pendingIncoming = undefined;
    });
  }

  /** Asks the peer to re-send its routes for a family (RFC 2918); false when not negotiated. */
  sendRouteRefresh(afi: number, safi: number): boolean {
    if (this.state !== 'established' || !this.negotiated?.routeRefresh) return false;
    this.write(encodeMessage({ type: 'route-refresh', afi, safi }));
    return true;
  }

  /** Writes UPDATE frames, queueing behind the socket's backpressure. Returns false while queued. */
  sendFrames(frames: Buffer[]): boolean {
    if (this.state !== 'established' || !this.conn) return false;
    if (frames.length === 0) return !this.draining;
    this.counters.updatesOut += frames.length;
    this.counters.messagesOut += frames.length;
    // One write for the lot: a write per frame cost a system call each (a route reflector sends
    // a few frames to each of many clients per change).
    const f = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    if (this.draining || this.writeQueue.length > 0) this.writeQueue.push(f);
    else if (!this.conn.write(f)) this.draining = true;
    this.lastSent = this.clock.now();
    return !this.draining;
  }

  private flush(): void {
    this.draining = false;
    while (this.conn && this.writeQueue.length > 0) {
      const f = this.writeQueue.shift()!;
      if (!this.conn.write(f)) {
        this.draining = true;
        return;
      }
    }
    this.emit('drain');
  }

  // -------------------------------------------------------------------------------------------

  private resolveCollision(conn: Conn, open: OpenMessage): void {
    const err = this.checkOpen(open);
    if (err || this.state === 'established') {
      this.dropPending(CeaseSubcode.CONNECTION_COLLISION_RESOLUTION);
      return;
    }
    const ours = ipToNum(this.local.routerId);
    const theirs = ipToNum(open.bgpId);
    // RFC 4271 §6.8: the connection initiated by the speaker with the higher BGP Identifier survives.
    const keepIncoming = ours < theirs;
    this.log.info(
      { event: 'collision', keep: keepIncoming ? 'incoming' : 'existing' },
      'connection collision resolved',
    );
    if (!keepIncoming) {
      this.dropPending(CeaseSubcode.CONNECTION_COLLISION_RESOLUTION);
      return;
    }
    this.pendingIncoming = undefined;
    conn.removeAllListeners();
    const old = this.conn;
    this.detach();
    if (old) this.rejectConn(old, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION);
    this.attach(conn, false);
    this.state = 'open-sent';
    this.onOpen(open);
  }

  private dropPending(subcode: number): void {
    const p = this.pendingIncoming;
    if (!p) return;
    this.pendingIncoming = undefined;
    this.rejectConn(p.conn, subcode);
  }

  private rejectConn(conn: Conn, subcode: number): void {
    conn.removeAllListeners();
    conn.on('error', () => {});
    try {
      conn.write(
        encodeMessage({ type: 'notification', code: ErrorCode.CEASE, subcode, data: new Uint8Array(0) }),
      );
      conn.end();
    } catch {
      conn.destroy();
      return;
    }
    this.destroyLater(conn, 2000);
  }

  /**
   * Destroys an ended connection after `ms` unless it closed first (the timer goes with it, so a
   * closed socket is not kept alive for the delay).
   */
  private destroyLater(conn: Conn, ms: number): void {
    const t = this.clock.setTimeout(() => conn.destroy(), ms);
    // Read and drop what the peer still sends, so its close is seen.
    conn.on('data', () => {});
    conn.on('close', () => this.clock.clearTimeout(t));
  }

  private attach(conn: Conn, outbound: boolean): void {
    this.conn = conn;
    this.outbound = outbound;
    this.framer = new Framer();
    this.writeQueue = [];
    this.draining = false;
    this.sentNotification = false;
    this.hardReset = false;
    conn.on('data', (chunk) => this.onData(conn, chunk));
    conn.on('error', (e) => {
      if (this.conn !== conn) return;
      this.counters.lastError = e.message;
      this.log.debug({ err: e.message }, 'socket error');
    });
    conn.on('close', () => {
      if (this.conn !== conn) return;
      this.conn = undefined;
      this.dispatch({ type: 'tcp-closed' });
    });
    conn.on('drain', () => {
      if (this.conn === conn) this.flush();
    });
  }

  private detach(): void {
    const c = this.conn;
    this.conn = undefined;
    if (!c) return;
    c.removeAllListeners();
    c.on('error', () => {});
    if (this.sentNotification) {
      // A NOTIFICATION may still be in flight: give the socket a moment, then force it.
      c.end();
      this.destroyLater(c, 1000);
    } else c.destroy();
  }

  private onData(conn: Conn, chunk: Buffer): void {
    if (this.conn !== conn) return;
    this.holdFed = false;
    try {
      this.framer.push(chunk, (f, t) => {
        if (this.conn !== conn) return;
        this.counters.messagesIn++;
        this.onFrame(f, t);
      });
    } catch (err) {
      if (err instanceof BgpError) this.dispatch({ type: 'message-error', error: err });
      else {
        this.log.error({ err: String(err) }, 'internal error while processing input');
        this.dispatch({
          type: 'message-error',
          error: new BgpError(ErrorCode.CEASE, CeaseSubcode.OUT_OF_RESOURCES, String(err)),
        });
      }
    }
    // RFC 4271 §4.4/§8: only a whole KEEPALIVE or UPDATE restarts the hold timer (not a trickle of
    // bytes); it counts from when it was processed, as processing a burst may have taken a while.
    if (this.holdFed) this.lastRecv = this.clock.now();
    // A chunk with UPDATEs in it: read the next one on the next turn of the event loop, not in the
    // same one (libuv reads up to 32 chunks per turn). A full table arriving at wire speed then
    // leaves timers, other sessions' KEEPALIVEs and hold timers among them, room to run.
    if (this.updateSeen && conn.pause && conn.resume) {
      conn.pause();
      setImmediate(() => {
        if (this.conn === conn) conn.resume?.();
      });
    }
    this.updateSeen = false;
    // Keepalives are never starved by a long burst of input: send one if it is due.
    if (
      this.state === 'established' &&
      this.keepaliveSeconds > 0 &&
      this.clock.now() - this.lastSent >= this.keepaliveSeconds * 1000
    )
      this.sendKeepalive();
  }

  private onFrame(f: Buffer, t: number): void {
    if (t === MessageType.UPDATE || t === MessageType.KEEPALIVE) this.holdFed = true;
    if (t === MessageType.UPDATE) this.updateSeen = true;
    switch (t) {
      case MessageType.UPDATE:
        this.counters.updatesIn++;
        if (this.state !== 'established') {
          this.dispatch({ type: 'update-received' });
          return;
        }
        this.handlers.onUpdate(f.subarray(HEADER_LEN));
        return;
      case MessageType.KEEPALIVE:
        this.dispatch({ type: 'keepalive-received' });
        return;
      case MessageType.OPEN: {
        if (this.state !== 'open-sent') {
          this.dispatch({ type: 'open-error', error: new BgpError(ErrorCode.FSM, 0, 'unexpected OPEN') });
          return;
        }
        const m = decodeMessage(f);
        if (m.type === 'open') this.onOpen(m);
        return;
      }
      case MessageType.NOTIFICATION: {
        const m = decodeMessage(f);
        if (m.type !== 'notification') return;
        const name = notificationName(m.code, m.subcode);
        this.counters.lastError = `received ${name}`;
        this.log.warn(
          { event: 'notification-received', code: m.code, subcode: m.subcode, name },
          'NOTIFICATION received',
        );
        this.downError = new BgpError(m.code, m.subcode, 'received from peer', m.data);
        if (m.code === ErrorCode.CEASE && m.subcode === CeaseSubcode.HARD_RESET) this.hardReset = true;
        this.dispatch({ type: 'notification-received', code: m.code, subcode: m.subcode });
        return;
      }
      case MessageType.ROUTE_REFRESH: {
        const m = decodeMessage(f);
        if (m.type !== 'route-refresh') return;
        this.dispatch({ type: 'route-refresh-received' });
        if (this.state === 'established') this.handlers.onRouteRefresh(m.afi, m.safi);
        return;
      }
    }
  }
  private downError?: BgpError | undefined;

  private checkOpen(open: OpenMessage): BgpError | undefined {
    if (open.version !== BGP_VERSION)
      return openError(
        OpenSubcode.UNSUPPORTED_VERSION,
        `version ${open.version}`,
        Uint8Array.of(0, BGP_VERSION),
      );
    const as4 = open.capabilities.find((c) => c.type === 'four-octet-as');
    const peerAsn = as4?.type === 'four-octet-as' ? as4.asn : open.myAs;
    if (peerAsn !== this.config.asn)
      return openError(
        OpenSubcode.BAD_PEER_AS,
        `peer AS ${peerAsn}, configured ${this.config.asn}`,
        Uint8Array.of(open.myAs >> 8, open.myAs & 255),
      );
    if (open.holdTime === 1 || open.holdTime === 2)
      return openError(OpenSubcode.UNACCEPTABLE_HOLD_TIME, `hold time ${open.holdTime}`);
    if (open.bgpId === '0.0.0.0' || (open.bgpId === this.local.routerId && peerAsn === this.local.asn))
      return openError(OpenSubcode.BAD_BGP_IDENTIFIER, `BGP identifier ${open.bgpId}`);
    return undefined;
  }

  private onOpen(open: OpenMessage): void {
    const err = this.checkOpen(open);
    if (err) {
      this.counters.lastError = err.message;
      this.dispatch({ type: 'open-error', error: err });
      return;
    }
    const as4cap = open.capabilities.find((c) => c.type === 'four-octet-as');
    const hold = Math.min(open.holdTime, this.config.holdTime);
    const mp = open.capabilities.filter(
      (c): c is Extract<Capability, { type: 'multiprotocol' }> => c.type === 'multiprotocol',
    );
    const theirs =
      mp.length > 0 ? mp : [{ type: 'multiprotocol' as const, afi: Afi.IPV4, safi: Safi.UNICAST }];
    const families = this.local.families.filter((f) =>
      theirs.some((t) => t.afi === f.afi && t.safi === f.safi),
    );
    const gr = open.capabilities.find((c) => c.type === 'graceful-restart');
    const llgr = open.capabilities.find((c) => c.type === 'long-lived-graceful-restart');
    const keepalive =
      hold === 0
        ? 0
        : Math.max(1, Math.min(this.config.keepalive ?? Math.floor(hold / 3), Math.floor(hold / 3)));
    this.negotiated = {
      holdTime: hold,
      keepalive,
      as4: as4cap !== undefined,
      peerAsn: as4cap?.type === 'four-octet-as' ? as4cap.asn : open.myAs,
      peerId: open.bgpId,
      families,
      routeRefresh: open.capabilities.some((c) => c.type === 'route-refresh'),
      ...(gr?.type === 'graceful-restart'
        ? {
            peerGracefulRestart: {
              restarting: gr.restarting,
              restartTime: gr.restartTime,
              families: gr.families,
            },
          }
        : {}),
      gracefulRestart: gr !== undefined && this.local.gracefulRestart !== undefined,
      notificationGracefulRestart:
        gr?.type === 'graceful-restart' &&
        gr.notification === true &&
        this.local.gracefulRestart?.notification === true,
      ...(llgr?.type === 'long-lived-graceful-restart'
        ? { peerLongLivedGracefulRestart: { families: llgr.families } }
        : {}),
      longLivedGracefulRestart:
        gr !== undefined &&
        llgr !== undefined &&
        this.local.gracefulRestart !== undefined &&
        this.local.longLivedGracefulRestart !== undefined,
    };
    this.holdSeconds = hold;
    this.keepaliveSeconds = keepalive;
    this.dispatch({ type: 'open-received', holdTime: hold });
  }

  private openMessage(): Buffer {
    const caps: Capability[] = this.local.families.map((f) => ({
      type: 'multiprotocol',
      afi: f.afi,
      safi: f.safi,
    }));
    caps.push({ type: 'route-refresh' }, { type: 'four-octet-as', asn: this.local.asn });
    const gr = this.local.gracefulRestart;
    if (gr)
      caps.push({
        type: 'graceful-restart',
        restarting: gr.restarting,
        ...(gr.notification ? { notification: true } : {}),
        restartTime: gr.restartTime,
        families: this.local.families.map((f) => ({
          ...f,
          forwardingPreserved: gr.restarting && gr.forwardingPreserved.includes(f.afi),
        })),
      });
    const llgr = this.local.longLivedGracefulRestart;
    if (gr && llgr)
      caps.push({
        type: 'long-lived-graceful-restart',
        families: this.local.families.map((f) => ({
          ...f,
          forwardingPreserved: gr.restarting && gr.forwardingPreserved.includes(f.afi),
          staleTime: llgr.staleTime,
        })),
      });
    return encodeMessage({
      type: 'open',
      version: BGP_VERSION,
      myAs: this.local.asn > 0xffff ? AS_TRANS : this.local.asn,
      holdTime: this.config.holdTime,
      bgpId: this.local.routerId,
      capabilities: caps,
    });
  }

  private write(b: Buffer): void {
    if (!this.conn) return;
    this.counters.messagesOut++;
    this.lastSent = this.clock.now();
    this.conn.write(b);
  }

  private sendKeepalive(): void {
    this.write(encodeMessage({ type: 'keepalive' }));
  }

  // -------------------------------------------------------------------------------------------

  private dispatch(ev: FsmEvent): void {
    const from = this.state;
    const t = transition(from, ev, {
      passive: this.config.passive,
      connectRetry: this.config.connectRetry,
      largeHold: 240,
    });
    if (t.reason === 'ignored') return;
    this.state = t.next;
    if (from !== t.next) {
      this.since = this.clock.now();
      this.log.info({ event: 'fsm', from, to: t.next, reason: t.reason }, 'session state change');
      this.handlers.onStateChange?.(from, t.next, t.reason);
    }
    let error: BgpError | undefined =
      ev.type === 'message-error' || ev.type === 'open-error' ? ev.error : undefined;
    if (ev.type === 'notification-received') error = this.downError;
    for (const a of t.actions) this.apply(a, t.reason, error);
  }

  private apply(a: FsmAction, reason: string, error?: BgpError): void {
    switch (a.type) {
      case 'connect': {
        const conn = this.transport.connect({
          host: this.config.address,
          port: this.config.port,
          localAddress: this.config.sourceAddress,
          md5Password: this.config.md5Password,
        });
        this.attach(conn, true);
        conn.once('connect', () => {
          if (this.conn === conn) this.dispatch({ type: 'tcp-connected' });
        });
        return;
      }
      case 'drop-connection':
        this.detach();
        return;
      case 'send-open':
        this.write(this.openMessage());
        return;
      case 'send-keepalive':
        this.sendKeepalive();
        return;
      case 'send-notification': {
        let { code, subcode } = a;
        let data = a.data ?? new Uint8Array(0);
        // RFC 8538 §5: with the N bit, the Cease subcodes that mean "forget this peer's routes"
        // go inside a Hard Reset (the peer would otherwise keep our routes stale).
        if (
          this.negotiated?.notificationGracefulRestart &&
          code === ErrorCode.CEASE &&
          HARD_RESET_SUBCODES.has(subcode)
        ) {
          data = Buffer.concat([Buffer.from([code, subcode]), data]);
          subcode = CeaseSubcode.HARD_RESET;
        }
        if (code === ErrorCode.CEASE && subcode === CeaseSubcode.HARD_RESET) this.hardReset = true;
        this.log.warn(
          { event: 'notification-sent', name: notificationName(code, subcode) },
          'sending NOTIFICATION',
        );
        this.counters.lastError = `sent ${notificationName(code, subcode)}`;
        this.write(encodeMessage({ type: 'notification', code, subcode, data }));
        this.sentNotification = true;
        return;
      }
      case 'start-timer':
        this.startTimer(a.timer, a.seconds);
        return;
      case 'stop-timer':
        this.stopTimer(a.timer);
        return;
      case 'session-up':
        // RFC 4271 §6.8: once Established, a connection still in collision is closed.
        this.dropPending(CeaseSubcode.CONNECTION_COLLISION_RESOLUTION);
        this.counters.establishedTransitions++;
        this.lastSent = this.clock.now();
        this.handlers.onEstablished(this.negotiated!);
        this.emit('established');
        return;
      case 'session-down': {
        // Graceful: GR on at both ends and no NOTIFICATION either way (RFC 4724 §4.2), or, with the
        // N bit at both ends, any end but a Hard Reset (RFC 8538 §3: a NOTIFICATION sent or
        // received, a Hold Timer expiry).
        const n = this.negotiated;
        const graceful =
          n?.gracefulRestart === true &&
          (n.notificationGracefulRestart
            ? !this.hardReset
            : reason !== 'notification-received' && !this.sentNotification);
        this.writeQueue = [];
        this.handlers.onDown(reason, graceful, error);
        this.emit('down', reason);
        return;
      }
      case 'schedule-restart': {
        if (!this.enabled) return;
        this.failures++;
        const delay = Math.min(this.config.idleHoldMax, this.config.idleHoldMin * 2 ** (this.failures - 1));
        this.startTimer('idle-hold', delay);
        return;
      }
      case 'reset-backoff':
        this.failures = 0;
        return;
    }
  }

  private startTimer(name: TimerName, seconds: number): void {
    this.stopTimer(name);
    if (name === 'hold') this.lastRecv = this.clock.now();
    const fire = () => {
      this.timers.delete(name);
      switch (name) {
        case 'hold': {
          // Restarted by each whole KEEPALIVE or UPDATE received (see onData).
          const hold = this.state === 'open-sent' ? seconds : this.holdSeconds;
          const left = this.lastRecv + hold * 1000 - this.clock.now();
          if (left > 0) {
            this.timers.set(name, this.clock.setTimeout(fire, left));
            return;
          }
          this.dispatch({ type: 'hold-timer-expired' });
          return;
        }
        case 'keepalive': {
          const left = this.lastSent + this.keepaliveSeconds * 1000 - this.clock.now();
          if (left <= 0 || this.state === 'open-confirm') this.dispatch({ type: 'keepalive-timer-expired' });
          if (this.state === 'established' || this.state === 'open-confirm') {
            const next = Math.max(1, this.lastSent + this.keepaliveSeconds * 1000 - this.clock.now());
            this.timers.set(name, this.clock.setTimeout(fire, next));
          }
          return;
        }
        case 'connect-retry':
          this.dispatch({ type: 'connect-retry-timer-expired' });
          return;
        case 'idle-hold':
          this.dispatch({ type: 'idle-hold-timer-expired' });
          return;
      }
    };
    this.timers.set(name, this.clock.setTimeout(fire, seconds * 1000));
  }

  private stopTimer(name: TimerName): void {
    const h = this.timers.get(name);
    if (h !== undefined) this.clock.clearTimeout(h);
    this.timers.delete(name);
  }

  /** Local address of the current connection (for next-hop-self). */
  get localAddress(): string | undefined {
    const a = this.conn?.localAddress;
    return a?.startsWith('::ffff:') ? a.slice(7) : a;
  }

  get isOutbound(): boolean {
    return this.outbound;
  }
}

function ipToNum(s: string): number {
  const p = s.split('.').map(Number);
  return (((p[0] ?? 0) << 24) | ((p[1] ?? 0) << 16) | ((p[2] ?? 0) << 8) | (p[3] ?? 0)) >>> 0;
}
