// BFD beside the BGP speaker (RFC 5882 §4.2): one BFD session per peer address that has BFD on,
// shared by every BGP session to that address. When a session that was Up goes Down, each BGP
// session to that address goes down at once (Cease/BFD Down, routes withdrawn) and stays down until
// BFD is Up again; the reason is logged and counted. With `controlPlaneCheck` and graceful restart,
// a peer whose BFD shares fate with its control plane (C bit clear) keeps its routes stale as in a
// restart (RFC 5882 §4.3); with the C bit set they go at once.
import { Bfd, type BfdInstance, type StateChange } from '@podnet/bfd';
import type { Speaker } from '@podnet/bgp';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { DesiredPeer } from '../model.js';

const BFD_STATES = ['admin-down', 'down', 'init', 'up'] as const;

export class BfdLink {
  private readonly given: BfdInstance | undefined;
  private instance: BfdInstance | undefined;
  /** Desired BGP peers with BFD on, by key; BFD sessions are per address. */
  private readonly peers = new Map<string, DesiredPeer>();
  private readonly log: Logger;
  private readonly downs: Counter<'peer' | 'diag'>;
  private readonly state: Gauge<'peer' | 'state'>;
  private readonly restarting: boolean;
  /** Addresses that had a session in this process: only a first session may resume an old one. */
  private readonly seen = new Set<string>();

  constructor(
    private readonly speaker: () => Speaker | undefined,
    opts: {
      logger: Logger;
      registry?: Registry | undefined;
      bfd?: BfdInstance | undefined;
      /** Coming back from a graceful stop: sessions listen first, to resume the ones held over. */
      restarting?: boolean | undefined;
    },
  ) {
    this.log = opts.logger.child({ component: 'bfd' });
    this.given = opts.bfd;
    this.restarting = opts.restarting === true;
    const registers = opts.registry ? [opts.registry] : [];
    this.downs = new Counter({
      name: 'podnet_bfd_session_down_total',
      help: 'BFD sessions that went from Up to Down (each takes the BGP sessions to that address down), by diagnostic',
      labelNames: ['peer', 'diag'],
      registers,
    });
    this.state = new Gauge({
      name: 'podnet_bfd_session_state',
      help: 'BFD session state per peer address: 1 for the current state, 0 for the others',
      labelNames: ['peer', 'state'],
      registers,
    });
  }

  /**
   * The BFD instance, made with the first peer that has BFD on. Its periodic packets go out from the
   * native addon's sending thread, at nice -10 where the agent may (CAP_SYS_NICE), so a busy event
   * loop (a full-table UPDATE burst) does not delay them; an agent without BFD peers runs no thread.
   */
  private get bfd(): BfdInstance {
    if (!this.instance) {
      const b = this.given ?? new Bfd({ logger: this.log, priority: -10 });
      b.on('error', (err: Error) =>
        this.log.error({ event: 'bfd-error', err: err.message }, 'BFD: sessions may be missing'),
      );
      b.on('state', (c: StateChange) => this.onState(c));
      this.instance = b;
    }
    return this.instance;
  }

  private started = false;
  private failed = false;

  /** Opens the BFD sockets with the first session that needs them; a failure is logged, BGP runs on. */
  private ensureStarted(): boolean {
    if (this.started) return true;
    if (this.failed) return false;
    try {
      this.bfd.start();
      this.started = true;
    } catch (err) {
      this.failed = true;
      this.log.error(
        { event: 'bfd-start-failed', err: (err as Error).message },
        'BFD could not open UDP 3784: BGP sessions run without BFD',
      );
    }
    return this.started;
  }

  stop(): void {
    if (this.started) this.bfd.stop();
    this.started = false;
  }

