import { describe, expect, it } from 'vitest';
import { formatAge, formatPercent, render, renderTable } from './format.js';

describe('renderTable', () => {
  it('aligns columns to the widest cell, right-aligns numbers, and shows - for empty cells', () => {
    const out = renderTable(
      [
        { header: 'PEER', value: (r: { p: string; n: number; i?: string }) => r.p },
        { header: 'IN', value: (r) => r.n, align: 'right' },
        { header: 'INFO', value: (r) => r.i },
      ],
      [
        { p: '10.0.0.1', n: 5, i: 'tor' },
        { p: '10.0.0.100', n: 12345 },
      ],
    );
    expect(out).toBe(
      ['PEER           IN  INFO', '10.0.0.1        5  tor', '10.0.0.100  12345  -'].join('\n'),
    );
  });
});

describe('formatAge', () => {
  it.each([
    [0, '0s'],
    [42_000, '42s'],
    [302_000, '5m2s'],
    [2 * 3600_000 + 13 * 60_000, '2h13m'],
    [3 * 86400_000 + 4 * 3600_000, '3d4h'],
    [-1, '-'],
  ])('%d ms → %s', (ms, want) => {
    expect(formatAge(ms)).toBe(want);
  });
});

describe('render', () => {
  const data = { a: 1, b: ['x'] };
  it.each([
    ['json', '{\n  "a": 1,\n  "b": [\n    "x"\n  ]\n}'],
    ['yaml', 'a: 1\nb:\n  - x'],
    ['table', 'TABLE'],
  ] as const)('%s', (fmt, want) => {
    expect(render(fmt, data, () => 'TABLE')).toBe(want);
  });

  it('formats a utilisation percentage', () => {
    expect(formatPercent(16, 64)).toBe('25.0%');
    expect(formatPercent(1, 0)).toBe('-');
  });
});
