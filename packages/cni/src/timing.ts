// Timing records: how the standalone plugin hands its own latency to the node's agent, which
// serves it as podnet_cni_duration_seconds{via="plugin"}. The plugin appends one JSON line per
// ADD/DEL/CHECK to `<dir>/timings`; the agent renames that file aside, reads it a sweep later
// (when every writer that had it open is done) and removes it.
//
// Best effort on the plugin's side: nothing is written unless the agent made the directory, the
// file stops growing at MAX_TIMINGS_BYTES while no agent reads it, and no failure here ever
// changes a CNI result. A record is one short line, so an O_APPEND write of it lands whole.
import { closeSync, fstatSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Where the plugin writes and the DaemonSet's agent reads (a host path both see). */
export const DEFAULT_TIMING_DIR = '/var/run/podnet/cni-timings';
/** The file writers append to. */
export const TIMINGS_FILE = 'timings';
/** Past this size the plugin stops appending (no agent is reading): about 10,000 records. */
export const MAX_TIMINGS_BYTES = 1 << 20;

export const TIMED_COMMANDS = ['ADD', 'DEL', 'CHECK'] as const;
export type TimedCommand = (typeof TIMED_COMMANDS)[number];

export interface TimingRecord {
  command: TimedCommand;
  result: 'success' | 'error';
  /** From the plugin process's start to its answer being ready. */
  seconds: number;
  /** When the answer was ready (ms since the epoch). */
  at: number;
}

/** Appends `rec` to `<dir>/timings`; returns what happened, never throws. */
export function writeTiming(dir: string, rec: TimingRecord): 'written' | 'no-dir' | 'full' | 'failed' {
  let fd: number | undefined;
  try {
    // No O_CREAT of the directory: it exists only where an agent reads it.
    fd = openSync(join(dir, TIMINGS_FILE), 'a', 0o600);
    if (fstatSync(fd).size >= MAX_TIMINGS_BYTES) return 'full';
    writeSync(fd, `${JSON.stringify({ v: 1, ...rec })}\n`);
    return 'written';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no-dir' : 'failed';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** One line of a timings file, or why it is not a record (naming the field and the value). */
export function parseTimingLine(line: string): { record: TimingRecord } | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { error: `not JSON: ${JSON.stringify(line.slice(0, 80))}` };
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    return { error: `not an object: ${line.slice(0, 80)}` };
  const o = v as Record<string, unknown>;
  if (o.v !== 1) return { error: `v ${JSON.stringify(o.v)}: expected 1` };
  if (!TIMED_COMMANDS.includes(o.command as TimedCommand))
    return { error: `command ${JSON.stringify(o.command)}: expected ADD, DEL or CHECK` };
  if (o.result !== 'success' && o.result !== 'error')
    return { error: `result ${JSON.stringify(o.result)}: expected success or error` };
  if (typeof o.seconds !== 'number' || !Number.isFinite(o.seconds) || o.seconds < 0 || o.seconds > 3600)
    return { error: `seconds ${JSON.stringify(o.seconds)}: expected a number 0..3600` };
  if (typeof o.at !== 'number' || !Number.isFinite(o.at))
    return { error: `at ${JSON.stringify(o.at)}: expected a time in ms` };
  return {
    record: { command: o.command as TimedCommand, result: o.result, seconds: o.seconds, at: o.at },
  };
}
