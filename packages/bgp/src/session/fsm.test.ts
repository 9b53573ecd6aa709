import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../__fixtures__/clock.js';
import { CeaseSubcode, ErrorCode } from '../wire/constants.js';
import { BgpError } from '../wire/errors.js';
import { decodeMessage, encodeMessage } from '../wire/messages.js';
import { type FsmEvent, type FsmState, transition } from './fsm.js';
import { type Conn, Session, type SessionHandlers } from './session.js';

const ctx = { passive: false, connectRetry: 5, largeHold: 240 };

describe('FSM transition function', () => {
  const cases: {
    from: FsmState;
    ev: FsmEvent;
    next: FsmState;
    reason: string;
    has?: string[];
    passive?: boolean;
  }[] = [
    {
      from: 'idle',
      ev: { type: 'start' },
      next: 'connect',
      reason: 'start',
      has: ['connect', 'start-timer'],
    },
    { from: 'idle', ev: { type: 'start' }, next: 'active', reason: 'start', passive: true },
    { from: 'idle', ev: { type: 'keepalive-received' }, next: 'idle', reason: 'ignored' },
    {
      from: 'connect',
      ev: { type: 'tcp-connected' },
      next: 'open-sent',
      reason: 'tcp-connected',
      has: ['send-open'],
    },
    { from: 'connect', ev: { type: 'tcp-failed' }, next: 'active', reason: 'tcp-failed' },
    {
      from: 'active',
      ev: { type: 'connect-retry-timer-expired' },
      next: 'connect',
      reason: 'connect-retry',
      has: ['connect'],
    },
    {
      from: 'active',
      ev: { type: 'connect-retry-timer-expired' },
      next: 'active',
      reason: 'connect-retry',
      passive: true,
    },
    {
      from: 'open-sent',
      ev: { type: 'open-received', holdTime: 9 },
      next: 'open-confirm',
      reason: 'open-received',
      has: ['send-keepalive'],
    },
    {
      from: 'open-sent',
      ev: { type: 'keepalive-received' },
      next: 'idle',
      reason: 'fsm-error',
      has: ['send-notification', 'schedule-restart'],
    },
    {
      from: 'open-sent',
      ev: { type: 'hold-timer-expired' },
      next: 'idle',
      reason: 'hold-timer-expired',
      has: ['send-notification'],
    },
    { from: 'open-sent', ev: { type: 'tcp-closed' }, next: 'active', reason: 'tcp-closed' },
    {
      from: 'open-confirm',
      ev: { type: 'keepalive-received' },
      next: 'established',
      reason: 'keepalive-received',
      has: ['session-up'],
    },
    {
      from: 'open-confirm',
      ev: { type: 'update-received' },
      next: 'idle',
      reason: 'fsm-error',
      has: ['send-notification'],
    },
    { from: 'established', ev: { type: 'update-received' }, next: 'established', reason: 'message' },
    {
      from: 'established',
      ev: { type: 'keepalive-timer-expired' },
      next: 'established',
      reason: 'keepalive-timer',
      has: ['send-keepalive'],
    },
    {
      from: 'established',
      ev: { type: 'hold-timer-expired' },
      next: 'idle',
      reason: 'hold-timer-expired',
      has: ['send-notification', 'session-down'],
    },
    {
      from: 'established',
      ev: { type: 'notification-received', code: 6, subcode: 2 },
      next: 'idle',
      reason: 'notification-received',
      has: ['session-down'],
    },
    {
      from: 'established',
      ev: { type: 'tcp-closed' },
      next: 'idle',
      reason: 'tcp-closed',
      has: ['session-down', 'schedule-restart'],
    },
    {
      from: 'established',
      ev: { type: 'stop', subcode: 2, notify: true },
      next: 'idle',
      reason: 'admin-stop',
      has: ['send-notification', 'session-down'],
    },
    {
      from: 'established',
      ev: { type: 'open-received', holdTime: 9 },
      next: 'idle',
      reason: 'fsm-error',
      has: ['send-notification'],
    },
  ];
  for (const c of cases) {
    it(`${c.from} + ${c.ev.type}${c.passive ? ' (passive)' : ''} → ${c.next} (${c.reason})`, () => {
      const t = transition(c.from, c.ev, { ...ctx, passive: c.passive ?? false });
      expect(t.next).toBe(c.next);
      expect(t.reason).toBe(c.reason);
      for (const a of c.has ?? []) expect(t.actions.map((x) => x.type)).toContain(a);
    });
  }

  it('a graceful stop sends no NOTIFICATION, an ordinary one sends Cease with the subcode', () => {
    const g = transition('established', { type: 'stop', subcode: 2, notify: false }, ctx);
    expect(g.actions.some((a) => a.type === 'send-notification')).toBe(false);
    const n = transition('established', { type: 'stop', subcode: 3, notify: true }, ctx);
    expect(n.actions).toContainEqual({ type: 'send-notification', code: 6, subcode: 3 });
  });

  it('a message error sends the error as NOTIFICATION code/subcode/data', () => {
    const e = new BgpError(3, 11, 'bad path', Uint8Array.of(1, 2));
    const t = transition('established', { type: 'message-error', error: e }, ctx);
    expect(t.actions[0]).toEqual({
      type: 'send-notification',
      code: 3,
      subcode: 11,
      data: Uint8Array.of(1, 2),
    });
  });
});