  /**
   * Before a graceful stop (RFC 5882 §4.3): our BFD stops with this process (C = 0), and a peer that
   * takes BGP down on BFD Down (BIRD's `bfd on`) would purge our routes although graceful restart
   * keeps them. So each Up session to a peer with graceful restart asks the peer to wait for its
   * restart time (a Poll Sequence with a long Desired Min TX), and the next process resumes the
   * session. Waits at most `waitMs` for the peers' Finals.
   */
  async holdOver(waitMs = 1500): Promise<void> {
    if (!this.started) return;
    const byAddress = new Map<string, number>();
    for (const p of this.peers.values()) {
      if (!p.gracefulRestart?.enabled) continue;
      const ms = p.gracefulRestart.restartTime * 1000;
      byAddress.set(p.address, Math.max(ms, byAddress.get(p.address) ?? 0));
    }
    const peers = [...byAddress].map(([peer, ms]) => ({ peer, ms }));
    if (peers.length === 0) return;
    const held = await this.bfd.holdOver(peers, waitMs);
    this.log.info(
      { event: 'bfd-hold-over', held, notHeld: peers.map((p) => p.peer).filter((p) => !held.includes(p)) },
      'BFD sessions held over the restart',
    );
  }

  /** A BGP peer was added or changed: start, retime or stop the BFD session to its address. */
  sync(p: DesiredPeer): void {
    if (p.bfd) this.peers.set(p.key, p);
    else if (this.peers.delete(p.key)) this.release(p);
    this.refresh(p.address);
  }

  /** BFD no longer watches this BGP peer: it may connect again if BFD held it down. */
  private release(p: DesiredPeer): void {
    try {
      this.speaker()?.peerReachable(p.address, p.port);
    } catch {
      // Not (or no longer) a peer of the speaker.
    }
  }

  remove(p: DesiredPeer): void {
    this.peers.delete(p.key);
    this.refresh(p.address);
  }

  private refresh(address: string): void {
    const users = [...this.peers.values()].filter((p) => p.address === address);
    if (users.length === 0) {
      if (this.instance?.has(address)) {
        this.bfd.removePeer(address);
        for (const s of BFD_STATES) this.state.remove(address, s);
      }
      return;
    }
    if (!this.ensureStarted()) return;
    // Sessions shared by several BGP peers run the fastest timers any of them asks for.
    const b = users.map((p) => p.bfd!);
    const timers = {
      minTx: Math.min(...b.map((x) => x.minTx)),
      minRx: Math.min(...b.map((x) => x.minRx)),
      multiplier: Math.min(...b.map((x) => x.multiplier)),
    };
    const resume = this.restarting && !this.seen.has(address);
    this.seen.add(address);
    this.bfd.addPeer({ peer: address, local: users[0]!.localAddress, timers, resume });
    const state = this.bfd.stateOf(address);
    if (state) this.setStateGauge(address, state);
  }

  private setStateGauge(peer: string, state: string): void {
    for (const s of BFD_STATES) this.state.set({ peer, state: s }, s === state ? 1 : 0);
  }

  private onState(c: StateChange): void {
    this.setStateGauge(c.peer, c.to);
    const speaker = this.speaker();
    const users = [...this.peers.values()].filter((p) => p.address === c.peer);
    if (c.to === 'up') {
      for (const p of users) this.release(p);
      return;
    }
    if (c.from !== 'up') return;
    this.downs.inc({ peer: c.peer, diag: c.diag });
    for (const p of users) {
      const graceful = p.bfd!.controlPlaneCheck && !c.remoteCpi;
      let keptStale = false;
      try {
        keptStale =
          speaker?.peerUnreachable(p.address, {
            port: p.port,
            reason: `bfd-${c.diag}`,
            graceful,
            forwardingFailed: c.remoteCpi,
          }) ?? false;
      } catch {
        continue;
      }
      this.log.warn(
        {
          event: 'bfd-down',
          peer: p.key,
          diag: c.diag,
          reason: c.reason,
          remoteCpi: c.remoteCpi,
          keptStale,
        },
        'BFD session down: BGP session taken down until BFD is Up again',
      );
    }
  }
}
