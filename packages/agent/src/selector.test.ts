import { describe, expect, it } from 'vitest';
import { compileSelector } from './selector.js';

const labels = { rack: 'r1', zone: 'eu-1', 'podnet.io/rr': '' };

describe('compileSelector', () => {
  it.each([
    ['', true],
    ['all()', true],
    ['rack=r1', true],
    ['rack==r2', false],
    ['rack!=r2', true],
    ['rack', true],
    ['!rack', false],
    ['podnet.io/rr', true],
    ['rack=r1,zone=eu-1', true],
    ['rack=r1,zone!=eu-1', false],
    ['rack in (r1,r2)', true],
    ['rack notin (r1)', false],
    ['!missing', true],
  ])('%s → %s', (sel, want) => {
    expect(compileSelector(sel)(labels)).toBe(want);
  });

  it.each(['rack = = r1', 'rack in (r1', '=x'])('rejects %s naming the selector', (sel) => {
    expect(() => compileSelector(sel)).toThrow(/selector/);
  });
});
