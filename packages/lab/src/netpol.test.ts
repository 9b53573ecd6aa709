// The netpol matrix helpers: keys, mismatches and the printed grids (no lab needed).
import { describe, expect, it } from 'vitest';
import { containerPorts, type Matrix, matrixKey, mismatches, probes, renderMatrix } from './netpol.js';

describe('netpol matrices', () => {
  const p = { port: 80, proto: 'tcp' as const, family: 4 as const };

  it('names every differing cell with what was expected and seen', () => {
    const expected: Matrix = new Map([
      [matrixKey('x/a', 'x/b', p), true],
      [matrixKey('x/b', 'x/a', p), false],
    ]);
    const seen: Matrix = new Map([
      [matrixKey('x/a', 'x/b', p), false],
      [matrixKey('x/b', 'x/a', p), false],
    ]);
    expect(mismatches(expected, seen)).toEqual(['x/a>x/b tcp/80 v4: expected allowed, saw denied']);
    expect(mismatches(expected, new Map())).toHaveLength(2);
  });

  it('prints one grid per protocol/port and family, differing cells in brackets', () => {
    const seen: Matrix = new Map([
      [matrixKey('x/a', 'x/b', p), false],
      [matrixKey('x/b', 'x/a', p), true],
    ]);
    const expected: Matrix = new Map([
      [matrixKey('x/a', 'x/b', p), true],
      [matrixKey('x/b', 'x/a', p), true],
    ]);
    const text = renderMatrix(seen, ['x/a', 'x/b'], [4], expected);
    expect(text.split('\n').slice(0, 4)).toEqual([
      'tcp/80 IPv4',
      '      x/a x/b',
      'x/a     - [X]',
      'x/b     .   -',
    ]);
    expect(probes([4, 6])).toHaveLength(8);
  });

  it('gives the named port web a different number on pods a than on b and c', () => {
    const web = (pod: string) => containerPorts(pod).find((c) => c.name === 'web')?.containerPort;
    expect([web('a'), web('b'), web('c')]).toEqual([80, 81, 81]);
  });
});
