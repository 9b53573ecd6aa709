// Keeps the kernel's `inet podnet` equal to the table buildNetfilter() computes: on every input
// change (only when the model changed) and on the resync timer, which reads the kernel back and
// repairs drift (someone flushed or edited the table). A failure (no nft program, the kernel
// refusing) is logged once per distinct error and reported in /status; the agent keeps running.
import type { NftTable, Table } from '@podnet/nft';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';

export interface NetfilterStatus {
  table: string;
  /** Transactions applied by this agent. */
  generation: number;
  /** The last sync succeeded. */
  applied: boolean;
  lastError?: string;
  /** ISO time of the last successful sync. */
  lastSync?: string;
  /** Resyncs that found the table changed by someone else and restored it. */
  driftRepairs: number;
}

/** What the agent drives; NetfilterReconciler is the real one. */
export interface NetfilterPort {
  /** Applies `table` when it differs from what was applied last (`resync`: read the kernel, repair drift). */
  sync(table: Table, opts: { resync: boolean }): Promise<void>;
  status(): NetfilterStatus;
}

export class NetfilterReconciler implements NetfilterPort {
  private readonly log: Logger;
  /** The last table applied (compared by sameTable: by identity where the objects are kept). */
  private applied: Table | undefined;
  private generation = 0;
  private driftRepairs = 0;
  private lastError: string | undefined;
  private lastSync: Date | undefined;
  private tableName = 'podnet';
  /**
   * One sync at a time (the event loop and the timer never interleave two transactions), and only
   * the newest model waits: a slow `nft` never builds a queue.
   */
  private pending: { table: Table; resync: boolean } | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly o: {
      nft: Pick<NftTable, 'sync'>;
      log: Logger;
      metrics: Metrics;
      now?: () => number;
    },
  ) {
    this.log = o.log.child({ component: 'netfilter' });
  }

  sync(table: Table, opts: { resync: boolean }): Promise<void> {
    this.pending = { table, resync: opts.resync || (this.pending?.resync ?? false) };
    if (!this.running)
      this.running = this.drain().finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async drain(): Promise<void> {
    for (let p = this.pending; p; p = this.pending) {
      this.pending = undefined;
      await this.syncNow(p.table, p.resync);
    }
  }

  private async syncNow(table: Table, resync: boolean): Promise<void> {
    this.tableName = table.name ?? 'podnet';
    const same = sameTable(table, this.applied, true);
    if (!resync && same && !this.lastError) return;
    const now = this.o.now ?? Date.now;
    const started = now();
    const m = this.o.metrics;
    try {
      const r = await this.o.nft.sync(table);
      // sync() reads the kernel and writes only what differs from the model. A transaction for a
      // model equal to the one applied last, or a full one for an unchanged structure, can only
      // mean the kernel was changed by someone else (one read: no race with a second read).
      const repaired =
        r.mode !== 'none' && (same || (r.mode === 'full' && sameTable(table, this.applied, false)));
      if (r.mode !== 'none') {
        this.generation++;
        m.netfilterGeneration.set(this.generation);
        m.netfilterTransactions.inc({ mode: r.mode });
      }
      if (repaired) {
        this.driftRepairs++;
        m.netfilterDriftRepairs.inc();
        this.log.warn(
          { table: `inet ${this.tableName}`, mode: r.mode, script: r.script.slice(0, 2000) },
          'inet podnet was changed outside podnet; restored',
        );
      } else if (r.mode !== 'none') {
        this.log.info(
          {
            table: `inet ${this.tableName}`,
            mode: r.mode,
            via: r.via,
            generation: this.generation,
            // The transaction and its checks, from the model handed over (not the pass before it).
            ms: Math.round((now() - started) * 10) / 10,
            ...(r.phases ? { phases: r.phases } : {}),
          },
          'netfilter table applied',
        );
      }
      if (this.lastError) this.log.info('netfilter table applied again after errors');
      this.applied = table;
      this.lastError = undefined;
      this.lastSync = new Date(now());
      m.netfilterApplied.set(1);
    } catch (err) {
      const e = err as Error & { code?: string; stderr?: string };
      m.netfilterErrors.inc({ code: e.code ?? 'unknown' });
      m.netfilterApplied.set(0);
      if (e.message !== this.lastError)
        this.log.error(
          { err: e.message, code: e.code, stderr: e.stderr?.slice(0, 2000) },
          e.code === 'NFT_ERR_EXEC'
            ? 'cannot program inet podnet: the nft program could not be run (install Debian nftables); retrying on every resync'
            : 'cannot program inet podnet; retrying on every resync',
        );
      this.lastError = e.message;
    } finally {
      m.netfilterSyncDuration.set((now() - started) / 1000);
    }
  }

  status(): NetfilterStatus {
    return {
      table: `inet ${this.tableName}`,
      generation: this.generation,
      applied: this.applied !== undefined && this.lastError === undefined,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      ...(this.lastSync ? { lastSync: this.lastSync.toISOString() } : {}),
      driftRepairs: this.driftRepairs,
    };
  }
}

/**
 * Whether `a` equals `b` (`elements` false: apart from set and map elements). Objects the agent
 * keeps from one model to the next (the policy fragment's chains and sets, LowerMemo) compare by
 * identity; only the others are serialised, so an unchanged table of thousands of elements costs
 * a walk, not a JSON text of the whole table on every pass.
 */
export function sameTable(a: Table, b: Table | undefined, elements: boolean): boolean {
  if (!b || (a.name ?? 'podnet') !== (b.name ?? 'podnet')) return false;
  const bare = (x: object) => (elements || !('elements' in x) ? x : { ...x, elements: [] });
  const same = (xs: readonly object[] = [], ys: readonly object[] = []) =>
    xs.length === ys.length &&
    xs.every((x, i) => x === ys[i] || JSON.stringify(bare(x)) === JSON.stringify(bare(ys[i]!)));
  return same(a.chains, b.chains) && same(a.sets, b.sets) && same(a.maps, b.maps);
}
