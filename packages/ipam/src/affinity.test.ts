import { describe, expect, it } from 'vitest';
import { type AffinityEvent, type AffinityState, affinityTransition } from './affinity.js';

describe('BlockAffinity transitions', () => {
  const ev = (type: AffinityEvent['type']): AffinityEvent =>
    type === 'lost-race' ? { type, owner: 'other' } : ({ type } as AffinityEvent);

  it.each<[AffinityState, AffinityEvent['type'], AffinityState]>([
    ['none', 'claim', 'pending'],
    ['pending', 'block-created', 'confirmed'],
    ['pending', 'block-already-ours', 'confirmed'],
    ['pending', 'lost-race', 'deleted'],
    ['pending', 'claim', 'pending'],
    ['confirmed', 'release-empty', 'pendingDeletion'],
    ['confirmed', 'block-already-ours', 'confirmed'],
    ['pendingDeletion', 'block-deleted', 'deleted'],
    ['pendingDeletion', 'block-in-use', 'confirmed'],
    ['deleted', 'claim', 'pending'],
  ])('%s --%s--> %s', (from, type, to) => {
    expect(affinityTransition(from, ev(type))).toEqual({ ok: true, next: to, reason: type });
  });

  it.each<[AffinityState, AffinityEvent['type']]>([
    ['none', 'block-created'],
    ['pending', 'release-empty'],
    ['confirmed', 'block-deleted'],
    ['confirmed', 'lost-race'],
    ['pendingDeletion', 'claim'],
    ['deleted', 'block-in-use'],
  ])('refuses %s on %s', (from, type) => {
    const t = affinityTransition(from, ev(type));
    expect(t.ok).toBe(false);
    expect(t.ok ? '' : t.reason).toBe(`no transition from ${from} on ${type}`);
  });
});