/** A fake connection: records what the session writes; the test feeds bytes in. */
class FakeConn extends EventEmitter implements Conn {
  out: Buffer[] = [];
  destroyed = false;
  localAddress = '10.0.0.1';
  write(b: Uint8Array): boolean {
    this.out.push(Buffer.from(b));
    return true;
  }
  end(): void {
    this.destroyed = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
  sent(): string[] {
    return this.out.map((b) => decodeMessage(b).type);
  }
}

function harness(opts: { hold?: number } = {}) {
  const clock = new FakeClock();
  let conn: FakeConn | undefined;
  const events: string[] = [];
  const handlers: SessionHandlers = {
    onEstablished: () => events.push('up'),
    onDown: (reason, graceful) => events.push(`down:${reason}:${graceful}`),
    onUpdate: () => events.push('update'),
    onRouteRefresh: () => events.push('refresh'),
  };
  const s = new Session(
    {
      asn: 65001,
      routerId: '10.0.0.1',
      families: [{ afi: 1, safi: 1 }],
      gracefulRestart: { restartTime: 30, restarting: false, forwardingPreserved: [] },
    },
    {
      address: '10.0.0.2',
      port: 179,
      asn: 65002,
      passive: false,
      holdTime: opts.hold ?? 9,
      connectRetry: 5,
      idleHoldMin: 1,
      idleHoldMax: 8,
    },
    handlers,
    clock,
    {
      connect: () => {
        conn = new FakeConn();
        return conn;
      },
    },
  );
  const feed = (m: Parameters<typeof encodeMessage>[0]) => conn!.emit('data', encodeMessage(m));
  const open = (hold = 9, gr = true) =>
    feed({
      type: 'open',
      version: 4,
      myAs: 65002,
      holdTime: hold,
      bgpId: '10.0.0.2',
      capabilities: [
        { type: 'four-octet-as', asn: 65002 },
        ...(gr
          ? [{ type: 'graceful-restart' as const, restarting: false, restartTime: 30, families: [] }]
          : []),
      ],
    });
  const establish = (hold = 9) => {
    s.start();
    conn!.emit('connect');
    open(hold);
    feed({ type: 'keepalive' });
  };
  return { s, clock, conn: () => conn!, events, feed, open, establish };
}

describe('session driver with a fake clock', () => {
  it('walks Connect → OpenSent → OpenConfirm → Established and negotiates hold = min(ours, theirs)', () => {
    const h = harness({ hold: 9 });
    h.s.start();
    expect(h.s.state).toBe('connect');
    h.conn().emit('connect');
    expect(h.s.state).toBe('open-sent');
    expect(h.conn().sent()).toEqual(['open']);
    h.open(6);
    expect(h.s.state).toBe('open-confirm');
    h.feed({ type: 'keepalive' });
    expect(h.s.state).toBe('established');
    expect(h.s.negotiated?.holdTime).toBe(6);
    expect(h.s.negotiated?.keepalive).toBe(2);
    expect(h.events).toEqual(['up']);
  });

  it('sends keepalives every hold/3 seconds while established', () => {
    const h = harness();
    h.establish(9);
    const before = h
      .conn()
      .sent()
      .filter((t) => t === 'keepalive').length;
    for (let i = 0; i < 4; i++) {
      h.clock.advance(3000);
      h.feed({ type: 'keepalive' });
    }
    expect(
      h
        .conn()
        .sent()
        .filter((t) => t === 'keepalive').length - before,
    ).toBeGreaterThanOrEqual(4);
    expect(h.s.state).toBe('established');
  });

  it('tears the session down with Hold Timer Expired when nothing is received for the hold time', () => {
    const h = harness();
    h.establish(9);
    h.clock.advance(8000);
    expect(h.s.state).toBe('established');
    h.clock.advance(1500);
    expect(h.s.state).toBe('idle');
    const last = decodeMessage(h.conn().out.at(-1)!);
    expect(last).toMatchObject({ type: 'notification', code: ErrorCode.HOLD_TIMER_EXPIRED });
    expect(h.events.at(-1)).toBe('down:hold-timer-expired:false');
  });

  it('restarts the hold timer on each whole UPDATE received', () => {
    const h = harness();
    h.establish(9);
    for (let i = 0; i < 10; i++) {
      h.clock.advance(5000);
      h.feed({ type: 'update', withdrawn: ['10.0.0.0/8'], attrs: [], nlri: [] });
    }
    expect(h.s.state).toBe('established');
  });

  it('does not restart the hold timer on a trickle of bytes that never makes a whole message', () => {
    const h = harness();
    h.establish(9);
    const update = encodeMessage({ type: 'update', withdrawn: ['10.0.0.0/8'], attrs: [], nlri: [] });
    const conn = h.conn();
    // One octet every 2 s: after 10 s the peer has sent 5 octets and not one whole message.
    for (let i = 0; i < 5; i++) {
      h.clock.advance(2000);
      conn.emit('data', update.subarray(i, i + 1));
    }
    expect(h.events.at(-1)).toBe('down:hold-timer-expired:false');
    expect(decodeMessage(conn.out.at(-1)!)).toMatchObject({
      type: 'notification',
      code: ErrorCode.HOLD_TIMER_EXPIRED,
    });
  });

  it('restarts the hold timer when the trickled message is whole', () => {
    const h = harness();
    h.establish(9);
    const update = encodeMessage({ type: 'update', withdrawn: ['10.0.0.0/8'], attrs: [], nlri: [] });
    h.clock.advance(5000);
    h.conn().emit('data', update.subarray(0, 10));
    h.clock.advance(3000);
    h.conn().emit('data', update.subarray(10));
    h.clock.advance(8000);
    expect(h.s.state).toBe('established');
  });

  it('sends a keepalive in the middle of a long UPDATE burst (keepalives are not starved)', () => {
    const h = harness();
    const s = h.s as unknown as { handlers: SessionHandlers };
    h.establish(9);
    const sentBefore = h.conn().sent().length;
    // Each UPDATE takes one (fake) second to process; the burst arrives as one chunk.
    s.handlers.onUpdate = () => {
      h.clock.t += 1000; // no timer can fire while the event loop is busy
    };
    const burst = Buffer.concat(
      Array.from({ length: 10 }, () =>
        encodeMessage({ type: 'update', withdrawn: ['10.0.0.0/8'], attrs: [], nlri: [] }),
      ),
    );
    h.conn().emit('data', burst);
    expect(h.conn().sent().slice(sentBefore)).toContain('keepalive');
    // Input was being consumed all along: the burst itself does not expire the hold timer.
    h.clock.advance(5000);
    expect(h.s.state).toBe('established');
  });

  const collide = (peerId: string) => {
    const h = harness();
    h.s.start();
    const outgoing = h.conn();
    outgoing.emit('connect');
    expect(h.s.state).toBe('open-sent');
    const incoming = new FakeConn();
    h.s.incoming(incoming);
    expect(incoming.sent()).toEqual(['open']);
    const open = encodeMessage({
      type: 'open',
      version: 4,
      myAs: 65002,
      holdTime: 9,
      bgpId: peerId,
      capabilities: [{ type: 'four-octet-as', asn: 65002 }],
    });
    incoming.emit('data', open);
    return { h, outgoing, incoming };
  };

  it('keeps the connection the peer opened when its BGP Identifier is higher (RFC 4271 §6.8)', () => {
    const { h, outgoing, incoming } = collide('10.0.0.9');
    expect(decodeMessage(outgoing.out.at(-1)!)).toMatchObject({ type: 'notification', code: 6, subcode: 7 });
    expect(incoming.sent()).toEqual(['open', 'keepalive']);
    expect(h.s.state).toBe('open-confirm');
    incoming.emit('data', encodeMessage({ type: 'keepalive' }));
    expect(h.s.state).toBe('established');
  });

  it('keeps our own connection when our BGP Identifier is higher, closing the other with Cease 7', () => {
    const { h, outgoing, incoming } = collide('9.9.9.9');
    expect(decodeMessage(incoming.out.at(-1)!)).toMatchObject({ type: 'notification', code: 6, subcode: 7 });
    expect(outgoing.sent()).toEqual(['open']);
    expect(h.s.state).toBe('open-sent');
  });

  it('rejects an OPEN from the wrong AS with OPEN/Bad Peer AS', () => {
    const h = harness();
    h.s.start();
    h.conn().emit('connect');
    h.feed({ type: 'open', version: 4, myAs: 65009, holdTime: 9, bgpId: '10.0.0.2', capabilities: [] });
    expect(h.s.state).toBe('idle');
    expect(decodeMessage(h.conn().out.at(-1)!)).toMatchObject({ type: 'notification', code: 2, subcode: 2 });
  });

  it('rejects hold time 2 with OPEN/Unacceptable Hold Time', () => {
    const h = harness();
    h.s.start();
    h.conn().emit('connect');
    h.feed({ type: 'open', version: 4, myAs: 65002, holdTime: 2, bgpId: '10.0.0.2', capabilities: [] });
    expect(decodeMessage(h.conn().out.at(-1)!)).toMatchObject({ type: 'notification', code: 2, subcode: 6 });
  });

  it('backs off exponentially between automatic restarts after errors', () => {
    const h = harness();
    h.s.start();
    const attempts: number[] = [];
    const startT = h.clock.t;
    for (let i = 0; i < 4; i++) {
      h.conn().emit('connect');
      h.feed({ type: 'keepalive' }); // FSM error in OpenSent
      expect(h.s.state).toBe('idle');
      const c = h.conn();
      // Wait until the next connection attempt.
      for (let ms = 0; ms < 20_000 && h.conn() === c; ms += 100) h.clock.advance(100);
      attempts.push(h.clock.t - startT);
    }
    const gaps = attempts.map((t, i) => t - (attempts[i - 1] ?? 0));
    expect(gaps[1]!).toBeGreaterThan(gaps[0]!);
    expect(gaps[2]!).toBeGreaterThan(gaps[1]!);
  });

  it('closes with Cease/Administrative Shutdown on stop, and without NOTIFICATION on a graceful stop', () => {
    const a = harness();
    a.establish();
    a.s.stop(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, true);
    expect(decodeMessage(a.conn().out.at(-1)!)).toMatchObject({ type: 'notification', code: 6, subcode: 2 });
    const b = harness();
    b.establish();
    b.s.stop(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, false);
    expect(b.conn().sent()).not.toContain('notification');
    expect(b.events.at(-1)).toBe('down:admin-stop:true');
  });

  it('answers a bad header with MESSAGE_HEADER/Connection Not Synchronized and goes Idle', () => {
    const h = harness();
    h.establish();
    h.conn().emit('data', Buffer.alloc(19, 0));
    expect(h.s.state).toBe('idle');
    expect(decodeMessage(h.conn().out.at(-1)!)).toMatchObject({ type: 'notification', code: 1, subcode: 1 });
  });
});
