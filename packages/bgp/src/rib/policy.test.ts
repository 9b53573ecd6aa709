import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePolicy, type PrefixRule, prefixAllowed, prefixAllowedV4 } from './policy.js';

const dotted = (a: number) => [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.');
/** An IPv4 prefix as [network with host bits zero, length]. */
const v4 = fc
  .tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }))
  .map(([a, len]) => [len === 0 ? 0 : (a & ~(0xffffffff >>> len)) >>> 0, len] as const);
const rule = fc
  .tuple(v4, fc.integer({ min: 0, max: 32 }), fc.integer({ min: 0, max: 32 }), fc.boolean(), fc.boolean())
  .map(([[a, len], x, y, accept, ranged]): PrefixRule => {
    const ge = Math.max(len, Math.min(x, y));
    return ranged
      ? { prefix: `${dotted(a)}/${len}`, ge, le: Math.max(ge, x, y), action: accept ? 'accept' : 'reject' }
      : { prefix: `${dotted(a)}/${len}`, action: accept ? 'accept' : 'reject' };
  });
const ipv6Rule: PrefixRule = { prefix: '2001:db8::/32', le: 128, action: 'reject' };

describe('prefixAllowedV4', () => {
  it('agrees with prefixAllowed on the prefix written out, for any prefix list', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(rule, fc.constant(ipv6Rule)), { maxLength: 12 }),
        fc.constantFrom('accept', 'reject'),
        // Prefixes near the rules' own networks as well as anywhere.
        fc.array(v4, { minLength: 1, maxLength: 20 }),
        (rules, defaultAction, prefixes) => {
          const p = compilePolicy({ prefixList: rules, defaultAction }, 'import');
          const near = rules
            .filter((r) => r !== ipv6Rule)
            .flatMap((r) => {
              const [a, l] = r.prefix.split('/');
              const n = a!.split('.').reduce((x, o) => x * 256 + Number(o), 0);
              // The rule's own prefix (an exact rule's lookup) and a longer one inside it.
              return [[n, Number(l)] as const, [n, Math.min(32, Number(l) + 2)] as const];
            });
          for (const [a, len] of [...prefixes, ...near]) {
            const net = len === 0 ? 0 : (a & ~(0xffffffff >>> len)) >>> 0;
            expect(prefixAllowedV4(p, net, len)).toBe(prefixAllowed(p, `${dotted(net)}/${len}`));
          }
        },
      ),
    );
  });

  it('accepts inside 100.64.0.0/10 and rejects the rest with that single rule', () => {
    const p = compilePolicy(
      { prefixList: [{ prefix: '100.64.0.0/10', le: 32, action: 'accept' }], defaultAction: 'reject' },
      'import',
    );
    expect(prefixAllowedV4(p, 0x64400000, 10)).toBe(true); // 100.64.0.0/10
    expect(prefixAllowedV4(p, 0x647f0100, 24)).toBe(true); // 100.127.1.0/24
    expect(prefixAllowedV4(p, 0x64800000, 24)).toBe(false); // 100.128.0.0/24
    expect(prefixAllowedV4(p, 0x64000000, 8)).toBe(false); // 100.0.0.0/8: shorter than the rule
    expect(prefixAllowedV4(p, 0x01000000, 24)).toBe(false);
    expect(prefixAllowedV4(undefined, 0x01000000, 24)).toBe(true);
  });
});
