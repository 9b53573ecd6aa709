// The worker side of BfdThread (thread.ts): a Bfd instance on a thread of its own, so its timers
// and sockets never wait behind the main thread's work (a large UPDATE burst). Messages only.
import { readFileSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { Bfd } from './bfd.js';
import type { Logger, StateChange } from './session.js';

export type ToWorker =
  | { op: 'start' }
  | { op: 'stop' }
  | { op: 'add'; config: import('./bfd.js').BfdPeerConfig }
  | { op: 'update'; peer: string; timers: Partial<import('./session.js').BfdTimers> }
  | { op: 'remove'; peer: string }
  | { op: 'status'; id: number }
  | { op: 'hold-over'; id: number; peers: { peer: string; ms: number }[]; waitMs: number };

export type FromWorker =
  | { type: 'state'; change: StateChange }
  | { type: 'tx'; peer: string; t: number }
  | { type: 'stall'; stall: StallReport }
  | { type: 'log'; level: 'info' | 'warn' | 'debug'; obj: object; msg?: string | undefined }
  | { type: 'status'; id: number; sessions: ReturnType<Bfd['sessions']>; counters: Bfd['counters'] }
  | { type: 'held'; id: number; peers: string[] }
  | { type: 'error'; op: string; message: string };

/**
 * The worker's loop ran late (measureStalls): where the time went, from the thread's own view.
 * `gapMs` is the time between two heartbeats less their interval; of it, `runQueueMs` the thread
 * waited for a CPU (runnable, not running: /proc schedstat), `cpuMs` it ran, `gcMs` its own
 * isolate collected garbage. The rest (`blockedMs`) it slept in the kernel (a page fault waiting on
 * the process's memory map lock, for one).
 */
export interface StallReport {
  /** Wall clock (ms since the epoch) at the end of the stall. */
  at: number;
  gapMs: number;
  runQueueMs: number;
  cpuMs: number;
  gcMs: number;
  blockedMs: number;
}

const port = parentPort!;
const send = (m: FromWorker) => port.postMessage(m);
const opts = workerData as {
  netns?: string;
  port?: number;
  measureTx?: boolean;
  logLevel?: 'info' | 'debug';
  resumeListenMs?: number;
  priority?: number;
  measureStalls?: boolean;
};

function logger(bindings: object): Logger {
  const at =
    (level: 'info' | 'warn' | 'debug') =>
    (obj: object, msg?: string): void => {
      if (level === 'debug' && opts.logLevel !== 'debug') return;
      send({ type: 'log', level, obj: { ...bindings, ...obj }, msg });
    };
  return {
    info: at('info'),
    warn: at('warn'),
    debug: at('debug'),
    child: (b) => logger({ ...bindings, ...b }),
  };
}

const bfd = new Bfd({
  logger: logger({}),
  ...(opts.netns ? { netns: opts.netns } : {}),
  ...(opts.port ? { port: opts.port } : {}),
  ...(opts.resumeListenMs !== undefined ? { resumeListenMs: opts.resumeListenMs } : {}),
  ...(opts.measureTx ? { onTransmit: (peer: string, t: number) => send({ type: 'tx', peer, t }) } : {}),
});
bfd.on('state', (change: StateChange) => send({ type: 'state', change }));

// This thread only, not the process: a higher CPU priority (lower nice) so that on a busy host a
// late timer does not make the peers' detection time run out. It costs little CPU (a few packets a
// second per session). Needs CAP_SYS_NICE; without it the thread runs at the process's priority.
if (opts.priority !== undefined) {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    setPriority(tid, opts.priority);
    send({
      type: 'log',
      level: 'info',
      obj: { event: 'bfd-priority', tid, nice: opts.priority },
      msg: 'BFD thread priority set',
    });
  } catch (err) {
    send({
      type: 'log',
      level: 'info',
      obj: { event: 'bfd-priority-unchanged', nice: opts.priority, err: (err as Error).message },
      msg: 'BFD thread runs at the process priority (no CAP_SYS_NICE)',
    });
  }
}

// Stall measurement: a 20 ms heartbeat; a beat more than 60 ms late is reported with this thread's
// run-queue wait and CPU time over the gap (schedstat: ns on CPU, ns waiting, timeslices) and the
// garbage collections of this isolate that overlap it.
if (opts.measureStalls) {
  const BEAT = 20;
  const schedstat = (): [number, number] | undefined => {
    try {
      const [cpu, wait] = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
      return [cpu! / 1e6, wait! / 1e6];
    } catch {
      return undefined;
    }
  };
  const gcs: { start: number; end: number }[] = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration });
    if (gcs.length > 64) gcs.splice(0, gcs.length - 64);
  }).observe({ entryTypes: ['gc'] });
  let last = performance.now();
  let lastStat = schedstat();
  const beat = setInterval(() => {
    const now = performance.now();
    const stat = schedstat();
    const gap = now - last - BEAT;
    if (gap > 60) {
      const gcMs = gcs.reduce((s, g) => s + Math.max(0, Math.min(g.end, now) - Math.max(g.start, last)), 0);
      const cpuMs = stat && lastStat ? stat[0] - lastStat[0] : Number.NaN;
      const runQueueMs = stat && lastStat ? stat[1] - lastStat[1] : Number.NaN;
      const r = (x: number) => Math.round(x * 10) / 10;
      send({
        type: 'stall',
        stall: {
          at: Date.now(),
          gapMs: r(gap),
          runQueueMs: r(runQueueMs),
          cpuMs: r(cpuMs),
          gcMs: r(gcMs),
          blockedMs: r(now - last - runQueueMs - cpuMs),
        },
      });
    }
    last = now;
    lastStat = stat;
  }, BEAT);
  beat.unref();
}

port.on('message', (m: ToWorker) => {
  try {
    switch (m.op) {
      case 'start':
        bfd.start();
        return;
      case 'stop':
        bfd.stop();
        port.close();
        return;
      case 'add':
        bfd.addPeer(m.config);
        return;
      case 'update':
        bfd.updatePeer(m.peer, m.timers);
        return;
      case 'remove':
        bfd.removePeer(m.peer);
        return;
      case 'status':
        send({ type: 'status', id: m.id, sessions: bfd.sessions(), counters: bfd.counters });
        return;
      case 'hold-over':
        void bfd.holdOver(m.peers, m.waitMs).then((peers) => send({ type: 'held', id: m.id, peers }));
        return;
    }
  } catch (err) {
    send({ type: 'error', op: m.op, message: (err as Error).message });
  }
});
