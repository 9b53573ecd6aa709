// The BFD instance of one host: single-hop sessions (RFC 5881) over UDP, received on port 3784 and
// sent from a source port of 49152–65535 per session, TTL / hop limit 255 both ways. The received
// TTL is read by @podnet/native (IP_RECVTTL / IPV6_RECVHOPLIMIT with recvmsg): Node's dgram cannot
// report it. A packet that arrives with any other TTL is dropped and counted (RFC 5881 §5).
// The periodic packets go out from the addon's sending thread (`periodicSender`), so a busy event
// loop (a full-table UPDATE burst) delays none of them; the state machines, the Finals and the
// reception stay on this loop, where the detection timer reads waiting packets before it fires.
import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { isIPv6, SocketAddress } from 'node:net';
import {
  openUdp,
  type PeriodicSender,
  periodicSender,
  setPeriodicSenderPriority,
  type UdpMeta,
  type UdpSocket,
} from '@podnet/native';
import {
  BFD_PORT,
  BFD_TTL,
  decodePacket,
  SOURCE_PORT_MAX,
  SOURCE_PORT_MIN,
  State,
  type StateName,
} from './packet.js';
import {
  BfdSession,
  type BfdTimers,
  type Clock,
  DEFAULT_TIMERS,
  type Logger,
  type PeriodicTransmit,
  type SessionStatus,
  type StateChange,
  silentLogger,
  systemClock,
} from './session.js';

export class BfdConfigError extends Error {
  readonly code = 'BFD_ERR_CONFIG';
  constructor(
    readonly field: string,
    readonly value: unknown,
    why: string,
  ) {
    super(`${field}: ${why} (got ${JSON.stringify(value)})`);
    this.name = 'BfdConfigError';
  }
}

export interface BfdPeerConfig {
  /** The neighbour's address (IPv4 or IPv6, one hop away). */
  peer: string;
  /** Local address to send from (default: the kernel's choice). */
  local?: string | undefined;
  timers?: Partial<BfdTimers> | undefined;
  /**
   * This system's previous process may have left the session Up at the peer, holding it over a
   * planned restart (`holdOver`): listen first and take it over (BfdSession `resumeListenMs`).
   */
  resume?: boolean | undefined;
}

export interface BfdOptions {
  /** Open the sockets inside this network namespace (a path, as @podnet/native takes it). */
  netns?: string | undefined;
  logger?: Logger | undefined;
  clock?: Clock | undefined;
  random?: () => number;
  /** Receive port (default 3784; tests may change it only together with the peer). */
  port?: number;
  /**
   * Who sends the periodic packets: `thread`, the addon's sending thread (the default), or `loop`,
   * timers on this event loop (the default with an injected clock, which the thread cannot follow).
   */
  transmit?: 'thread' | 'loop';
  /**
   * Nice value of the sending thread alone (`transmit: 'thread'`), set with the first session: a
   * busy host then delays its packets less. Lowering it needs CAP_SYS_NICE, else it is logged and
   * left. Default: left as it is.
   */
  priority?: number | undefined;
  /** Keep the gaps between periodic packets for `drainTxGaps` (benchmarks). */
  measureTx?: boolean;
  /** How long a session with `resume` listens before it starts on its own (ms, default 2500). */
  resumeListenMs?: number;
}

export interface BfdCounters {
  /** Packets dropped because their TTL / hop limit was not 255. */
  ttlDropped: number;
  /** Packets refused by the RFC 5880 §6.8.6 checks. */
  invalid: number;
  /** Packets that matched no session. */
  noSession: number;
  /** Sessions that went from Up to Down. */
  downs: number;
}

export function canonical(address: string): string {
  const family = isIPv6(address) ? 'ipv6' : 'ipv4';
  try {
    const a = new SocketAddress({ address, family }).address;
    return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
  } catch {
    throw new BfdConfigError('peer', address, 'not an IP address');
  }
}

