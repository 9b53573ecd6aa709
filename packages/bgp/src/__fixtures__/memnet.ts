// An in-memory network for unit tests: speakers connect to each other through fake sockets, so
// no packet leaves the process (and the root namespace is never used).
import { EventEmitter } from 'node:events';
import type { Conn, ConnectOptions, Transport } from '../session/session.js';
import type { Speaker } from '../speaker.js';

export class MemConn extends EventEmitter implements Conn {
  peer?: MemConn;
  closed = false;
  written: Buffer[] = [];
  constructor(
    readonly localAddress: string,
    readonly remoteAddress: string,
  ) {
    super();
  }
  write(b: Uint8Array): boolean {
    if (this.closed) return false;
    const copy = Buffer.from(b);
    this.written.push(copy);
    const p = this.peer;
    setImmediate(() => {
      if (p && !p.closed) p.emit('data', copy);
    });
    return true;
  }
  end(): void {
    this.destroy();
  }
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    setImmediate(() => this.emit('close'));
    const p = this.peer;
    if (p && !p.closed) setImmediate(() => p.destroy());
  }
}

/** A little network of speakers addressed by IP; `connect` reaches the speaker registered there. */
export class MemNet {
  private readonly hosts = new Map<string, Speaker>();
  /** Addresses that currently drop everything (simulates a dead peer). */
  readonly blackholed = new Set<string>();

  register(address: string, s: Speaker): void {
    this.hosts.set(address, s);
  }

  transport(localAddress: string): Transport {
    return {
      connect: (opts: ConnectOptions) => {
        const a = new MemConn(localAddress, opts.host);
        const target = this.hosts.get(opts.host);
        setImmediate(() => {
          if (!target || this.blackholed.has(opts.host)) {
            a.emit('error', new Error('ECONNREFUSED'));
            a.destroy();
            return;
          }
          const b = new MemConn(opts.host, localAddress);
          a.peer = b;
          b.peer = a;
          target.acceptConnection(b, localAddress);
          a.emit('connect');
        });
        return a;
      },
    };
  }
}
