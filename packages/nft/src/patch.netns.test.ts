// The incremental transaction against the real kernel: a patch applied over the old table leaves
// exactly what a full apply of the new model leaves in a fresh namespace, read back with nft.
import { cleanupStale, type Netns, NetnsSet } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableListing } from './__fixtures__/listing.js';
import { natModel } from './__fixtures__/models.js';
import { policyModel } from './__fixtures__/patch-models.js';
import { type NftExecutor, nftCli } from './exec.js';
import { NftTable } from './nft.js';

const lab = new NetnsSet();
let patched: Netns;
let fresh: Netns;

describe('NftTable patch transactions in namespaces with the real nft', () => {
  beforeAll(async () => {
    await cleanupStale();
    patched = await lab.create('nftpatch');
    fresh = await lab.create('nftfull');
  });

  afterAll(() => lab.destroy());

  it('a patch gives the same table as the full program of the new model, both ways', async () => {
    const a = new NftTable({ exec: nftCli({ netns: patched.name }) });
    expect((await a.sync(policyModel(1))).mode).toBe('full');
    const toTwo = await a.sync(policyModel(2));
    expect(toTwo.mode).toBe('patch');
    expect(toTwo.script).not.toContain('flush table');
    expect(toTwo.via).toBe('netlink');
    const b = new NftTable({ exec: nftCli({ netns: fresh.name }) });
    expect((await b.sync(policyModel(2))).mode).toBe('full');
    const want = await tableListing(fresh);
    expect(JSON.stringify(want)).toContain('np-in-c');
    expect(await tableListing(patched)).toEqual(want);
    expect(await a.drift()).toEqual({ structural: [], elements: [] });

    // And back.
    expect((await a.sync(policyModel(1))).mode).toBe('patch');
    const c = new NftTable({ exec: nftCli({ netns: fresh.name }) });
    await fresh.run('nft', ['delete', 'table', 'inet', 'podnet']);
    expect((await c.sync(policyModel(1))).mode).toBe('full');
    expect(await tableListing(patched)).toEqual(await tableListing(fresh));
    a.close();
    b.close();
    c.close();
  });

  it('after a patch reads back only the chains it wrote; a chain it left keeps its digests (drift there is found)', async () => {
    const exec = nftCli({ netns: patched.name });
    const reads: (string | undefined)[] = [];
    const spy: NftExecutor = {
      ...exec,
      ruleDigests: (table, chain) => {
        reads.push(chain);
        return exec.ruleDigests!(table, chain);
      },
    };
    const a = new NftTable({ exec: spy });
    await patched.run('nft', ['delete', 'table', 'inet', 'podnet']);
    expect((await a.sync(policyModel(1))).mode).toBe('full');
    expect(reads).toEqual([undefined]);
    reads.length = 0;
    expect((await a.sync(policyModel(2))).mode).toBe('patch');
    // np-in-a refilled, np-in-c added (np-in-b deleted): one dump each, not the table's.
    expect(reads.sort()).toEqual(['np-in-a', 'np-in-c']);
    expect(await a.drift()).toEqual({ structural: [], elements: [] });
    // A rule of a chain the patch did not write, replaced in place by hand (the count stays the
    // same): only the digests kept from the full apply can tell.
    const untouched = natModel().chains.find((c) => c.rules.length > 0)!.name;
    const items = (
      JSON.parse(await patched.run('nft', ['-j', 'list', 'chain', 'inet', 'podnet', untouched])) as {
        nftables: { rule?: { handle: number } }[];
      }
    ).nftables;
    const handle = items.find((i) => i.rule)!.rule!.handle;
    await patched.run('nft', [
      'replace',
      'rule',
      'inet',
      'podnet',
      untouched,
      'handle',
      String(handle),
      'meta',
      'l4proto',
      'tcp',
      'accept',
    ]);
    const r = await a.sync(policyModel(2));
    expect(r.mode).toBe('full');
    expect(r.repaired?.join('\n')).toContain(`chain ${untouched} rule 1 differs`);
    a.close();
  });

  it('a rule deleted by hand after a patch is drift: the next sync repairs it with a full apply', async () => {
    const a = new NftTable({ exec: nftCli({ netns: patched.name }) });
    await patched.run('nft', ['delete', 'table', 'inet', 'podnet']);
    await a.sync(policyModel(1));
    expect((await a.sync(policyModel(2))).mode).toBe('patch');
    const items = (
      JSON.parse(await patched.run('nft', ['-j', 'list', 'chain', 'inet', 'podnet', 'np-in-c'])) as {
        nftables: { rule?: { handle: number } }[];
      }
    ).nftables;
    const handle = items.find((i) => i.rule)!.rule!.handle;
    await patched.run('nft', ['delete', 'rule', 'inet', 'podnet', 'np-in-c', 'handle', String(handle)]);
    const r = await a.sync(policyModel(2));
    expect(r.mode).toBe('full');
    expect(r.repaired?.join('\n')).toMatch(/np-in-c/);
    const b = new NftTable({ exec: nftCli({ netns: fresh.name }) });
    await b.sync(policyModel(2));
    expect(await tableListing(patched)).toEqual(await tableListing(fresh));
    a.close();
    b.close();
  });
});
