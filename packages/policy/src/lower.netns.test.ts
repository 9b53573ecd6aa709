// The translation's table against the real nft and kernel, in a namespace of its own: `nft -c`
// accepts the transaction, the kernel loads it, and `nft -j list` (read by the test) holds every
// chain, rule and set element the model has.
import { FAMILY, renderFull, validate } from '@podnet/nft';
import { cleanupStale, type Netns, NetnsSet } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE1, NODE2, translateFor } from './__fixtures__/cluster.js';
import { EVERY_FEATURE } from './__fixtures__/policies.js';
import { policyTable } from './lower.js';

type Item = Record<string, Record<string, unknown>>;

const lab = new NetnsSet();
let ns: Netns;

beforeAll(async () => {
  await cleanupStale();
  ns = await lab.create('policy');
});
afterAll(() => lab.destroy());

describe.each([NODE1, NODE2])('the table of node %s with the real nft', (node) => {
  const table = policyTable(translateFor(node, EVERY_FEATURE));
  const text = renderFull(validate(table));

  it('passes nft -c (check mode)', async () => {
    const r = await ns.exec('nft', ['-c', '-f', '-'], { input: text });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('loads, and the kernel holds every chain, rule and element', async () => {
    await ns.run('nft', ['-f', '-'], { input: text });
    const items = (
      JSON.parse(await ns.run('nft', ['-j', 'list', 'table', FAMILY, 'podnet'])) as { nftables: Item[] }
    ).nftables;
    const of = (kind: string) => items.filter((i) => i[kind]).map((i) => i[kind]!);
    expect(
      of('chain')
        .map((c) => c.name)
        .sort(),
    ).toEqual(table.chains.map((c) => c.name).sort());
    for (const c of table.chains)
      expect(of('rule').filter((r) => r.chain === c.name)).toHaveLength(c.rules.length);
    const kernelSets = new Map([...of('set'), ...of('map')].map((s) => [s.name as string, s]));
    for (const s of [...table.sets, ...table.maps]) {
      const elem = (kernelSets.get(s.name)?.elem ?? []) as unknown[];
      expect(elem.length, s.name).toBe(s.elements.length);
    }
    await ns.run('nft', ['delete', 'table', FAMILY, 'podnet']);
  });
});
