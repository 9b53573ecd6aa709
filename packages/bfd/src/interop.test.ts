// BFD against real neighbours in namespaces: BIRD 2's bfd protocol and FRR's bfdd. Sessions come
// Up, timers are negotiated, and each side detects the other's death by its detection timer.
import { cleanupStale, type Netns, NetnsSet, ProcessGroup, vethPair, waitFor } from '@podnet/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, startBirdBfd, startFrrBfd } from './__fixtures__/peers.js';
import { Bfd } from './bfd.js';
import type { StateChange } from './session.js';

const lab = new NetnsSet();
const procs = new ProcessGroup();
let ours: Netns;
let theirs: Netns;

beforeAll(async () => {
  await cleanupStale();
  ours = await lab.create('bfdus');
  theirs = await lab.create('bfdpeer');
  await vethPair(ours, 'v0', theirs, 'v1');
  await ours.ip('addr', 'add', '10.77.0.1/24', 'dev', 'v0');
  await theirs.ip('addr', 'add', '10.77.0.2/24', 'dev', 'v1');
  await ours.ip('addr', 'add', 'fd77::1/64', 'dev', 'v0', 'nodad');
  await theirs.ip('addr', 'add', 'fd77::2/64', 'dev', 'v1', 'nodad');
});

afterEach(() => procs.stopAll());
afterAll(async () => {
  await procs.stopAll();
  await lab.destroy();
});

const timers = { minTx: 300, minRx: 300, multiplier: 3 };

function bfdIn(ns: Netns): Bfd {
  const b = new Bfd({ netns: ns.path });
  b.start();
  return b;
}

/** Waits for our session to `peer` to report `to`, and returns that change. */
function nextState(b: Bfd, peer: string, to: string): Promise<StateChange> {
  return new Promise((resolve) => {
    const on = (c: StateChange) => {
      if (c.peer === peer && c.to === to) {
        b.off('state', on);
        resolve(c);
      }
    };
    b.on('state', on);
  });
}

async function upBothWays(b: Bfd, d: Daemon, peer: string, ourAddr: string): Promise<void> {
  await waitFor(`our BFD session to ${peer} Up`, () => b.session(peer)?.state === 'up', {
    timeoutMs: 20_000,
  });
  await waitFor(
    `the neighbour's session to ${ourAddr} Up`,
    async () => /^up$/i.test((await d.session(ourAddr))?.state ?? ''),
    { timeoutMs: 20_000 },
  );
}

/** Our side stops without a word (no AdminDown); the neighbour must notice by itself. */
async function neighbourDetectsOurDeath(b: Bfd, d: Daemon, ourAddr: string): Promise<number> {
  const t0 = performance.now();
  b.stop();
  await waitFor(
    `the neighbour to see ${ourAddr} Down`,
    async () => /^down$/i.test((await d.session(ourAddr))?.state ?? ''),
    { timeoutMs: 20_000, intervalMs: 20 },
  );
  return performance.now() - t0;
}

describe('BFD with BIRD 2', () => {
  it('comes Up over IPv4 and IPv6 with 300 ms x 3 negotiated, and each side detects the other dying', async () => {
    const bird = await startBirdBfd(theirs, procs, { neighbor: '10.77.0.1', ...timers, extra: ['fd77::1'] });
    const b = bfdIn(ours);
    try {
      b.addPeer({ peer: '10.77.0.2', timers });
      b.addPeer({ peer: 'fd77::2', timers });
      await upBothWays(b, bird, '10.77.0.2', '10.77.0.1');
      await upBothWays(b, bird, 'fd77::2', 'fd77::1');
      // Negotiated once the Poll Sequence that follows Up is over.
      await waitFor('the poll sequence to end', () => b.session('10.77.0.2')?.polling === false);
      const s = b.session('10.77.0.2')!;
      expect(s.txIntervalMs).toBe(300);
      expect(s.detectionTimeMs).toBe(900);
      expect(s.remoteMultiplier).toBe(3);
      const theirView = await bird.session('10.77.0.1');
      expect(theirView?.txMs).toBe(300);
      expect(theirView?.detectMs).toBe(900);
      expect(b.counters.ttlDropped).toBe(0);

      // New timers on a running session: a Poll Sequence, no flap on either side.
      const since = s.since;
      b.updatePeer('10.77.0.2', { minTx: 500, minRx: 500, multiplier: 3 });
      await waitFor('BIRD to send every 500 ms', async () => (await bird.session('10.77.0.1'))?.txMs === 500);
      await waitFor('our poll to end', () => b.session('10.77.0.2')?.polling === false);
      expect(b.session('10.77.0.2')).toMatchObject({
        state: 'up',
        since,
        txIntervalMs: 500,
        detectionTimeMs: 1500,
      });
      expect((await bird.session('10.77.0.1'))?.state).toBe('Up');

      // The neighbour dies: our detection timer fires.
      const detect = b.session('10.77.0.2')!.detectionTimeMs;
      const down = nextState(b, '10.77.0.2', 'down');
      const t0 = performance.now();
      bird.kill();
      const c = await down;
      const ms = performance.now() - t0;
      expect(c.diag).toBe('control-detection-time-expired');
      console.log(`BIRD killed: our session Down after ${ms.toFixed(0)} ms (detection time ${detect} ms)`);
    } finally {
      b.stop();
    }
    // And the other way: BIRD detects us going silent.
    const bird2 = await startBirdBfd(theirs, procs, { neighbor: '10.77.0.1', ...timers });
    const b2 = bfdIn(ours);
    b2.addPeer({ peer: '10.77.0.2', timers });
    await upBothWays(b2, bird2, '10.77.0.2', '10.77.0.1');
    const ms = await neighbourDetectsOurDeath(b2, bird2, '10.77.0.1');
    console.log(
      `we went silent: BIRD saw Down after ${ms.toFixed(0)} ms, polled every 20 ms (detection 900 ms)`,
    );
  }, 90_000);
});

