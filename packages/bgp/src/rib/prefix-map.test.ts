import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { v4Key } from '../wire/ip.js';
import { PrefixMap } from './prefix-map.js';
import type { PrefixKey } from './rib.js';

const key = fc.oneof(
  // Dense small keys force long probe runs and wrap-around.
  fc.integer({ min: 1, max: 300 }),
  fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 })).map(([a, l]) => {
    const net = l === 0 ? 0 : Math.floor(a / 2 ** (32 - l));
    return v4Key(net * 2 ** (32 - l), l);
  }),
  fc.constantFrom('2001:db8::/32', '2001:db8:1::/48', 'fd00::/8'),
);
const op = fc.oneof(
  fc.tuple(fc.constant('set' as const), key, fc.integer()),
  fc.tuple(fc.constant('delete' as const), key, fc.constant(0)),
);

describe('PrefixMap', () => {
  it('behaves like a Map for any sequence of sets and deletes', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const m = new PrefixMap<number>(4);
        const model = new Map<PrefixKey, number>();
        for (const [kind, k, v] of ops) {
          if (kind === 'set') {
            m.set(k, v);
            model.set(k, v);
          } else expect(m.delete(k)).toBe(model.delete(k));
          expect(m.size).toBe(model.size);
        }
        for (const [k, v] of model) {
          expect(m.get(k)).toBe(v);
          expect(m.has(k)).toBe(true);
        }
        const got = [...m].sort((a, b) => String(a[0]).localeCompare(String(b[0])));
        const want = [...model].sort((a, b) => String(a[0]).localeCompare(String(b[0])));
        expect(got).toEqual(want);
        expect([...m.keys()].length).toBe(model.size);
        expect([...m.values()].length).toBe(model.size);
      }),
      { numRuns: 400 },
    );
  });

  it('holds a million IPv4 keys and finds each again', () => {
    const m = new PrefixMap<number>();
    for (let i = 0; i < 1_000_000; i++) m.set(v4Key(0x01000000 + i * 256, 24), i);
    expect(m.size).toBe(1_000_000);
    for (let i = 0; i < 1_000_000; i += 997) expect(m.get(v4Key(0x01000000 + i * 256, 24))).toBe(i);
    for (let i = 0; i < 1_000_000; i += 2) m.delete(v4Key(0x01000000 + i * 256, 24));
    expect(m.size).toBe(500_000);
    for (let i = 1; i < 1_000_000; i += 1001)
      expect(m.get(v4Key(0x01000000 + i * 256, 24))).toBe(i % 2 ? i : undefined);
    m.clear();
    expect(m.size).toBe(0);
  });
});
