import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from './config.js';
import { runPlugin } from './main.js';
import {
  DEFAULT_TIMING_DIR,
  MAX_TIMINGS_BYTES,
  parseTimingLine,
  TIMINGS_FILE,
  writeTiming,
} from './timing.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'podnet-timing-'));
  dirs.push(d);
  return d;
};
const rec = { command: 'ADD' as const, result: 'success' as const, seconds: 0.25, at: 1_700_000_000_000 };

describe('timing records', () => {
  it('appends one line per record that parses back to the record', () => {
    const dir = tmp();
    expect(writeTiming(dir, rec)).toBe('written');
    expect(writeTiming(dir, { ...rec, command: 'DEL', result: 'error' })).toBe('written');
    const lines = readFileSync(join(dir, TIMINGS_FILE), 'utf8').trim().split('\n');
    expect(lines.map(parseTimingLine)).toEqual([
      { record: rec },
      { record: { ...rec, command: 'DEL', result: 'error' } },
    ]);
  });

  it('writes nothing where no agent made the directory, and stops at the size bound', () => {
    const dir = tmp();
    expect(writeTiming(join(dir, 'absent'), rec)).toBe('no-dir');
    writeFileSync(join(dir, TIMINGS_FILE), '');
    truncateSync(join(dir, TIMINGS_FILE), MAX_TIMINGS_BYTES);
    expect(writeTiming(dir, rec)).toBe('full');
    expect(statSync(join(dir, TIMINGS_FILE)).size).toBe(MAX_TIMINGS_BYTES);
  });

  it('names the field and the value of a bad line', () => {
    expect(parseTimingLine('{')).toEqual({ error: 'not JSON: "{"' });
    expect(parseTimingLine('[1]')).toMatchObject({ error: expect.stringContaining('not an object') });
    expect(parseTimingLine(JSON.stringify({ ...rec, v: 2 }))).toEqual({ error: 'v 2: expected 1' });
    expect(parseTimingLine(JSON.stringify({ ...rec, v: 1, command: 'GC' }))).toEqual({
      error: 'command "GC": expected ADD, DEL or CHECK',
    });
    expect(parseTimingLine(JSON.stringify({ ...rec, v: 1, result: 'ok' }))).toEqual({
      error: 'result "ok": expected success or error',
    });
    expect(parseTimingLine(JSON.stringify({ ...rec, v: 1, seconds: -1 }))).toEqual({
      error: 'seconds -1: expected a number 0..3600',
    });
    expect(parseTimingLine(JSON.stringify({ ...rec, v: 1, at: 'x' }))).toEqual({
      error: 'at "x": expected a time in ms',
    });
  });

  it('the standalone plugin records a failed ADD with its own time, and nothing for VERSION', async () => {
    const dir = tmp();
    const conf = (timingDir: string) =>
      JSON.stringify({ cniVersion: '1.0.0', name: 'podnet', type: 'podnet', timingDir, nodeName: 'n1' });
    const env = {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'c1',
      CNI_NETNS: '/nonexistent/netns',
      CNI_IFNAME: 'eth0',
      CNI_PATH: '/opt/cni/bin',
    };
    // The datastore fails at once: the ADD ends in a CNI error, which is recorded as one.
    const out = await runPlugin(env, conf(dir), {
      datastore: async () => {
        throw new Error('no API server here');
      },
      dataplane: async () => {
        throw new Error('no kernel here');
      },
      logger: async () => quiet as never,
    });
    expect(out.exitCode).toBe(1);
    await runPlugin({ CNI_COMMAND: 'VERSION' }, conf(dir));
    const lines = readFileSync(join(dir, TIMINGS_FILE), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    const parsed = parseTimingLine(lines[0]!);
    expect(parsed).toMatchObject({ record: { command: 'ADD', result: 'error' } });
    const { seconds } = (parsed as { record: { seconds: number } }).record;
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThanOrEqual(process.uptime());
  });

  it('the config names the directory: the default, another, or none', () => {
    const conf = (extra: Record<string, unknown>) =>
      JSON.stringify({ cniVersion: '1.0.0', name: 'podnet', type: 'podnet', ...extra });
    const env = { CNI_COMMAND: 'ADD' };
    expect(parseConfig(conf({}), env).timingDir).toBe(DEFAULT_TIMING_DIR);
    expect(parseConfig(conf({ timingDir: '/x/y' }), env).timingDir).toBe('/x/y');
    expect(parseConfig(conf({ timingDir: 'none' }), env).timingDir).toBeUndefined();
    expect(() => parseConfig(conf({ timingDir: 3 }), env)).toThrow(/timingDir/);
  });
});

const quiet = { child: () => quiet, trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {} };
