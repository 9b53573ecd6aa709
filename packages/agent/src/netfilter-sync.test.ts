import { NftError, type NftTable, type SyncResult, type Table } from '@podnet/nft';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createMetrics } from './metrics.js';
import { buildNetfilter } from './netfilter.js';
import { NetfilterReconciler, sameTable } from './netfilter-sync.js';

/** NftTable.sync scripted: what each call returns (or throws). */
class FakeNft implements Pick<NftTable, 'sync'> {
  synced: Table[] = [];
  next: (SyncResult | Error)[] = [];

  async sync(model: Table): Promise<SyncResult> {
    this.synced.push(model);
    const r = this.next.shift() ?? { mode: 'elements', script: 'x' };
    if (r instanceof Error) throw r;
    return r;
  }
}

const table = (natOutgoing: boolean) =>
  buildNetfilter({
    nodeName: 'n1',
    pools: [
      {
        name: 'p',
        cidr: '10.244.0.0/16',
        blockSize: 26,
        disabled: false,
        disableBGPExport: false,
        natOutgoing,
      },
    ],
    nodes: [],
    bgpConfigs: [],
  }).table;

async function value(metrics: ReturnType<typeof createMetrics>, name: string): Promise<number> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).reduce((n, v) => n + v.value, 0);
}

function setup() {
  const nft = new FakeNft();
  const metrics = createMetrics();
  const r = new NetfilterReconciler({ nft, log: pino({ level: 'silent' }), metrics });
  return { nft, metrics, r };
}

describe('NetfilterReconciler', () => {
  it('applies a changed model, skips an unchanged one, and counts the generation', async () => {
    const { nft, metrics, r } = setup();
    nft.next = [
      { mode: 'full', script: 'a' },
      { mode: 'elements', script: 'b' },
    ];
    await r.sync(table(true), { resync: false });
    await r.sync(table(true), { resync: false });
    expect(nft.synced).toHaveLength(1);
    await r.sync(table(false), { resync: false });
    expect(nft.synced).toHaveLength(2);
    expect(r.status()).toMatchObject({ table: 'inet podnet', generation: 2, applied: true, driftRepairs: 0 });
    expect(await value(metrics, 'podnet_netfilter_generation')).toBe(2);
    expect(await value(metrics, 'podnet_netfilter_transactions_total')).toBe(2);
    expect(await value(metrics, 'podnet_netfilter_applied')).toBe(1);
  });

  it('on resync counts a repair when the kernel needed a transaction the model did not', async () => {
    const { nft, metrics, r } = setup();
    nft.next = [
      { mode: 'full', script: 'a' },
      { mode: 'none', script: '' },
    ];
    await r.sync(table(true), { resync: false });
    await r.sync(table(true), { resync: true });
    expect(nft.synced).toHaveLength(2);
    expect(r.status().driftRepairs).toBe(0);
    // Same model, but the kernel lost its rules (full) or an element (elements): both repairs.
    nft.next = [
      { mode: 'full', script: 'flush…' },
      { mode: 'elements', script: 'add element…' },
    ];
    await r.sync(table(true), { resync: true });
    await r.sync(table(true), { resync: true });
    // A changed pool applied as elements, or the first full sync, is not a repair.
    nft.next = [{ mode: 'elements', script: 'delete element…' }];
    await r.sync(table(false), { resync: false });
    expect(r.status()).toMatchObject({ driftRepairs: 2, generation: 4, applied: true });
    expect(await value(metrics, 'podnet_netfilter_drift_repairs_total')).toBe(2);
  });

  it('counts a full transaction for an unchanged structure with changed elements as a repair', async () => {
    const { nft, r } = setup();
    nft.next = [
      { mode: 'full', script: 'a' },
      { mode: 'full', script: 'b' },
    ];
    await r.sync(table(true), { resync: false });
    await r.sync(table(false), { resync: false });
    expect(r.status().driftRepairs).toBe(1);
  });

  it('reports a failure (no nft program) in its status and metrics, and recovers on the next sync', async () => {
    const { nft, metrics, r } = setup();
    nft.next = [new NftError('NFT_ERR_EXEC', 'cannot run nft -f -: spawn nft ENOENT')];
    await r.sync(table(true), { resync: false });
    expect(r.status()).toMatchObject({ applied: false, lastError: 'cannot run nft -f -: spawn nft ENOENT' });
    expect(await value(metrics, 'podnet_netfilter_errors_total')).toBe(1);
    expect(await value(metrics, 'podnet_netfilter_applied')).toBe(0);
    // The same model is tried again after an error (not skipped as already applied).
    await r.sync(table(true), { resync: false });
    expect(r.status()).toMatchObject({ applied: true, generation: 1 });
    expect(r.status().lastError).toBeUndefined();
  });
});

describe('sameTable', () => {
  it('compares kept objects by identity and new ones by content, with or without set elements', () => {
    const a = table(true);
    const copy = JSON.parse(JSON.stringify(a)) as Table;
    expect(sameTable(a, a, true)).toBe(true);
    expect(sameTable(copy, a, true)).toBe(true);
    expect(sameTable(table(false), a, true)).toBe(false);
    expect(sameTable(table(false), a, false)).toBe(true);
    const renamed = { ...copy, chains: copy.chains.map((c, i) => (i === 0 ? { ...c, name: 'other' } : c)) };
    expect(sameTable(renamed, a, false)).toBe(false);
    expect(sameTable({ ...copy, chains: copy.chains.slice(1) }, a, true)).toBe(false);
    expect(sameTable({ ...copy, name: 'other' }, a, true)).toBe(false);
    expect(sameTable(a, undefined, true)).toBe(false);
  });
});

describe('NetfilterReconciler while nft is slow', () => {
  it('keeps only the newest model waiting, never a queue', async () => {
    let release: () => void = () => {};
    const seen: Table[] = [];
    const nft: Pick<NftTable, 'sync'> = {
      sync: async (t) => {
        seen.push(t);
        if (seen.length === 1) await new Promise<void>((r) => (release = r));
        return { mode: 'elements', script: 'x' };
      },
    };
    const r = new NetfilterReconciler({ nft, log: pino({ level: 'silent' }), metrics: createMetrics() });
    const first = r.sync(table(true), { resync: false });
    await Promise.resolve();
    void r.sync(table(false), { resync: false });
    void r.sync(table(true), { resync: false });
    const last = r.sync(table(false), { resync: true });
    release();
    await Promise.all([first, last]);
    // The first, then only the last of the three that waited.
    expect(seen).toEqual([table(true), table(false)]);
    expect(r.status().generation).toBe(2);
  });
});