function checkTimers(t: BfdTimers, field: string): BfdTimers {
  for (const k of ['minTx', 'minRx'] as const) {
    const v = t[k];
    // The wire carries microseconds in 32 bits; below 10 ms is not a goal for a userspace daemon.
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 10 || v > 60_000)
      throw new BfdConfigError(`${field}.${k}`, v, 'must be 10..60000 ms');
  }
  if (!Number.isInteger(t.multiplier) || t.multiplier < 1 || t.multiplier > 255)
    throw new BfdConfigError(`${field}.multiplier`, t.multiplier, 'must be an integer 1..255');
  return t;
}

/** The part of Bfd that a client (the agent) uses; tests pass their own. */
export interface BfdInstance {
  start(): void;
  stop(): void;
  addPeer(c: BfdPeerConfig): void;
  updatePeer(peer: string, timers: Partial<BfdTimers>): void;
  removePeer(peer: string): void;
  /** Before a planned restart: Up sessions ask their peers to wait (see Bfd.holdOver). */
  holdOver(peers: { peer: string; ms: number }[], waitMs: number): Promise<string[]>;
  has(peer: string): boolean;
  /** The current state of the session to `peer`. */
  stateOf(peer: string): StateName | undefined;
  on(ev: 'state' | 'down', fn: (c: StateChange) => void): this;
  on(ev: 'error', fn: (err: Error) => void): this;
}

interface Entry {
  session: BfdSession;
  sock: UdpSocket;
  /** The sending thread's transmitter (`transmit: 'thread'`), closed with the session. */
  periodic: PeriodicTransmit | undefined;
  config: BfdPeerConfig;
  wasUp: boolean;
}

/**
 * Emits 'state' (StateChange) for every session state change, and 'down' (StateChange) when a
 * session that was Up goes Down or AdminDown (the event BGP acts on).
 */
export class Bfd extends EventEmitter implements BfdInstance {
  readonly counters: BfdCounters = { ttlDropped: 0, invalid: 0, noSession: 0, downs: 0 };
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly byPeer = new Map<string, Entry>();
  private readonly byDiscr = new Map<number, Entry>();
  private readonly rx: UdpSocket[] = [];
  private readonly port: number;
  private readonly threaded: boolean;
  private prioritised = false;
  private started = false;

  constructor(private readonly opts: BfdOptions = {}) {
    super();
    this.log = (opts.logger ?? silentLogger).child({ component: 'bfd' });
    this.clock = opts.clock ?? systemClock;
    this.port = opts.port ?? BFD_PORT;
    this.threaded = (opts.transmit ?? (opts.clock ? 'loop' : 'thread')) === 'thread';
    if (this.threaded && opts.clock) throw new BfdConfigError('transmit', 'thread', 'needs the system clock');
  }

  /** Opens the receive sockets (IPv4, and IPv6 when the host has it). */
  start(): void {
    if (this.started) return;
    for (const family of [4, 6] as const) {
      try {
        const s = openUdp({ family, port: this.port, ttl: BFD_TTL, netns: this.opts.netns });
        s.onDatagram(
          (buf, meta) => this.onDatagram(buf, meta),
          (err) => this.log.warn({ event: 'bfd-recv-error', err: err.message }, 'BFD receive error'),
        );
        s.unref();
        this.rx.push(s);
      } catch (err) {
        if (family === 4) throw err;
        this.log.warn({ event: 'bfd-no-ipv6', err: (err as Error).message }, 'no IPv6 BFD listener');
      }
    }
    this.started = true;
    for (const e of this.byPeer.values()) e.session.start();
  }

  stop(): void {
    this.started = false;
    for (const e of this.byPeer.values()) {
      e.session.stop();
      e.periodic?.close();
      e.sock.close();
    }
    this.byPeer.clear();
    this.byDiscr.clear();
    for (const s of this.rx.splice(0)) s.close();
  }

