// BfdThread: the same surface as Bfd, with the sessions (timers, sockets, state machines) on a
// worker thread. The main thread only sends configuration and receives state changes, so a busy
// main event loop (a full-table UPDATE burst) delays neither transmission nor reception.
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { type BfdCounters, type BfdPeerConfig, canonical } from './bfd.js';
import type { StateName } from './packet.js';
import type { BfdTimers, Logger, SessionStatus, StateChange } from './session.js';
import { silentLogger } from './session.js';
import type { FromWorker, StallReport, ToWorker } from './worker.js';

export type { StallReport } from './worker.js';

export interface BfdThreadOptions {
  netns?: string | undefined;
  port?: number | undefined;
  logger?: Logger | undefined;
  /** Called for each packet the worker sent (peer, the worker's clock in ms): jitter measurements. */
  onTransmit?: ((peer: string, t: number) => void) | undefined;
  /**
   * Measurement (benchmarks): called each time the worker's loop ran more than 60 ms late, with
   * where the time went (run queue, CPU, garbage collection, blocked). Off when absent.
   */
  onStall?: ((s: StallReport) => void) | undefined;
  /** See BfdOptions.resumeListenMs. */
  resumeListenMs?: number | undefined;
  /**
   * Nice value of the worker thread alone (default -10: ahead of ordinary work, so a busy host
   * delays BFD less; needs CAP_SYS_NICE, else logged and left). `null` leaves it alone.
   */
  priority?: number | null | undefined;
}

/** The part of Bfd and BfdThread that a client (the agent) uses. */
export interface BfdInstance {
  start(): void;
  stop(): void;
  addPeer(c: BfdPeerConfig): void;
  updatePeer(peer: string, timers: Partial<BfdTimers>): void;
  removePeer(peer: string): void;
  /** Before a planned restart: Up sessions ask their peers to wait (see Bfd.holdOver). */
  holdOver(peers: { peer: string; ms: number }[], waitMs: number): Promise<string[]>;
  has(peer: string): boolean;
  /** The last known state of the session to `peer`. */
  stateOf(peer: string): StateName | undefined;
  on(ev: 'state' | 'down', fn: (c: StateChange) => void): this;
  on(ev: 'error', fn: (err: Error) => void): this;
}

export class BfdThread extends EventEmitter implements BfdInstance {
  private readonly worker: Worker;
  private readonly log: Logger;
  private readonly states = new Map<string, StateName>();
  private readonly waiting = new Map<
    number,
    (s: { sessions: SessionStatus[]; counters: BfdCounters }) => void
  >();
  private readonly held = new Map<number, (peers: string[]) => void>();
  private seq = 0;

  constructor(opts: BfdThreadOptions = {}) {
    super();
    this.log = (opts.logger ?? silentLogger).child({ component: 'bfd' });
    // From the sources (vitest), the worker runs the built copy: Node cannot load TS imports itself.
    const url = import.meta.url.endsWith('.ts')
      ? new URL('../dist/worker.js', import.meta.url)
      : new URL('./worker.js', import.meta.url);
    this.worker = new Worker(url, {
      workerData: {
        netns: opts.netns,
        port: opts.port,
        measureTx: opts.onTransmit !== undefined,
        measureStalls: opts.onStall !== undefined,
        resumeListenMs: opts.resumeListenMs,
        priority: opts.priority === null ? undefined : (opts.priority ?? -10),
      },
    });
    this.worker.unref();
    this.worker.on('message', (m: FromWorker) => {
      switch (m.type) {
        case 'state':
          this.states.set(m.change.peer, m.change.to);
          this.emit('state', m.change);
          if (m.change.from === 'up' && (m.change.to === 'down' || m.change.to === 'admin-down'))
            this.emit('down', m.change);
          return;
        case 'tx':
          opts.onTransmit?.(m.peer, m.t);
          return;
        case 'stall':
          opts.onStall?.(m.stall);
          return;
        case 'log':
          this.log[m.level](m.obj, m.msg);
          return;
        case 'status':
          this.waiting.get(m.id)?.({ sessions: m.sessions, counters: m.counters });
          this.waiting.delete(m.id);
          return;
        case 'held':
          this.held.get(m.id)?.(m.peers);
          this.held.delete(m.id);
          return;
        case 'error':
          this.emit('error', new Error(`bfd worker ${m.op}: ${m.message}`));
          return;
      }
    });
    this.worker.on('error', (err) => this.emit('error', err));
  }

  private post(m: ToWorker): void {
    this.worker.postMessage(m);
  }

  start(): void {
    this.post({ op: 'start' });
  }

  stop(): void {
    this.post({ op: 'stop' });
    this.states.clear();
  }

  addPeer(c: BfdPeerConfig): void {
    const peer = canonical(c.peer);
    if (!this.states.has(peer)) this.states.set(peer, 'down');
    this.post({ op: 'add', config: c });
  }

  updatePeer(peer: string, timers: Partial<BfdTimers>): void {
    this.post({ op: 'update', peer, timers });
  }

  removePeer(peer: string): void {
    this.states.delete(canonical(peer));
    this.post({ op: 'remove', peer });
  }

  holdOver(peers: { peer: string; ms: number }[], waitMs: number): Promise<string[]> {
    const id = ++this.seq;
    return new Promise((resolve) => {
      this.held.set(id, resolve);
      this.post({ op: 'hold-over', id, peers, waitMs });
    });
  }

  has(peer: string): boolean {
    return this.states.has(canonical(peer));
  }

  stateOf(peer: string): StateName | undefined {
    return this.states.get(canonical(peer));
  }

  /** Sessions and counters as the worker sees them now. */
  status(): Promise<{ sessions: SessionStatus[]; counters: BfdCounters }> {
    const id = ++this.seq;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.post({ op: 'status', id });
    });
  }
}
