// Address spans to prefixes: exact cover, no overlaps, fewest prefixes for a single span.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { subtract, toPrefixes, union } from './ranges.js';

const v4 = (s: string) => s.split('.').reduce((a, o) => (a << 8n) + BigInt(o), 0n);

/** The spans a list of IPv4 prefixes covers, from the text alone. */
function covered(prefixes: string[]) {
  return prefixes.map((p) => {
    const [a, l] = p.split('/');
    const size = 1n << BigInt(32 - Number(l ?? 32));
    return { start: v4(a!), end: v4(a!) + size - 1n };
  });
}

describe('toPrefixes', () => {
  it.each<[string, bigint, bigint, string[]]>([
    ['a whole /24', v4('10.0.0.0'), v4('10.0.0.255'), ['10.0.0.0/24']],
    ['one host', v4('10.0.0.7'), v4('10.0.0.7'), ['10.0.0.7']],
    [
      'an unaligned range',
      v4('10.0.0.1'),
      v4('10.0.0.6'),
      ['10.0.0.1', '10.0.0.2/31', '10.0.0.4/31', '10.0.0.6'],
    ],
    ['everything', 0n, (1n << 32n) - 1n, ['0.0.0.0/0']],
  ])('%s', (_n, start, end, want) => {
    expect(toPrefixes(4, [{ start, end }])).toEqual(want);
  });

  it('covers exactly the spans, with aligned prefixes that never overlap', () => {
    const span = fc
      .tuple(fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }), fc.bigInt({ min: 0n, max: 1n << 20n }))
      .map(([s, len]) => ({ start: s, end: s + len > (1n << 32n) - 1n ? (1n << 32n) - 1n : s + len }));
    fc.assert(
      fc.property(fc.array(span, { maxLength: 5 }), fc.array(span, { maxLength: 3 }), (spans, minus) => {
        const want = subtract(spans, minus);
        const got = union(covered(toPrefixes(4, want)));
        expect(got).toEqual(union(want));
        const raw = covered(toPrefixes(4, want)).sort((a, b) => (a.start < b.start ? -1 : 1));
        for (let i = 1; i < raw.length; i++) expect(raw[i]!.start).toBeGreaterThan(raw[i - 1]!.end);
      }),
      { numRuns: 200 },
    );
  });
});
