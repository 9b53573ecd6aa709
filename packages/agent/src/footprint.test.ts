// The memory trim: once in a real child process (V8's collection, the executable's pages), and its
// schedule with fake timers.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { scheduleFootprintTrim, TRIM_SETTLE_MS, type TrimReport } from './footprint.js';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');

describe('trimFootprint (a child process)', () => {
  it('collects what start-up left, unmaps the executable pages, and never exposes gc on the global', () => {
    // Start-up-like work: a few MB of objects built and dropped, code compiled and run once.
    const script = `
      const { trimFootprint } = await import(${JSON.stringify(pathToFileURL(join(DIST, 'footprint.js')).href)});
      let junk = [];
      for (let i = 0; i < 200000; i++) junk.push({ i, s: 'x' + i });
      for (let i = 0; i < 200; i++) new Function('a', 'return a + ' + i)(1);
      junk = undefined;
      const r = trimFootprint();
      // Read at once: the executable's pages in use have not faulted back yet.
      const rssAfter = process.memoryUsage.rss();
      const again = trimFootprint();
      console.log(JSON.stringify({ r, rssAfter, again, gcOnGlobal: typeof globalThis.gc }));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    const { r, rssAfter, again, gcOnGlobal } = JSON.parse(out) as {
      r: TrimReport;
      rssAfter: number;
      again: TrimReport;
      gcOnGlobal: string;
    };
    const mb = 1024 * 1024;
    expect(r.collected).toBe(true);
    expect(r.heapUsedAfter).toBeLessThan(r.heapUsedBefore - 5 * mb);
    expect(r.executableReleased).toBeGreaterThan(10 * mb);
    expect(rssAfter).toBeLessThan(r.rssBefore - 15 * mb);
    // The second trim finds the collector already had, and little of the executable back.
    expect(again.collected).toBe(true);
    expect(again.executableReleased).toBeLessThan(r.executableReleased / 2);
    expect(gcOnGlobal).toBe('undefined');
  });
});

describe('scheduleFootprintTrim', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const report: TrimReport = {
    ms: 12.5,
    collected: true,
    heapUsedBefore: 20 * 1048576,
    heapUsedAfter: 17 * 1048576,
    rssBefore: 96 * 1048576,
    executableReleased: 48.5 * 1048576,
  };

  function logged() {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
    return { logger, lines };
  }

  it('trims once after start-up, then at the interval, logs each with the RSS it settled at, and stops', () => {
    vi.useFakeTimers();
    const { logger, lines } = logged();
    let calls = 0;
    const s = scheduleFootprintTrim({
      logger,
      firstAfterMs: 60_000,
      intervalMs: 600_000,
      trim: () => {
        calls++;
        return report;
      },
      rss: () => 70 * 1048576,
    });
    vi.advanceTimersByTime(59_999);
    expect(calls).toBe(0);
    vi.advanceTimersByTime(1);
    expect(calls).toBe(1);
    // The line waits for the pages in use to come back.
    expect(lines).toHaveLength(0);
    vi.advanceTimersByTime(TRIM_SETTLE_MS);
    expect(lines[0]).toMatchObject({
      msg: 'memory trimmed',
      pauseMs: 12.5,
      heapUsedMb: [20, 17],
      executableReleasedMb: 48.5,
      rssMb: [96, 70],
      rssSettledAfterMs: TRIM_SETTLE_MS,
    });
    vi.advanceTimersByTime(600_000 * 2);
    expect(calls).toBe(3);
    expect(lines).toHaveLength(3);
    vi.advanceTimersByTime(600_000 - TRIM_SETTLE_MS - 1);
    s.stop();
    vi.advanceTimersByTime(600_000 * 3);
    expect(calls).toBe(3);
    expect(lines).toHaveLength(3);
  });

  it('a trim that throws is logged and the schedule goes on', () => {
    vi.useFakeTimers();
    const { logger, lines } = logged();
    let calls = 0;
    const s = scheduleFootprintTrim({
      logger,
      firstAfterMs: 10,
      intervalMs: 100_000,
      trim: () => {
        calls++;
        if (calls === 1) throw new Error('madvise: EINVAL');
        return report;
      },
    });
    vi.advanceTimersByTime(100_010 + TRIM_SETTLE_MS);
    expect(calls).toBe(2);
    expect(lines[0]?.msg).toBe('memory trim failed; the agent goes on');
    expect(lines.slice(1).map((l) => l.msg)).toEqual(['memory trimmed']);
    expect(lines[0]).toMatchObject({ level: 40, err: { message: 'madvise: EINVAL' } });
    s.stop();
  });
});