  /** Adds a session (a peer already present gets its timers updated instead). */
  addPeer(c: BfdPeerConfig): void {
    const peer = canonical(c.peer);
    const timers = checkTimers({ ...DEFAULT_TIMERS, ...c.timers }, 'timers');
    const old = this.byPeer.get(peer);
    if (old) {
      old.config = c;
      old.session.setTimers(timers);
      return;
    }
    const sock = this.openSource(peer, c.local);
    let discr = 0;
    while (discr === 0 || this.byDiscr.has(discr)) discr = randomInt(1, 0xffff_ffff);
    let periodic: PeriodicTransmit | undefined;
    if (this.threaded) {
      try {
        periodic = threadTransmit(
          periodicSender(sock, peer, this.port, { measure: this.opts.measureTx === true }),
        );
      } catch (err) {
        sock.close();
        throw err;
      }
      this.prioritise();
    }
    const session = new BfdSession({
      peer,
      localDiscr: discr,
      timers,
      send: (b) => sock.send(b, peer, this.port),
      clock: this.clock,
      ...(this.opts.random ? { random: this.opts.random } : {}),
      logger: this.log,
      afterPendingInput: this.opts.clock ? undefined : (check) => setImmediate(check),
      resumeListenMs: c.resume ? (this.opts.resumeListenMs ?? 2500) : 0,
      ...(periodic ? { periodic } : {}),
      measureTx: this.opts.measureTx === true,
    });
    const entry: Entry = { session, sock, periodic, config: c, wasUp: false };
    session.on('state', (ch: StateChange) => {
      this.emit('state', ch);
      if (ch.to === 'up') entry.wasUp = true;
      else if (ch.from === 'up' && (ch.to === 'down' || ch.to === 'admin-down')) {
        this.counters.downs++;
        this.emit('down', ch);
      }
    });
    this.byPeer.set(peer, entry);
    this.byDiscr.set(discr, entry);
    if (this.started) session.start();
  }

  /** Changes a session's timers in place: a running session switches with a Poll Sequence, no flap. */
  updatePeer(peer: string, timers: Partial<BfdTimers>): void {
    const e = this.byPeer.get(canonical(peer));
    if (!e) throw new BfdConfigError('peer', peer, 'no such BFD session');
    e.session.setTimers(checkTimers({ ...DEFAULT_TIMERS, ...timers }, 'timers'));
  }

  removePeer(peer: string): void {
    const key = canonical(peer);
    const e = this.byPeer.get(key);
    if (!e) return;
    // Tell the neighbour (AdminDown is not a failure, RFC 5880 §6.8.16), then go.
    e.session.removeAllListeners();
    e.session.adminDown();
    e.session.stop();
    e.periodic?.close();
    e.sock.close();
    this.byPeer.delete(key);
    this.byDiscr.delete(e.session.localDiscr);
  }

  /**
   * Before a planned restart: each Up session asks its peer to wait `ms` (a Poll Sequence with a
   * long Desired Min TX, RFC 5882 §4.3), at most `waitMs` for the Finals. Returns the peers that
   * confirmed. The sessions keep running; stop() then closes them without AdminDown.
   */
  async holdOver(peers: { peer: string; ms: number }[], waitMs: number): Promise<string[]> {
    const held = await Promise.all(
      peers.map(async ({ peer, ms }) => {
        const e = this.byPeer.get(canonical(peer));
        return e && (await e.session.holdOver(ms, waitMs)) ? e.session.peer : undefined;
      }),
    );
    return held.filter((p): p is string => p !== undefined);
  }

  has(peer: string): boolean {
    return this.byPeer.has(canonical(peer));
  }

  stateOf(peer: string): StateName | undefined {
    return this.byPeer.get(canonical(peer))?.session.state;
  }

  session(peer: string): SessionStatus | undefined {
    return this.byPeer.get(canonical(peer))?.session.status();
  }

  sessions(): SessionStatus[] {
    return [...this.byPeer.values()].map((e) => e.session.status());
  }

