/**
 * What the agent's start-up leaves resident, given back once start-up is over and then at a long
 * interval (docs/footprint.md, "After start-up"):
 * - V8's last-resort collection (the one a low-memory notification runs): full collections until
 *   one frees nothing more; the young generation is left at its smallest (1 MiB in the lab);
 * - malloc's free pages;
 * - the pages of the Node executable that start-up faulted in (V8's snapshot, the compilers, the
 *   module loader): unmapped, so only the ones used again come back, from the page cache.
 * Nothing here changes what the agent does; a trim costs one pause of the event loop (66-148
 * ms in the lab), logged with what it gave back.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { mallocTrim, releaseExecutablePages } from '@podnet/native';
import type { Logger } from 'pino';

type Gc = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

let exposedGc: Gc | null | undefined;

/**
 * V8's gc(), taken from a new context while `--expose-gc` is set for a moment: the agent's own
 * global scope never has it. Null when V8 refuses.
 */
function lastResortGc(): Gc | null {
  if (exposedGc === undefined) {
    const global = (globalThis as { gc?: Gc }).gc;
    if (global) {
      exposedGc = global;
    } else {
      try {
        v8.setFlagsFromString('--expose-gc');
        const gc: unknown = vm.runInNewContext('gc');
        exposedGc = typeof gc === 'function' ? (gc as Gc) : null;
      } catch {
        exposedGc = null;
      } finally {
        v8.setFlagsFromString('--no-expose-gc');
      }
    }
  }
  return exposedGc;
}

export interface TrimReport {
  /** The pause: from the first step to the last. */
  ms: number;
  /** False when V8's gc could not be had (the rest still ran). */
  collected: boolean;
  heapUsedBefore: number;
  heapUsedAfter: number;
  rssBefore: number;
  /** Resident bytes of the executable that were unmapped. */
  executableReleased: number;
}

/** One trim, now. */
export function trimFootprint(): TrimReport {
  const start = performance.now();
  const before = process.memoryUsage();
  const gc = lastResortGc();
  gc?.({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  mallocTrim();
  const executableReleased = releaseExecutablePages();
  const heapUsedAfter = process.memoryUsage().heapUsed;
  return {
    ms: Math.round((performance.now() - start) * 10) / 10,
    collected: gc !== null,
    heapUsedBefore: before.heapUsed,
    heapUsedAfter,
    rssBefore: before.rss,
    executableReleased,
  };
}

export interface FootprintTrimOptions {
  logger: Logger;
  /** The first trim, this long after start-up's end. */
  firstAfterMs: number;
  /** Then one every this long. */
  intervalMs: number;
  /** The trim itself (tests). */
  trim?: () => TrimReport;
  /** The resident set size now (tests). */
  rss?: () => number;
}

/**
 * The trim's log line waits this long for its RSS figure: right after the trim the executable's
 * pages in use have not faulted back yet, and the figure would be lower than any the process holds.
 */
export const TRIM_SETTLE_MS = 30_000;

const mb = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;

/** Trims once `firstAfterMs` after the call, then every `intervalMs`; stop() ends it. */
export function scheduleFootprintTrim(opts: FootprintTrimOptions): { stop(): void } {
  const trim = opts.trim ?? trimFootprint;
  const rss = opts.rss ?? (() => process.memoryUsage.rss());
  let interval: NodeJS.Timeout | undefined;
  let settle: NodeJS.Timeout | undefined;
  const run = (): void => {
    let r: TrimReport;
    try {
      r = trim();
    } catch (err) {
      opts.logger.warn({ err }, 'memory trim failed; the agent goes on');
      return;
    }
    clearTimeout(settle);
    settle = setTimeout(() => {
      opts.logger.info(
        {
          pauseMs: r.ms,
          collected: r.collected,
          heapUsedMb: [mb(r.heapUsedBefore), mb(r.heapUsedAfter)],
          executableReleasedMb: mb(r.executableReleased),
          rssMb: [mb(r.rssBefore), mb(rss())],
          rssSettledAfterMs: TRIM_SETTLE_MS,
        },
        'memory trimmed',
      );
    }, TRIM_SETTLE_MS);
    settle.unref();
  };
  const first = setTimeout(() => {
    run();
    interval = setInterval(run, opts.intervalMs);
    interval.unref();
  }, opts.firstAfterMs);
  first.unref();
  return {
    stop() {
      clearTimeout(first);
      clearTimeout(settle);
      if (interval) clearInterval(interval);
    },
  };
}
