// The BGP finite state machine (RFC 4271 §8) as one pure transition function:
// `(state, event, ctx) → { next, reason, actions }`. The driver (session.ts) owns sockets and
// timers and applies the actions; tests drive it with a fake clock.
import { CeaseSubcode, ErrorCode, FsmSubcode } from '../wire/constants.js';
import type { BgpError } from '../wire/errors.js';

export type FsmState = 'idle' | 'connect' | 'active' | 'open-sent' | 'open-confirm' | 'established';

export type TimerName = 'connect-retry' | 'hold' | 'keepalive' | 'idle-hold';

export type FsmEvent =
  | { type: 'start' }
  | { type: 'stop'; subcode: number; notify: boolean }
  | { type: 'idle-hold-timer-expired' }
  | { type: 'connect-retry-timer-expired' }
  | { type: 'hold-timer-expired' }
  | { type: 'keepalive-timer-expired' }
  | { type: 'tcp-connected' }
  | { type: 'tcp-failed' }
  | { type: 'tcp-closed' }
  /** A valid OPEN (checked by the driver); `holdTime` is the negotiated value. */
  | { type: 'open-received'; holdTime: number }
  | { type: 'open-error'; error: BgpError }
  | { type: 'keepalive-received' }
  | { type: 'update-received' }
  | { type: 'route-refresh-received' }
  | { type: 'notification-received'; code: number; subcode: number }
  /** A message that must reset the session (bad header, session-reset UPDATE, max-prefix...). */
  | { type: 'message-error'; error: BgpError };

export type FsmAction =
  | { type: 'connect' }
  | { type: 'drop-connection' }
  | { type: 'send-open' }
  | { type: 'send-keepalive' }
  | { type: 'send-notification'; code: number; subcode: number; data?: Uint8Array }
  | { type: 'start-timer'; timer: TimerName; seconds: number }
  | { type: 'stop-timer'; timer: TimerName }
  | { type: 'session-up' }
  | { type: 'session-down' }
  /** Count an error and arm the idle-hold timer with exponential backoff (RFC 4271 §8.1.1 DampPeerOscillations). */
  | { type: 'schedule-restart' }
  | { type: 'reset-backoff' };

export interface FsmContext {
  passive: boolean;
  /** ConnectRetryTime in seconds (RFC 4271 §10 suggests 120; we default lower). */
  connectRetry: number;
  /** Hold time to use before OPEN is received (RFC 4271 §8.2.2 suggests 4 minutes). */
  largeHold: number;
}

export interface Transition {
  next: FsmState;
  reason: string;
  actions: FsmAction[];
}

const stopAll: FsmAction[] = [
  { type: 'stop-timer', timer: 'connect-retry' },
  { type: 'stop-timer', timer: 'hold' },
  { type: 'stop-timer', timer: 'keepalive' },
];

function notify(code: number, subcode: number, data?: Uint8Array): FsmAction {
  return data
    ? { type: 'send-notification', code, subcode, data }
    : { type: 'send-notification', code, subcode };
}

/** To Idle after an error: drop, stop timers, and restart later with backoff. */
function fail(state: FsmState, reason: string, pre: FsmAction[] = []): Transition {
  const down: FsmAction[] = state === 'established' ? [{ type: 'session-down' }] : [];
  return {
    next: 'idle',
    reason,
    actions: [...pre, { type: 'drop-connection' }, ...stopAll, ...down, { type: 'schedule-restart' }],
  };
}

function begin(ctx: FsmContext, reason: string): Transition {
  if (ctx.passive)
    return {
      next: 'active',
      reason,
      actions: [{ type: 'start-timer', timer: 'connect-retry', seconds: ctx.connectRetry }],
    };
  return {
    next: 'connect',
    reason,
    actions: [
      { type: 'start-timer', timer: 'connect-retry', seconds: ctx.connectRetry },
      { type: 'connect' },
    ],
  };
}

const fsmSubcodeFor: Partial<Record<FsmState, number>> = {
  'open-sent': FsmSubcode.UNEXPECTED_IN_OPENSENT,
  'open-confirm': FsmSubcode.UNEXPECTED_IN_OPENCONFIRM,
  established: FsmSubcode.UNEXPECTED_IN_ESTABLISHED,
};

