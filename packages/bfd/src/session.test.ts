// Two sessions wired back to back on the fake clock: the three-way handshake, detection, Poll/Final
// for timer changes, jitter, AdminDown. No sockets, no sleeps.
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../bgp/src/__fixtures__/clock.js';
import { detectionTime, initialVars, jittered, transition, txInterval } from './fsm.js';
import { type BfdPacket, Diag, decodePacket, State } from './packet.js';
import { BfdSession, type StateChange } from './session.js';

/** A Control packet from the peer: Down, 300 ms x 3, its discriminator 5; `over` changes fields. */
function control(over: Partial<BfdPacket> = {}): BfdPacket {
  return {
    version: 1,
    diag: 0,
    state: State.DOWN,
    poll: false,
    final: false,
    cpi: false,
    auth: false,
    demand: false,
    multipoint: false,
    detectMult: 3,
    myDiscr: 5,
    yourDiscr: 0,
    desiredMinTx: 300_000,
    requiredMinRx: 300_000,
    requiredMinEchoRx: 0,
    ...over,
  };
}

interface Wire {
  clock: FakeClock;
  a: BfdSession;
  b: BfdSession;
  /** Packets a sent (decoded), in order, with the clock time. */
  fromA: { t: number; p: BfdPacket }[];
  changes: StateChange[];
  /** Clock times at which a received a packet. */
  toA: number[];
  /** Cut the link: packets are dropped both ways. */
  cut: { a: boolean; b: boolean };
}

function wire(random = () => 0.5): Wire {
  const clock = new FakeClock();
  const w = { clock, fromA: [], toA: [], changes: [], cut: { a: false, b: false } } as unknown as Wire;
  const deliver = (to: () => BfdSession, buf: Buffer, dropped: () => boolean, log?: Wire['fromA']) => {
    const d = decodePacket(buf);
    if (!d.ok) throw new Error(d.reason);
    log?.push({ t: clock.now(), p: d.packet });
    if (dropped()) return;
    // Delivered 1 ms later, like a wire.
    clock.setTimeout(() => {
      if (to() === w.a) w.toA.push(clock.now());
      to().receive(d.packet);
    }, 1);
  };
  const timers = { minTx: 300, minRx: 300, multiplier: 3 };
  w.a = new BfdSession({
    peer: 'b',
    localDiscr: 1,
    timers,
    clock,
    random,
    send: (buf) =>
      deliver(
        () => w.b,
        buf,
        () => w.cut.a,
        w.fromA,
      ),
  });
  w.b = new BfdSession({
    peer: 'a',
    localDiscr: 2,
    timers,
    clock,
    random,
    send: (buf) =>
      deliver(
        () => w.a,
        buf,
        () => w.cut.b,
      ),
  });
  w.a.on('state', (c: StateChange) => w.changes.push(c));
  w.b.on('state', (c: StateChange) => w.changes.push(c));
  return w;
}

function up(w: Wire): void {
  w.a.start();
  w.b.start();
  for (let i = 0; i < 100 && !(w.a.state === 'up' && w.b.state === 'up' && !w.a.variables.polling); i++)
    w.clock.advance(100);
  expect(w.a.state).toBe('up');
  expect(w.b.state).toBe('up');
}

