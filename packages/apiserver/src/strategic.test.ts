import { describe, expect, it } from 'vitest';
import type { Json } from './patch.js';
import { MERGE_KEYS, strategicMergePatch } from './strategic.js';

const pod: Json = {
  metadata: { name: 'p', finalizers: ['a'], labels: { x: '1' } },
  spec: {
    containers: [
      { name: 'app', image: 'app:1', env: [{ name: 'A', value: '1' }] },
      { name: 'side', image: 'side:1' },
    ],
  },
  status: {
    conditions: [
      { type: 'Ready', status: 'False' },
      { type: 'PodScheduled', status: 'True' },
    ],
  },
};

describe('strategic merge patch (pods)', () => {
  it.each([
    [
      'merges containers by name',
      { spec: { containers: [{ name: 'side', image: 'side:2' }] } },
      (p: Json) => (p as { spec: { containers: Json[] } }).spec.containers,
      [
        { name: 'app', image: 'app:1', env: [{ name: 'A', value: '1' }] },
        { name: 'side', image: 'side:2' },
      ],
    ],
    [
      'merges env inside a container by name',
      { spec: { containers: [{ name: 'app', env: [{ name: 'B', value: '2' }] }] } },
      (p: Json) => (p as { spec: { containers: { env?: Json }[] } }).spec.containers[0]!.env,
      [
        { name: 'A', value: '1' },
        { name: 'B', value: '2' },
      ],
    ],
    [
      'merges status conditions by type',
      { status: { conditions: [{ type: 'Ready', status: 'True' }] } },
      (p: Json) => (p as { status: { conditions: Json } }).status.conditions,
      [
        { type: 'Ready', status: 'True' },
        { type: 'PodScheduled', status: 'True' },
      ],
    ],
    [
      'deletes a list element with $patch: delete',
      { spec: { containers: [{ name: 'side', $patch: 'delete' }] } },
      (p: Json) => (p as { spec: { containers: { name: string }[] } }).spec.containers.map((c) => c.name),
      ['app'],
    ],
    [
      'adds to finalizers as a set',
      { metadata: { finalizers: ['a', 'b'] } },
      (p: Json) => (p as { metadata: { finalizers: Json } }).metadata.finalizers,
      ['a', 'b'],
    ],
    [
      'removes from a primitive list with $deleteFromPrimitiveList',
      { metadata: { $deleteFromPrimitiveList: undefined, '$deleteFromPrimitiveList/finalizers': ['a'] } },
      (p: Json) => (p as { metadata: { finalizers: Json } }).metadata.finalizers,
      [],
    ],
    [
      'replaces a map with $patch: replace',
      { metadata: { labels: { y: '2', $patch: 'replace' } } },
      (p: Json) => (p as { metadata: { labels: Json } }).metadata.labels,
      { y: '2' },
    ],
    [
      'deletes a field with null, like a merge patch',
      { metadata: { labels: { x: null } } },
      (p: Json) => (p as { metadata: { labels: Json } }).metadata.labels,
      {},
    ],
  ])('%s', (_name, patch, pick, want) => {
    const clean = JSON.parse(JSON.stringify(patch)) as Json;
    const before = structuredClone(pod);
    expect(pick(strategicMergePatch(pod, clean, MERGE_KEYS.pods!))).toEqual(want);
    expect(pod).toEqual(before);
  });
});