/** The transition function. Events that do not apply in a state leave it unchanged with no action. */
export function transition(state: FsmState, ev: FsmEvent, ctx: FsmContext): Transition {
  const stay = (reason = 'ignored'): Transition => ({ next: state, reason, actions: [] });

  if (ev.type === 'stop') {
    if (state === 'idle')
      return { next: 'idle', reason: 'admin-stop', actions: [{ type: 'stop-timer', timer: 'idle-hold' }] };
    const connected = state === 'open-sent' || state === 'open-confirm' || state === 'established';
    const pre: FsmAction[] = connected && ev.notify ? [notify(ErrorCode.CEASE, ev.subcode)] : [];
    const down: FsmAction[] = state === 'established' ? [{ type: 'session-down' }] : [];
    return {
      next: 'idle',
      reason: 'admin-stop',
      actions: [...pre, { type: 'drop-connection' }, ...stopAll, ...down, { type: 'reset-backoff' }],
    };
  }

  switch (state) {
    case 'idle':
      if (ev.type === 'start') return begin(ctx, 'start');
      if (ev.type === 'idle-hold-timer-expired') return begin(ctx, 'restart-after-backoff');
      return stay();

    case 'connect':
    case 'active':
      switch (ev.type) {
        case 'connect-retry-timer-expired':
          if (ctx.passive)
            return {
              next: 'active',
              reason: 'connect-retry',
              actions: [{ type: 'start-timer', timer: 'connect-retry', seconds: ctx.connectRetry }],
            };
          return {
            next: 'connect',
            reason: 'connect-retry',
            actions: [
              { type: 'drop-connection' },
              { type: 'start-timer', timer: 'connect-retry', seconds: ctx.connectRetry },
              { type: 'connect' },
            ],
          };
        case 'tcp-connected':
          return {
            next: 'open-sent',
            reason: 'tcp-connected',
            actions: [
              { type: 'stop-timer', timer: 'connect-retry' },
              { type: 'send-open' },
              { type: 'start-timer', timer: 'hold', seconds: ctx.largeHold },
            ],
          };
        case 'tcp-failed':
        case 'tcp-closed':
          return { next: 'active', reason: 'tcp-failed', actions: [{ type: 'drop-connection' }] };
        case 'hold-timer-expired':
        case 'keepalive-timer-expired':
          return stay();
        default:
          if (ev.type === 'start' || ev.type === 'idle-hold-timer-expired') return stay();
          return fail(state, 'unexpected-event', []);
      }

    case 'open-sent':
      switch (ev.type) {
        case 'open-received': {
          const acts: FsmAction[] = [
            { type: 'stop-timer', timer: 'connect-retry' },
            { type: 'send-keepalive' },
          ];
          if (ev.holdTime > 0)
            acts.push(
              { type: 'start-timer', timer: 'hold', seconds: ev.holdTime },
              { type: 'start-timer', timer: 'keepalive', seconds: Math.max(1, Math.floor(ev.holdTime / 3)) },
            );
          else acts.push({ type: 'stop-timer', timer: 'hold' });
          return { next: 'open-confirm', reason: 'open-received', actions: acts };
        }
        case 'open-error':
          return fail(state, 'open-error', [notify(ev.error.code, ev.error.subcode, ev.error.data)]);
        case 'hold-timer-expired':
          return fail(state, 'hold-timer-expired', [notify(ErrorCode.HOLD_TIMER_EXPIRED, 0)]);
        case 'tcp-closed':
        case 'tcp-failed':
          return {
            next: 'active',
            reason: 'tcp-closed',
            actions: [
              { type: 'drop-connection' },
              { type: 'stop-timer', timer: 'hold' },
              { type: 'start-timer', timer: 'connect-retry', seconds: ctx.connectRetry },
            ],
          };
        case 'notification-received':
          return fail(state, 'notification-received');
        case 'message-error':
          return fail(state, 'message-error', [notify(ev.error.code, ev.error.subcode, ev.error.data)]);
        case 'keepalive-received':
        case 'update-received':
        case 'route-refresh-received':
          return fail(state, 'fsm-error', [notify(ErrorCode.FSM, FsmSubcode.UNEXPECTED_IN_OPENSENT)]);
        default:
          return stay();
      }

    case 'open-confirm':
    case 'established':
      switch (ev.type) {
        case 'keepalive-received':
          if (state === 'open-confirm')
            return {
              next: 'established',
              reason: 'keepalive-received',
              actions: [{ type: 'session-up' }, { type: 'reset-backoff' }],
            };
          return stay('keepalive');
        case 'update-received':
        case 'route-refresh-received':
          if (state === 'established') return stay('message');
          return fail(state, 'fsm-error', [notify(ErrorCode.FSM, FsmSubcode.UNEXPECTED_IN_OPENCONFIRM)]);
        case 'keepalive-timer-expired':
          return {
            next: state,
            reason: 'keepalive-timer',
            actions: [{ type: 'send-keepalive' }],
          };
        case 'hold-timer-expired':
          return fail(state, 'hold-timer-expired', [notify(ErrorCode.HOLD_TIMER_EXPIRED, 0)]);
        case 'notification-received':
          return fail(state, 'notification-received');
        case 'tcp-closed':
        case 'tcp-failed':
          return fail(state, 'tcp-closed');
        case 'message-error':
          return fail(state, 'message-error', [notify(ev.error.code, ev.error.subcode, ev.error.data)]);
        case 'open-received':
        case 'open-error':
          return fail(state, 'fsm-error', [notify(ErrorCode.FSM, fsmSubcodeFor[state] ?? 0)]);
        default:
          return stay();
      }
  }
}

export { CeaseSubcode };