describe('BFD session state machine', () => {
  it('comes Up through Down, Init and Up on both sides', () => {
    const w = wire();
    up(w);
    const path = (peer: string) => w.changes.filter((c) => c.peer === peer).map((c) => c.to);
    expect([path('a'), path('b')]).toContainEqual(['init', 'up']);
    expect(w.changes.every((c) => c.from !== 'up')).toBe(true);
  });

  it('sends at most once a second before Up, then at the negotiated 300 ms less jitter', () => {
    const w = wire(() => 0.999);
    w.a.start();
    w.clock.advance(1);
    const first = w.fromA.length;
    w.clock.advance(999);
    // Jitter 25% at most: the second packet is due 750 ms after the first.
    expect(w.fromA.length - first).toBe(1);
    expect(w.fromA.at(-1)!.p.desiredMinTx).toBe(1_000_000);
    w.b.start();
    up(w);
    const since = w.fromA.length;
    w.clock.advance(3000);
    const gaps = w.fromA
      .slice(since)
      .map((x, i, all) => (i ? x.t - all[i - 1]!.t : 0))
      .slice(1);
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(225);
    for (const g of gaps) expect(g).toBeLessThanOrEqual(300);
  });

  it('goes Down with diag 1 after remote multiplier x agreed interval of silence, and forgets the remote discriminator', () => {
    const w = wire();
    up(w);
    expect(w.a.status().detectionTimeMs).toBe(900);
    w.cut.b = true;
    w.clock.advance(1);
    const last = w.toA.at(-1)!;
    w.clock.advance(last + 899 - w.clock.now());
    expect(w.a.state).toBe('up');
    w.clock.advance(1);
    expect(w.a.state).toBe('down');
    const c = w.changes.at(-1)!;
    expect(c).toMatchObject({ peer: 'b', from: 'up', to: 'down', diag: 'control-detection-time-expired' });
    expect(w.a.variables.remoteDiscr).toBe(0);
    // b hears a's Down (diag 1, your discriminator 0) and goes Down with diag 3.
    w.clock.advance(1100);
    expect(w.b.state).toBe('down');
    expect(w.b.variables.localDiag).toBe(Diag.NEIGHBOR_SIGNALED_SESSION_DOWN);
  });

  it('changes timers with a Poll Sequence and never leaves Up', () => {
    const w = wire();
    up(w);
    const changesBefore = w.changes.length;
    w.a.setTimers({ minTx: 1000, minRx: 1000, multiplier: 5 });
    w.clock.advance(1);
    // Packets carry P until b answers with F; the slower transmit interval waits for it.
    expect(w.a.variables.polling).toBe(true);
    expect(txInterval(w.a.variables)).toBe(300_000);
    w.clock.advance(2000);
    expect(w.a.variables.polling).toBe(false);
    expect(w.fromA.some((x) => x.p.poll)).toBe(true);
    expect(txInterval(w.a.variables)).toBe(1_000_000);
    // b's detection time of a: a's multiplier 5 x max(b's 300 rx, a's 1000 tx).
    expect(detectionTime(w.b.variables)).toBe(5_000_000);
    w.clock.advance(20_000);
    expect(w.changes.length).toBe(changesBefore);
    expect(w.a.state).toBe('up');
    expect(w.b.state).toBe('up');
  });

  it('AdminDown tells the neighbour, which goes Down with diag 3 and not by detection', () => {
    const w = wire();
    up(w);
    w.a.adminDown();
    w.clock.advance(1500);
    expect(w.a.state).toBe('admin-down');
    expect(w.b.state).toBe('down');
    expect(w.changes.at(-1)).toMatchObject({ peer: 'a', diag: 'neighbor-signaled-session-down' });
    w.a.adminUp();
    w.clock.advance(5000);
    expect(w.a.state).toBe('up');
  });

  it('reads packets already received before declaring a late detection timer expired', () => {
    const clock = new FakeClock();
    let pending: (() => void) | undefined;
    const s = new BfdSession({
      peer: 'x',
      localDiscr: 7,
      timers: { minTx: 300, minRx: 300, multiplier: 3 },
      clock,
      send: () => {},
      afterPendingInput: (check) => {
        pending = check;
      },
    });
    s.start();
    const pkt = (state: number): BfdPacket => control({ state: state as 3, myDiscr: 9, yourDiscr: 7 });
    s.receive(pkt(State.INIT));
    expect(s.state).toBe('up');
    clock.advance(3000);
    // The detection timer fired, but a packet was waiting in the socket: it is read first.
    expect(pending).toBeDefined();
    s.receive(pkt(State.UP));
    pending!();
    expect(s.state).toBe('up');
  });

  it('jitters 0-25% below the interval, 10-25% with multiplier 1', () => {
    expect(jittered(300_000, 3, () => 0)).toBe(300_000);
    expect(jittered(300_000, 3, () => 0.9999)).toBeCloseTo(225_007.5, 0);
    expect(jittered(300_000, 1, () => 0)).toBe(270_000);
    expect(jittered(300_000, 1, () => 0.9999)).toBeCloseTo(225_004.5, 0);
  });

  it('answers a Poll with a Final at once and ignores packets while AdminDown', () => {
    const s = initialVars({ localDiscr: 1, desiredMinTx: 300_000, requiredMinRx: 300_000, detectMult: 3 });
    const p = control({ poll: true, cpi: true, desiredMinTx: 1_000_000, requiredMinRx: 1_000_000 });
    const t = transition(s, { type: 'packet', packet: p });
    expect(t.session.state).toBe(State.INIT);
    expect(t.session.remoteCpi).toBe(true);
    expect(t.actions).toContainEqual({ type: 'send-final' });
    const ad = transition({ ...s, state: State.ADMIN_DOWN }, { type: 'packet', packet: p });
    expect(ad.session.state).toBe(State.ADMIN_DOWN);
  });

  describe('a planned restart (RFC 5882 §4.3): hold-over, then resume', () => {
    /** a's next process: a new session towards b that listens first; b's packets now reach it. */
    function successor(w: Wire, sent: BfdPacket[]): BfdSession {
      const a2 = new BfdSession({
        peer: 'b',
        localDiscr: 77,
        timers: { minTx: 300, minRx: 300, multiplier: 3 },
        clock: w.clock,
        random: () => 0.5,
        resumeListenMs: 2500,
        send: (buf) => {
          const d = decodePacket(buf);
          if (!d.ok) throw new Error(d.reason);
          sent.push(d.packet);
          w.clock.setTimeout(() => w.b.receive(d.packet), 1);
        },
      });
      a2.on('state', (c: StateChange) => w.changes.push(c));
      w.a = a2;
      return a2;
    }

    it('asks the peer to wait with a long Desired Min TX in a Poll Sequence, and the next process takes the session over in Up', async () => {
      const w = wire();
      up(w);
      const held = w.a.holdOver(120_000, 2000);
      w.clock.advance(1000);
      await expect(held).resolves.toBe(true);
      // b's detection time of a: a's multiplier 3 x the 40 s a now announces.
      expect(detectionTime(w.b.variables)).toBe(120_000_000);
      const oldDiscr = w.a.localDiscr;
      const bDiscr = w.b.localDiscr;
      w.a.stop();
      const changesBefore = w.changes.length;
      // The restart: 5 s with nothing from a.
      w.clock.advance(5000);
      expect(w.b.state).toBe('up');
      const sent: BfdPacket[] = [];
      const a2 = successor(w, sent);
      a2.start();
      w.clock.advance(2000);
      expect(a2.state).toBe('up');
      expect(a2.localDiscr).toBe(oldDiscr);
      expect(a2.variables.remoteDiscr).toBe(bDiscr);
      // Nothing a2 sent could fail b's session: no Down, and the first packet already Up with P.
      expect(sent.every((p) => p.state === State.UP)).toBe(true);
      expect(sent[0]!.poll).toBe(true);
      expect(w.b.state).toBe('up');
      expect(w.changes.slice(changesBefore).filter((c) => c.peer === 'a')).toEqual([]);
      // The Poll Sequence brought b's detection time of a back to 3 x 300 ms.
      expect(a2.variables.polling).toBe(false);
      expect(detectionTime(w.b.variables)).toBe(900_000);
      // And it is a live session again: cut b, and a2 detects it.
      w.cut.b = true;
      w.clock.advance(2000);
      expect(a2.state).toBe('down');
    });

    it('starts as usual when the peer already gave the session up (its packets are Down)', () => {
      const w = wire();
      up(w);
      w.a.stop();
      // No hold-over (a crash): b times a out and goes Down.
      w.clock.advance(2000);
      expect(w.b.state).toBe('down');
      const sent: BfdPacket[] = [];
      const a2 = successor(w, sent);
      a2.start();
      w.clock.advance(5000);
      expect(a2.localDiscr).toBe(77);
      expect(a2.state).toBe('up');
      expect(w.b.state).toBe('up');
    });

    it('starts on its own at the end of the wait when the peer is silent', () => {
      const w = wire();
      w.b.stop();
      const sent: BfdPacket[] = [];
      const a2 = successor(w, sent);
      a2.start();
      w.clock.advance(2499);
      expect(sent).toEqual([]);
      w.clock.advance(1);
      expect(sent.length).toBe(1);
      expect(sent[0]).toMatchObject({ state: State.DOWN, yourDiscr: 0, myDiscr: 77 });
    });

    it('resume is taken only from Down and only on an Up packet that names a discriminator', () => {
      const s = initialVars({ localDiscr: 1, desiredMinTx: 300_000, requiredMinRx: 300_000, detectMult: 3 });
      const p = control({ state: State.UP, yourDiscr: 9 });
      const t = transition(s, { type: 'resume', packet: p });
      expect(t.session).toMatchObject({ state: State.UP, localDiscr: 9, remoteDiscr: 5, polling: true });
      expect(transition(s, { type: 'resume', packet: { ...p, state: State.INIT } }).reason).toBe('ignored');
      expect(transition(s, { type: 'resume', packet: { ...p, yourDiscr: 0 } }).reason).toBe('ignored');
      expect(transition({ ...s, state: State.INIT }, { type: 'resume', packet: p }).reason).toBe('ignored');
    });
  });

  it('a transmitter that cannot be armed is logged, and the session goes on receiving', () => {
    const clock = new FakeClock();
    const warned: object[] = [];
    const logger = {
      info() {},
      debug() {},
      warn(obj: object) {
        warned.push(obj);
      },
      child() {
        return logger;
      },
    };
    const s = new BfdSession({
      peer: 'b',
      localDiscr: 1,
      timers: { minTx: 300, minRx: 300, multiplier: 3 },
      clock,
      logger,
      send: () => {},
      periodic: {
        arm() {
          throw new Error('no sending thread');
        },
        update() {},
        pause() {},
        sent: () => 0,
        drain: () => ({ gapsMs: [], maxLateMs: 0 }),
        close() {},
      },
    });
    expect(() => s.start()).not.toThrow();
    expect(warned).toEqual([
      expect.objectContaining({
        event: 'bfd-tx-arm-failed',
        intervalUs: 1_000_000,
        err: 'no sending thread',
      }),
    ]);
    // The peer's Down packet still moves the session to Init (and the re-arm is logged again).
    s.receive(control());
    expect(s.state).toBe('init');
    expect(warned).toHaveLength(2);
    s.stop();
  });
});

