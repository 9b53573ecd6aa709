// The worker side of BfdThread (thread.ts): a Bfd instance on a thread of its own, so its timers
// and sockets never wait behind the main thread's work (a large UPDATE burst). Messages only.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
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
  | { type: 'log'; level: 'info' | 'warn' | 'debug'; obj: object; msg?: string | undefined }
  | { type: 'status'; id: number; sessions: ReturnType<Bfd['sessions']>; counters: Bfd['counters'] }
  | { type: 'held'; id: number; peers: string[] }
  | { type: 'error'; op: string; message: string };

const port = parentPort!;
const send = (m: FromWorker) => port.postMessage(m);
const opts = workerData as {
  netns?: string;
  port?: number;
  measureTx?: boolean;
  logLevel?: 'info' | 'debug';
  resumeListenMs?: number;
  priority?: number;
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
