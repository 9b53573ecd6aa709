import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { validateNetConf } from './config.js';
import { NetConfSchema } from './config-schema.js';

// Values near each field's edge: valid ones, wrong types, empty strings, out-of-range numbers.
const anyValue = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.constant(''),
  fc.constant('true'),
  fc.constant('false'),
  fc.constant('podnet'),
  fc.constantFrom('userspace', 'kernel', 'netlink', 'iproute2', 'warn', 'debug', 'silent', 'magic'),
  fc.boolean(),
  fc.integer({ min: -5, max: 70_000 }),
  fc.constantFrom(0, 1, 67, 68, 1500, 65535, 65536, 1.5),
  fc.constant([]),
  fc.constant(['a']),
  fc.constant([1]),
  fc.constant({}),
  fc.string({ maxLength: 4 }),
);

/** Mostly absent, sometimes an edge value: keeps configs with every field valid frequent. */
const maybe = <T>(arb: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
/** Mostly the valid value, sometimes an edge value. */
const usually = (valid: unknown) =>
  fc.oneof({ weight: 12, arbitrary: fc.constant(valid) }, { weight: 1, arbitrary: anyValue });

const attachments = fc.oneof(
  anyValue,
  fc.array(
    fc.oneof(
      anyValue,
      fc.record({ containerID: usually('c1'), ifname: usually('eth0') }, { requiredKeys: [] }),
    ),
    { maxLength: 2 },
  ),
);

const ipam = fc.oneof(
  anyValue,
  fc.record(
    {
      type: maybe(anyValue),
      ipv4_pools: maybe(fc.oneof(anyValue, fc.array(anyValue, { maxLength: 2 }))),
      ipv6_pools: maybe(fc.oneof(anyValue, fc.array(anyValue, { maxLength: 2 }))),
      assign_ipv4: maybe(anyValue),
      assign_ipv6: maybe(anyValue),
    },
    { requiredKeys: [] },
  ),
);

const netconf = fc.record(
  {
    cniVersion: usually('1.0.0'),
    name: usually('podnet'),
    type: usually('podnet'),
    kubeconfig: maybe(anyValue),
    nodeName: maybe(anyValue),
    mtu: maybe(anyValue),
    ipam: maybe(ipam),
    arpMode: maybe(anyValue),
    dataplane: maybe(anyValue),
    logLevel: maybe(anyValue),
    logFile: maybe(anyValue),
    cacheDir: maybe(anyValue),
    datastoreTimeoutMs: maybe(anyValue),
    disableGC: maybe(anyValue),
    gcGracePeriodSeconds: maybe(anyValue),
    runtimeConfig: maybe(anyValue),
    prevResult: maybe(anyValue),
    'cni.dev/valid-attachments': maybe(attachments),
    'cni.dev/attachments': maybe(attachments),
  },
  { requiredKeys: [] },
);

/** What JSON would carry: undefined-valued keys are absent. */
const viaJson = (o: unknown) => JSON.parse(JSON.stringify(o)) as Record<string, unknown>;

describe('validateNetConf', () => {
  it('accepts and rejects exactly what the zod NetConfSchema does, with the same result', () => {
    const seen = { accepted: 0, rejected: 0 };
    fc.assert(
      fc.property(netconf, (raw) => {
        const json = viaJson(raw);
        const mine = validateNetConf(json);
        const theirs = NetConfSchema.safeParse(json);
        expect(mine.ok).toBe(theirs.success);
        seen[mine.ok ? 'accepted' : 'rejected'] += 1;
        if (mine.ok && theirs.success) expect(mine.value).toEqual(theirs.data);
        if (!mine.ok && !theirs.success) {
          // Both name a field zod also finds wrong (zod may stop earlier inside a union).
          const zodPaths = theirs.error.issues.map((i) => i.path.join('.'));
          expect(mine.issues.some((i) => zodPaths.some((p) => i.path.join('.').startsWith(p)))).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
    // The generator reaches both sides of every check often enough to mean something.
    expect(seen.accepted).toBeGreaterThan(30);
    expect(seen.rejected).toBeGreaterThan(30);
  });
});