  /**
   * Measurement (`measureTx`): the gaps between consecutive periodic packets of every session (ms)
   * and the longest any went out after its due time, since the last call.
   */
  drainTxGaps(): { gapsMs: number[]; maxLateMs: number } {
    const out = { gapsMs: [] as number[], maxLateMs: 0 };
    for (const e of this.byPeer.values()) {
      const d = e.session.drainTx();
      out.gapsMs.push(...d.gapsMs);
      out.maxLateMs = Math.max(out.maxLateMs, d.maxLateMs);
    }
    return out;
  }

  /** The sending thread's nice value (`priority`), once: the thread runs from the first sender on. */
  private prioritise(): void {
    const nice = this.opts.priority;
    if (nice === undefined || this.prioritised) return;
    this.prioritised = true;
    try {
      const tid = setPeriodicSenderPriority(nice);
      this.log.info({ event: 'bfd-priority', tid, nice }, 'BFD sending thread priority set');
    } catch (err) {
      this.log.info(
        { event: 'bfd-priority-unchanged', nice, err: (err as Error).message },
        'BFD sending thread runs at the process priority (no CAP_SYS_NICE)',
      );
    }
  }

  /** A socket bound to a source port of 49152–65535 (RFC 5881 §4), picked at random. */
  private openSource(peer: string, local: string | undefined): UdpSocket {
    const family = isIPv6(peer) ? 6 : 4;
    let lastErr: unknown;
    for (let i = 0; i < 64; i++) {
      const port = randomInt(SOURCE_PORT_MIN, SOURCE_PORT_MAX + 1);
      try {
        return openUdp({
          family,
          port,
          ttl: BFD_TTL,
          ...(local ? { bindAddress: local } : {}),
          ...(this.opts.netns ? { netns: this.opts.netns } : {}),
        });
      } catch (err) {
        lastErr = err;
        if ((err as { code?: string }).code !== 'EADDRINUSE') break;
      }
    }
    throw lastErr;
  }

  private onDatagram(buf: Buffer, meta: UdpMeta): void {
    if (meta.ttl !== BFD_TTL) {
      this.counters.ttlDropped++;
      this.log.debug(
        { event: 'bfd-ttl-drop', from: meta.address, ttl: meta.ttl },
        'BFD packet with TTL != 255',
      );
      return;
    }
    const d = decodePacket(buf);
    if (!d.ok) {
      this.counters.invalid++;
      this.log.debug({ event: 'bfd-invalid', from: meta.address, why: d.reason }, 'invalid BFD packet');
      return;
    }
    const from = meta.address.startsWith('::ffff:') ? meta.address.slice(7) : meta.address;
    let e = d.packet.yourDiscr !== 0 ? this.byDiscr.get(d.packet.yourDiscr) : this.byPeer.get(from);
    // A discriminator we do not know, from a peer whose session listens to resume: the session our
    // previous process left Up there (BfdSession `resumeListenMs`).
    if (!e && d.packet.state === State.UP && this.byPeer.get(from)?.session.resuming)
      e = this.byPeer.get(from);
    if (!e || e.session.peer !== from) {
      this.counters.noSession++;
      return;
    }
    const discr = e.session.localDiscr;
    e.session.receive(d.packet);
    if (e.session.localDiscr !== discr) {
      this.byDiscr.delete(discr);
      this.byDiscr.set(e.session.localDiscr, e);
    }
  }
}

/** The addon's periodic sender as a session's transmitter. */
function threadTransmit(sender: PeriodicSender): PeriodicTransmit {
  return {
    arm: (packet, intervalUs, detectMult, paced) => sender.arm(packet, intervalUs, detectMult, paced),
    update: (packet) => sender.update(packet),
    pause: () => sender.pause(),
    sent: () => sender.stats().sent,
    drain: () => {
      const s = sender.drain();
      return { gapsMs: s.gapsMs, maxLateMs: s.maxLateMs };
    },
    close: () => sender.close(),
  };
}
