import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateComposeSpec } from './spec.js';

const composeText = readFileSync(new URL('../../../compose.yaml', import.meta.url), 'utf8');

describe('compose.yaml against the Compose Specification schema', () => {
  it('validates the repository compose.yaml', () => {
    expect(validateComposeSpec(parse(composeText, { merge: true }))).toEqual([]);
  });

  const bad: [string, unknown, string][] = [
    ['an unknown top-level key', { services: {}, bogus: 1 }, '/'],
    ['a service key the spec does not define', { services: { a: { image: 'x', bogus: 1 } } }, '/services/a'],
    ['networks as a number', { services: { a: { image: 'x', networks: 3 } } }, '/services/a/networks'],
    [
      'ipv4_address as a number',
      { services: { a: { image: 'x', networks: { n: { ipv4_address: 10 } } } } },
      '/services/a/networks',
    ],
    [
      'a subnet that is not a CIDR',
      { services: {}, networks: { n: { ipam: { config: [{ subnet: 'nope' }] } } } },
      '/networks/n/ipam/config/0/subnet',
    ],
    ['profiles as a string', { services: { a: { image: 'x', profiles: 'frr' } } }, '/services/a/profiles'],
  ];
  it.each(bad)('rejects %s, naming where', (_what, doc, path) => {
    const problems = validateComposeSpec(doc);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.some((p) => p.path.startsWith(path))).toBe(true);
  });

  it('accepts x- extension fields at the top level and in services', () => {
    expect(
      validateComposeSpec({
        'x-podnet': { a: 1 },
        services: { a: { image: 'x', 'x-podnet': { role: 'node' } } },
      }),
    ).toEqual([]);
  });
});
