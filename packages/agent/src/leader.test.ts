// The elector's clock rules with a fake API and a fake clock: a holder that cannot renew stops
// leading at the renew deadline; a candidate measures expiry from when it saw the record change.
import { K8S_ERR, K8sError, type KubeClient } from '@podnet/k8s';
import { describe, expect, it } from 'vitest';
import { LeaderElector, microTime } from './leader.js';

/** A fake Lease API: one object, CAS on resourceVersion; `down` makes every call fail. */
function fakeApi() {
  const state = { lease: undefined as Record<string, unknown> | undefined, rv: 0, down: false };
  const check = () => {
    if (state.down) throw new K8sError(K8S_ERR.UNREACHABLE, 'down');
  };
  const custom = {
    async getNamespacedCustomObject() {
      check();
      if (!state.lease) throw new K8sError(K8S_ERR.NOT_FOUND, 'none', 404);
      return structuredClone(state.lease);
    },
    async createNamespacedCustomObject({ body }: { body: Record<string, unknown> }) {
      check();
      state.lease = {
        ...body,
        metadata: { ...(body.metadata as object), resourceVersion: String(++state.rv) },
      };
      return structuredClone(state.lease);
    },
    async replaceNamespacedCustomObject({ body }: { body: { metadata: { resourceVersion?: string } } }) {
      check();
      const cur = state.lease as { metadata: { resourceVersion: string } };
      if (body.metadata.resourceVersion !== cur.metadata.resourceVersion)
        throw new K8sError(K8S_ERR.CONFLICT, 'conflict', 409);
      state.lease = { ...body, metadata: { ...body.metadata, resourceVersion: String(++state.rv) } };
      return structuredClone(state.lease);
    },
  };
  // The elector talks to the Lease through KubeClient.request (GET, POST the collection, PUT one).
  const request = async (method: string, _path: string, o?: { body?: unknown }) => {
    const body = o?.body as never;
    if (method === 'GET') return custom.getNamespacedCustomObject();
    if (method === 'POST') return custom.createNamespacedCustomObject({ body });
    if (method === 'PUT') return custom.replaceNamespacedCustomObject({ body });
    throw new Error(`fake Lease API: no ${method}`);
  };
  return { state, client: { custom, request } as unknown as KubeClient };
}

async function until(what: string, check: () => boolean) {
  for (let i = 0; i < 2000 && !check(); i++) await new Promise((r) => setTimeout(r, 1));
  if (!check()) throw new Error(`never: ${what}`);
}

describe('LeaderElector', () => {
  it('stops leading when it cannot renew for renewDeadline, and leads again once it can', async () => {
    const api = fakeApi();
    let now = 1_000_000;
    const log: string[] = [];
    const e = new LeaderElector({
      client: api.client,
      namespace: 'ns',
      name: 'l',
      identity: 'a',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 1,
      now: () => now,
      onStartedLeading: () => log.push('start'),
      onStoppedLeading: () => log.push('stop'),
    });
    e.start();
    await until('leading', () => e.isLeader());
    api.state.down = true;
    const tries = e.attempts;
    await until('a few failed renewals', () => e.attempts > tries + 3);
    expect(e.isLeader()).toBe(true); // within the deadline
    now += 10_000;
    await until('stopped leading', () => !e.isLeader());
    api.state.down = false;
    await until('leading again', () => e.isLeader());
    expect(log).toEqual(['start', 'stop', 'start']);
    await e.stop();
  });

  it('takes over a lease only after seeing it unchanged for a whole lease duration on its own clock', async () => {
    const api = fakeApi();
    // Held by "x" with a renewTime far in the future: skewed clocks must not matter.
    api.state.lease = {
      metadata: { name: 'l', resourceVersion: '1' },
      spec: {
        holderIdentity: 'x',
        leaseDurationSeconds: 15,
        renewTime: microTime(9e12),
        leaseTransitions: 4,
      },
    };
    let now = 0;
    const e = new LeaderElector({
      client: api.client,
      namespace: 'ns',
      name: 'l',
      identity: 'b',
      retryPeriodMs: 1,
      now: () => now,
    });
    e.start();
    await until('a few tries', () => e.attempts > 3);
    now = 14_999;
    const t = e.attempts;
    await until('more tries', () => e.attempts > t + 3);
    expect(e.isLeader()).toBe(false);
    now = 15_000;
    await until('took over', () => e.isLeader());
    expect((api.state.lease as { spec: { leaseTransitions: number } }).spec.leaseTransitions).toBe(5);
    await e.stop();
    expect((api.state.lease as { spec: { holderIdentity: string } }).spec.holderIdentity).toBe('');
  });

  it('refuses durations that could let two holders overlap', () => {
    const api = fakeApi();
    const o = { client: api.client, namespace: 'n', name: 'l', identity: 'a' };
    expect(() => new LeaderElector({ ...o, leaseDurationMs: 5000, renewDeadlineMs: 5000 })).toThrow(
      /renew deadline 5000 ms must be shorter than the lease duration 5000 ms/,
    );
  });

  it('writes times with microseconds, as kube-apiserver parses them', () => {
    expect(microTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678))).toBe('2026-01-02T03:04:05.678000Z');
  });
});
