// The life of a BlockAffinity as an explicit transition function.
//
//   (none) ──claim──▶ pending ──block-created / block-already-ours──▶ confirmed
//                        └──lost-race──▶ (deleted)
//   confirmed ──release-empty──▶ pendingDeletion ──block-deleted──▶ (deleted)
//                                      └──block-in-use──▶ confirmed
//
// The IPAMBlock's creation is the atomic point: only its creator confirms. Release marks the
// affinity first, so a reader never sees a confirmed affinity without its block for long.
import type { BlockAffinityState } from '@podnet/k8s';

export type AffinityState = BlockAffinityState | 'none' | 'deleted';

export type AffinityEvent =
  | { type: 'claim' }
  | { type: 'block-created' }
  | { type: 'block-already-ours' }
  | { type: 'lost-race'; owner: string | undefined }
  | { type: 'release-empty' }
  | { type: 'block-deleted' }
  | { type: 'block-in-use' };

export type AffinityTransition =
  | { ok: true; next: BlockAffinityState | 'deleted'; reason: AffinityEvent['type'] }
  | { ok: false; reason: string };

export function affinityTransition(state: AffinityState, ev: AffinityEvent): AffinityTransition {
  const to = (next: BlockAffinityState | 'deleted'): AffinityTransition => ({
    ok: true,
    next,
    reason: ev.type,
  });
  switch (state) {
    case 'none':
      if (ev.type === 'claim') return to('pending');
      break;
    case 'pending':
      if (ev.type === 'block-created' || ev.type === 'block-already-ours') return to('confirmed');
      if (ev.type === 'lost-race') return to('deleted');
      if (ev.type === 'claim') return to('pending'); // a retried claim finds its own pending affinity
      break;
    case 'confirmed':
      if (ev.type === 'release-empty') return to('pendingDeletion');
      if (ev.type === 'block-already-ours' || ev.type === 'block-created') return to('confirmed');
      break;
    case 'pendingDeletion':
      if (ev.type === 'block-deleted') return to('deleted');
      if (ev.type === 'block-in-use') return to('confirmed');
      break;
    case 'deleted':
      if (ev.type === 'claim') return to('pending');
      break;
  }
  return { ok: false, reason: `no transition from ${state} on ${ev.type}` };
}
