import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TIMINGS_FILE, writeTiming } from '@podnet/cni/timing';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { CniTimings } from './cni-timings.js';
import { createMetrics } from './metrics.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup() {
  const dir = join(mkdtempSync(join(tmpdir(), 'podnet-cnit-')), 'timings');
  dirs.push(dir);
  const metrics = createMetrics();
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const t = new CniTimings({ dir, metrics, log, intervalMs: 3_600_000 });
  await t.start();
  const count = async (labels: Record<string, string>) => {
    const m = await metrics.cniDuration.get();
    return (
      m.values.find(
        (v) =>
          v.metricName === 'podnet_cni_duration_seconds_count' &&
          Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x),
      )?.value ?? 0
    );
  };
  const dropped = async (reason: string) =>
    (await metrics.cniTimingRecordsDropped.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  return { dir, t, count, dropped, lines };
}

const rec = { command: 'ADD' as const, result: 'success' as const, seconds: 0.2, at: Date.now() };

describe('CNI timing records', () => {
  it('makes the directory the plugin writes into, and observes each record once, a sweep after it was set aside', async () => {
    const { dir, t, count } = await setup();
    expect(existsSync(dir)).toBe(true);
    expect(writeTiming(dir, rec)).toBe('written');
    expect(writeTiming(dir, { ...rec, command: 'DEL', result: 'error' })).toBe('written');
    await t.sweep(); // sets the file aside
    expect(await count({ via: 'plugin' })).toBe(0);
    expect(writeTiming(dir, rec)).toBe('written'); // a new file beside the one set aside
    await t.sweep(); // reads the first, sets the second aside
    expect(await count({ via: 'plugin', command: 'ADD', result: 'success' })).toBe(1);
    expect(await count({ via: 'plugin', command: 'DEL', result: 'error' })).toBe(1);
    await t.sweep();
    await t.sweep();
    expect(await count({ via: 'plugin', command: 'ADD', result: 'success' })).toBe(2);
    expect(readdirSync(dir)).toEqual([]);
    await t.stop();
  });

  it('drops and counts bad lines, naming the field and the value, and keeps the good ones', async () => {
    const { dir, t, count, dropped, lines } = await setup();
    writeFileSync(
      join(dir, TIMINGS_FILE),
      `${JSON.stringify({ v: 1, ...rec })}\nnot json\n${JSON.stringify({ v: 1, ...rec, seconds: 'slow' })}\n`,
    );
    await t.sweep();
    await t.sweep();
    expect(await count({ via: 'plugin' })).toBe(1);
    expect(await dropped('invalid')).toBe(2);
    expect(lines.at(-1)).toMatchObject({ invalid: 2, first: 'not JSON: "not json"' });
    await t.stop();
  });

  it('reads at most its bound from a flooded file and counts the rest as dropped', async () => {
    const { dir, t, count, dropped } = await setup();
    const line = `${JSON.stringify({ v: 1, ...rec })}\n`;
    const n = Math.ceil((2 << 20) / line.length) + 100;
    writeFileSync(join(dir, TIMINGS_FILE), line.repeat(n));
    await t.sweep();
    await t.sweep();
    const seen = await count({ via: 'plugin' });
    expect(seen).toBeGreaterThan(0);
    expect(seen).toBeLessThan(n);
    expect(await dropped('too-many')).toBe(1);
    expect(readdirSync(dir)).toEqual([]);
    await t.stop();
  });
});
