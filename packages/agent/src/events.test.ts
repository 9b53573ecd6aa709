// The Event recorder's bound: callers need not wait for the rate limit, and a burst beyond
// `maxPending` is dropped and counted instead of queueing without end.
import type { KubeClient } from '@podnet/k8s';
import { describe, expect, it } from 'vitest';
import { EventRecorder, TokenBucket } from './events.js';

const obj = { apiVersion: 'v1', kind: 'Service', name: 'web', namespace: 'default' };

function fakeClient() {
  const reasons: string[] = [];
  const client = {
    createEvent: async (e: { reason: string }) => {
      reasons.push(e.reason);
      return e;
    },
  } as unknown as KubeClient;
  return { client, reasons };
}

describe('EventRecorder', () => {
  it('writes an Event per call while the limiter has tokens', async () => {
    const { client, reasons } = fakeClient();
    const r = new EventRecorder({ client, identity: 'node-a', limiter: new TokenBucket(100, 10) });
    await Promise.all([1, 2, 3].map((i) => r.record(obj, 'Normal', `R${i}`, 'm')));
    expect(reasons.sort()).toEqual(['R1', 'R2', 'R3']);
    expect(r.written).toBe(3);
    expect(r.dropped).toBe(0);
  });

  it('drops what goes beyond maxPending waiting for the limiter, counts it, and takes Events again once drained', async () => {
    const { client, reasons } = fakeClient();
    // One token saved up, then one every 20 ms: the first call writes at once, the rest wait.
    const r = new EventRecorder({
      client,
      identity: 'node-a',
      limiter: new TokenBucket(50, 1),
      maxPending: 3,
    });
    const calls = Array.from({ length: 10 }, (_, i) => r.record(obj, 'Normal', `R${i}`, 'm'));
    await Promise.all(calls);
    // The first three wait (R0 is through the limiter at once but counted while waiting), the rest are dropped.
    expect(r.written).toBe(3);
    expect(r.dropped).toBe(7);
    expect(reasons).toEqual(['R0', 'R1', 'R2']);
    await r.record(obj, 'Warning', 'Later', 'm');
    expect(reasons.at(-1)).toBe('Later');
    expect(r.written).toBe(4);
  });
});
