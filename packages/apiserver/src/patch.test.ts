import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ApiError } from './errors.js';
import { type Json, jsonPatch, mergePatch } from './patch.js';

describe('JSON merge patch (RFC 7386)', () => {
  // The examples of RFC 7386 appendix A.
  it.each([
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [
      ['a', 'b'],
      ['c', 'd'],
      ['c', 'd'],
    ],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ] as [Json, Json, Json][])('%j + %j = %j', (target, patch, want) => {
    expect(mergePatch(target, patch)).toEqual(want);
  });

  it('is idempotent and leaves its inputs untouched', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (t, p) => {
        const target = structuredClone(t) as Json;
        const patch = structuredClone(p) as Json;
        const once = mergePatch(target, patch);
        expect(mergePatch(once, patch)).toEqual(once);
        expect(target).toEqual(t);
        expect(patch).toEqual(p);
      }),
    );
  });
});

describe('JSON Patch (RFC 6902)', () => {
  const doc: Json = { metadata: { labels: { a: '1' } }, list: [1, 2, 3], 'we/ird~key': true };
  it.each([
    [
      'add a member',
      [{ op: 'add', path: '/metadata/labels/b', value: '2' }],
      { metadata: { labels: { a: '1', b: '2' } } },
    ],
    ['add into an array', [{ op: 'add', path: '/list/1', value: 9 }], { list: [1, 9, 2, 3] }],
    ['append with -', [{ op: 'add', path: '/list/-', value: 4 }], { list: [1, 2, 3, 4] }],
    ['remove a member', [{ op: 'remove', path: '/metadata/labels/a' }], { metadata: { labels: {} } }],
    ['remove an element', [{ op: 'remove', path: '/list/0' }], { list: [2, 3] }],
    ['replace', [{ op: 'replace', path: '/list', value: [] }], { list: [] }],
    ['move', [{ op: 'move', from: '/list', path: '/moved' }], { moved: [1, 2, 3] }],
    ['copy', [{ op: 'copy', from: '/list/2', path: '/three' }], { three: 3 }],
    ['escaped keys', [{ op: 'remove', path: '/we~1ird~0key' }], {}],
    ['a passing test', [{ op: 'test', path: '/list', value: [1, 2, 3] }], {}],
  ])('%s', (_name, ops, want) => {
    const out = jsonPatch(doc, ops) as Record<string, Json>;
    for (const [k, v] of Object.entries(want as Record<string, Json>)) expect(out[k]).toEqual(v);
    if (_name === 'escaped keys') expect(out).not.toHaveProperty('we/ird~key');
  });

  it.each([
    ['a failing test', [{ op: 'test', path: '/list/0', value: 7 }], 422],
    ['a missing path', [{ op: 'remove', path: '/nope' }], 422],
    ['an index past the end', [{ op: 'add', path: '/list/9', value: 1 }], 422],
    ['an unknown op', [{ op: 'frobnicate', path: '/list' }], 400],
    ['a body that is not an array', { op: 'add' }, 400],
    ['a pointer without a leading slash', [{ op: 'remove', path: 'list' }], 400],
  ])('rejects %s without changing the document', (_name, ops, code) => {
    const before = structuredClone(doc);
    let err: unknown;
    try {
      jsonPatch(doc, ops);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).httpCode).toBe(code);
    expect(doc).toEqual(before);
  });
});
