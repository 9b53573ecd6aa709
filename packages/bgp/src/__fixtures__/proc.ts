// Test helper: a bgp-ts Speaker running in a child process inside a test namespace, so that its
// sockets live in that namespace. Talks to test-harness/speaker-proc.mjs over JSON lines.
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Netns, ProcessGroup } from '@podnet/testkit';
import type { PeerConfig, PeerStatus, RibEntry, SpeakerOptions } from '../speaker.js';

const harness = fileURLToPath(new URL('../../test-harness/speaker-proc.mjs', import.meta.url));

export class SpeakerProc {
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly events: { event: string; data: unknown }[] = [];
  stderr = '';
  readonly child: ChildProcess;

  constructor(ns: Netns, group: ProcessGroup, opts: Omit<SpeakerOptions, 'logger' | 'clock' | 'transport'>) {
    this.child = group.add(ns.spawn(process.execPath, [harness, JSON.stringify(opts)]));
    let buf = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const m = JSON.parse(line) as {
          id?: number;
          ok?: boolean;
          result?: unknown;
          error?: string;
          event?: string;
          data?: unknown;
        };
        if (m.event) this.events.push({ event: m.event, data: m.data });
        else if (m.id !== undefined) {
          const w = this.waiting.get(m.id);
          this.waiting.delete(m.id);
          if (m.ok) w?.resolve(m.result);
          else w?.reject(new Error(m.error));
        }
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-20_000);
    });
    this.child.on('exit', (code, signal) => {
      this.exited = `speaker process exited (code ${code}, signal ${signal}); stderr: ${this.stderr.slice(-2000)}`;
      for (const w of this.waiting.values()) w.reject(new Error(this.exited));
      this.waiting.clear();
    });
  }

  /** Why the process is gone, once it is. */
  exited?: string;

  call<T = unknown>(op: string, ...args: unknown[]): Promise<T> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.stdin!.write(`${JSON.stringify({ id, op, args })}\n`);
    });
  }

  start = () => this.call('start');
  stop = (o: { graceful?: boolean } = {}) => this.call('stop', o);
  addPeer = (c: PeerConfig) => this.call('addPeer', c);
  originate = (p: string, a: object = {}) => this.call('originate', p, a);
  withdraw = (p: string) => this.call('withdraw', p);
  locRib = () => this.call<RibEntry[]>('locRib');
  lookup = (p: string) => this.call<RibEntry | null>('lookup', p);
  peers = () => this.call<PeerStatus[]>('peers');

  /** Ends the process by closing stdin (it stops the speaker and exits), then by pid if needed. */
  async close(group: ProcessGroup): Promise<void> {
    this.child.stdin?.end();
    await group.stop(this.child, 3000);
  }
}