describe('the periodic transmitter', () => {
  it('is re-armed on a change of state or interval, told of a new packet, and left alone otherwise', () => {
    const clock = new FakeClock();
    const calls: string[] = [];
    const s = new BfdSession({
      peer: 'b',
      localDiscr: 1,
      timers: { minTx: 300, minRx: 300, multiplier: 3 },
      clock,
      send: () => {},
      periodic: {
        arm: (_p, intervalUs) => calls.push(`arm ${intervalUs}`),
        update: (p) => calls.push(`update yourDiscr=${p.readUInt32BE(8)}`),
        pause: () => calls.push('pause'),
        sent: () => 0,
        drain: () => ({ gapsMs: [], maxLateMs: 0 }),
        close() {},
      },
    });
    s.start();
    s.receive(control({ state: State.INIT }));
    expect(s.state).toBe('up');
    const settled = calls.length;
    for (let i = 0; i < 10; i++) s.receive(control({ state: State.UP }));
    expect(calls.slice(settled)).toEqual([]);
    // The peer restarted its session with a new discriminator, still Up to us: a new packet only.
    s.receive(control({ state: State.UP, myDiscr: 6 }));
    expect(calls.slice(settled)).toEqual(['update yourDiscr=6']);
    s.stop();
    expect(calls.at(-1)).toBe('pause');
  });
});
