// renderPatch: the incremental transaction between two models, as text (pure).
import { describe, expect, it } from 'vitest';
import { natModel } from './__fixtures__/models.js';
import { policyModel } from './__fixtures__/patch-models.js';
import { renderPatch } from './patch.js';
import { validate } from './render.js';

describe('renderPatch', () => {
  it('equal models need no transaction', () => {
    expect(renderPatch(validate(policyModel(1)), validate(policyModel(1)))).toBe('');
  });

  it('touches only what differs, in an order the kernel accepts', () => {
    const script = renderPatch(validate(policyModel(1)), validate(policyModel(2)))!;
    expect(script.trim().split('\n')).toEqual([
      'add chain inet podnet np-in-c',
      'add set inet podnet np-peers-c { type ipv4_addr; }',
      'delete element inet podnet np-peers-a { 10.65.1.1 }',
      'delete element inet podnet pod-policy { 10.65.0.2 : jump np-in-b }',
      'flush chain inet podnet np-in-a',
      'flush chain inet podnet np-in-b',
      'delete set inet podnet np-peers-b',
      'delete chain inet podnet np-in-b',
      'add element inet podnet np-peers-a { 10.65.1.3 }',
      'add element inet podnet np-peers-c { 10.65.3.1 }',
      'add element inet podnet pod-policy { 10.65.0.3 : jump np-in-c }',
      'add rule inet podnet np-in-a ip saddr @np-peers-c tcp dport 8080 return',
      'add rule inet podnet np-in-a counter drop',
      'add rule inet podnet np-in-c ip saddr @np-peers-c tcp dport 443 return',
      'add rule inet podnet np-in-c counter drop',
    ]);
    expect(script).not.toMatch(/flush table|nat-postrouting|forward/);
  });

  it("declines what it does not express: a base chain's spec, a set's flags", () => {
    const base = natModel();
    const hooked = natModel();
    hooked.chains[1]!.base!.policy = 'drop';
    expect(renderPatch(validate(base), validate(hooked))).toBeNull();
    const flags = natModel();
    flags.sets![2] = { ...flags.sets![2]!, comment: 'other' };
    expect(renderPatch(validate(base), validate(flags))).toBeNull();
  });
});
