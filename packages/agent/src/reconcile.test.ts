import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { diffKeyed, sameData } from './reconcile.js';

/** Key-order-free JSON, the reference sameData must agree with. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  );
}

// Plain data as the models hold it: no undefined inside arrays (JSON would write null there).
const data = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom<unknown>(1, 2, 'a', 'b', true, false, null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.oneof(tie('value'), fc.constant(undefined)), {
      maxKeys: 3,
    }),
  ),
})).value;

describe('sameData', () => {
  it('agrees with comparing key-sorted JSON, for any two values', () => {
    fc.assert(
      fc.property(data, data, (a, b) => {
        expect(sameData(a, b)).toBe(canonical(a) === canonical(b));
        expect(sameData(a, structuredClone(a))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    [{ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 }, true],
    [{ a: 1, b: undefined }, { a: 1 }, true],
    [{ a: 1 }, { a: 1, b: 2 }, false],
    [[1, 2], [2, 1], false],
    [{ a: [] }, { a: {} }, false],
    [{ a: null }, { a: undefined }, false],
    [{ a: 1 }, [1], false],
  ])('%j and %j: %s', (a, b, want) => {
    expect(sameData(a, b)).toBe(want);
    expect(sameData(b, a)).toBe(want);
  });
});

describe('diffKeyed', () => {
  it('adds, updates and removes by key, and leaves equal entries alone whatever their key order', () => {
    const current = new Map([
      ['x', { k: 'x', v: 1, tags: ['a'] }],
      ['y', { k: 'y', v: 2, tags: [] }],
      ['z', { k: 'z', v: 3, tags: [] }],
    ]);
    const d = diffKeyed(
      current,
      [
        { tags: ['a'], v: 1, k: 'x' },
        { k: 'y', v: 5, tags: [] },
        { k: 'w', v: 0, tags: [] },
      ],
      (e) => e.k,
    );
    expect(d.add.map((e) => e.k)).toEqual(['w']);
    expect(d.update.map((e) => e.k)).toEqual(['y']);
    expect(d.remove.map((e) => e.k)).toEqual(['z']);
  });
});
