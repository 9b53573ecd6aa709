import { describe, expect, it } from 'vitest';
import { compileSelector } from './selector.js';

const labels = { rack: 'r1', zone: 'eu-1', 'podnet.io/rr': '' };

describe('compileSelector', () => {
  it.each([
    ['', true],
    ['all()', true],
    ["rack == 'r1'", true],
    ['rack == "r2"', false],
    ["rack != 'r2'", true],
    ['has(rack)', true],
    ['!has(rack)', false],
    ['has(podnet.io/rr)', true],
    ["rack == 'r1' && zone == 'eu-1'", true],
    ["rack == 'r2' || zone == 'eu-1'", true],
    ["!(rack == 'r1')", false],
    ["rack in {'r1', 'r2'}", true],
    ["rack not in {'r1'}", false],
    ['rack=r1', true],
    ['rack=r1,zone!=eu-1', false],
    ['rack', true],
    ['!missing', true],
  ])('%s → %s', (sel, want) => {
    expect(compileSelector(sel)(labels)).toBe(want);
  });

  it.each(["rack == 'r1", 'rack ~ r1', 'has(', "rack == 'a' &&"])('rejects %s naming the selector', (sel) => {
    expect(() => compileSelector(sel)).toThrow(/selector/);
  });
});