describe('BFD with FRR bfdd', () => {
  it('comes Up with 300 ms x 3 negotiated, and each side detects the other dying', async () => {
    const frr = await startFrrBfd(theirs, procs, { neighbor: '10.77.0.1', local: '10.77.0.2', ...timers });
    const b = bfdIn(ours);
    try {
      b.addPeer({ peer: '10.77.0.2', timers });
      await upBothWays(b, frr, '10.77.0.2', '10.77.0.1');
      await waitFor('the poll sequence to end', () => b.session('10.77.0.2')?.polling === false);
      const s = b.session('10.77.0.2')!;
      expect(s.txIntervalMs).toBe(300);
      expect(s.detectionTimeMs).toBe(900);
      expect((await frr.session('10.77.0.1'))?.txMs).toBe(300);

      const down = nextState(b, '10.77.0.2', 'down');
      const t0 = performance.now();
      frr.kill();
      const c = await down;
      expect(c.diag).toBe('control-detection-time-expired');
      console.log(
        `bfdd killed: our session Down after ${(performance.now() - t0).toFixed(0)} ms (detection 900 ms)`,
      );
    } finally {
      b.stop();
    }
    await procs.stopAll();
    const frr2 = await startFrrBfd(theirs, procs, { neighbor: '10.77.0.1', local: '10.77.0.2', ...timers });
    const b2 = bfdIn(ours);
    b2.addPeer({ peer: '10.77.0.2', timers });
    await upBothWays(b2, frr2, '10.77.0.2', '10.77.0.1');
    const ms = await neighbourDetectsOurDeath(b2, frr2, '10.77.0.1');
    console.log(
      `we went silent: bfdd saw Down after ${ms.toFixed(0)} ms, polled every 20 ms (detection 900 ms)`,
    );
  }, 90_000);
});

/** Our session with BIRD Up on both sides and its Poll Sequence over; returns the changes seen. */
async function upWithBird(b: Bfd, bird: Daemon): Promise<StateChange[]> {
  const changes: StateChange[] = [];
  b.on('state', (c) => changes.push(c));
  b.addPeer({ peer: '10.77.0.2', timers });
  await upBothWays(b, bird, '10.77.0.2', '10.77.0.1');
  await waitFor('the poll sequence to end', () => b.session('10.77.0.2')?.polling === false);
  return changes;
}

/** An event loop as busy as a full-table UPDATE burst: nothing else runs on it for `ms`. */
function blockLoop(ms: number): void {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    /* busy */
  }
}

describe("periodic packets from the addon's sending thread, with BIRD 2", () => {
  it('stays Up on both sides while the event loop is blocked for three detection times', async () => {
    const bird = await startBirdBfd(theirs, procs, { neighbor: '10.77.0.1', ...timers });
    const b = bfdIn(ours);
    try {
      const changes = await upWithBird(b, bird);
      const before = b.session('10.77.0.2')!;
      const seen = changes.length;
      // Three times the detection time (900 ms) on both sides.
      blockLoop(2700);
      const sentDuring = b.session('10.77.0.2')!.sent - before.sent;
      // Then the loop reads what arrived meanwhile before its detection timer decides, and BIRD had
      // our packets all along.
      await new Promise((r) => setTimeout(r, 1500));
      const after = b.session('10.77.0.2')!;
      expect(sentDuring).toBeGreaterThanOrEqual(9);
      expect(changes.slice(seen)).toEqual([]);
      expect(after.state).toBe('up');
      expect(after.since).toBe(before.since);
      expect((await bird.session('10.77.0.1'))?.state).toBe('Up');
    } finally {
      b.stop();
    }
  }, 60_000);

  it('fails the same way without it: periodic packets on the blocked loop make BIRD declare Down', async () => {
    const bird = await startBirdBfd(theirs, procs, { neighbor: '10.77.0.1', ...timers });
    const b = new Bfd({ netns: ours.path, transmit: 'loop' });
    b.start();
    try {
      const changes = await upWithBird(b, bird);
      const before = b.session('10.77.0.2')!.sent;
      const seen = changes.length;
      blockLoop(2700);
      expect(b.session('10.77.0.2')!.sent).toBe(before);
      // BIRD's Down (detection time expired) waits in our socket; read, it takes our session down.
      await waitFor(
        'our session to read that BIRD declared it Down',
        () => changes.slice(seen).some((c) => c.from === 'up' && c.to === 'down'),
        { timeoutMs: 5000 },
      );
      const down = changes.slice(seen).find((c) => c.to === 'down')!;
      expect(down.reason).toBe('neighbor-signaled-down');
    } finally {
      b.stop();
    }
  }, 60_000);
});
