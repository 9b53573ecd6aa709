// Child processes for the runner: commands run to completion (never throw on a non-zero exit
// unless asked) and commands inside a namespace via `ip netns exec`.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { LabError, LabErrorCode } from './errors.js';

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export function exec(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024, env: opts.env, cwd: opts.cwd },
      (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
          reject(new LabError(LabErrorCode.missingTool, `${cmd}: ${err.message}`, { cause: err }));
          return;
        }
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ stdout: String(stdout), stderr: String(stderr), code });
      },
    );
    // A child that exits without reading its stdin must not crash the runner with EPIPE.
    child.stdin?.on('error', () => {});
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

export async function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<string> {
  const r = await exec(cmd, args, opts);
  if (r.code !== 0) {
    throw new LabError(
      LabErrorCode.command,
      `${cmd} ${args.join(' ')} exited ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).slice(0, 2000)}`,
    );
  }
  return r.stdout;
}

export const nsExec = (ns: string, cmd: string, args: readonly string[], opts: ExecOptions = {}) =>
  exec('ip', ['netns', 'exec', ns, cmd, ...args], opts);

export const nsRun = (ns: string, cmd: string, args: readonly string[], opts: ExecOptions = {}) =>
  run('ip', ['netns', 'exec', ns, cmd, ...args], opts);

/** `ip -n NS <args>`; throws naming the command when it fails. */
export const ipIn = (ns: string, ...args: string[]) => run('ip', ['-n', ns, ...args]);

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Exits with `code` once everything written to stdout and stderr has left the process. When they
 * are pipes, what does not fit the pipe's buffer (64 KiB) waits in the process, and process.exit
 * drops it: the echo probe of a 102-pod lab lost the tail of its answers that way.
 */
export function exitWhenFlushed(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

/**
 * Polls `check` until truthy, or throws LAB_ERR_TIMEOUT naming `what`. `alive`, when given, runs
 * before every check and throws to stop waiting at once (e.g. the process being waited for exited).
 */
export async function waitUntil<T>(
  what: string,
  check: () => T | Promise<T>,
  opts: { timeoutMs: number; intervalMs?: number; alive?: () => void },
): Promise<NonNullable<T>> {
  const deadline = Date.now() + opts.timeoutMs;
  let last: unknown;
  for (;;) {
    opts.alive?.();
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const why = last instanceof Error ? ` (last error: ${last.message})` : '';
      throw new LabError(
        LabErrorCode.timeout,
        `timed out after ${opts.timeoutMs / 1000} s waiting for ${what}${why}`,
      );
    }
    await sleep(opts.intervalMs ?? 250);
  }
}

/** Runs `fn` over items with at most `limit` in flight; results in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (t: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** The last `lines` lines of a log file, or "(no log)" when it cannot be read. */
export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Seconds since `t0` (a Date.now() value), for progress lines: "1.5 s". */
export const elapsed = (t0: number) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

/**
 * The node flags of a script's `#!/usr/bin/env -S node --flag…` line (none for another first
 * line), so that a script the runner starts as `node script` runs as it would by its own name.
 */
export function shebangNodeFlags(file: string): string[] {
  const first = readFileSync(file, 'utf8').split('\n', 1)[0] ?? '';
  const m =
    /^#!\s*\S*\benv\s+-S\s+node((?:\s+--\S+)*)\s*$/.exec(first) ??
    /^#!\s*\S*\/node((?:\s+--\S+)*)\s*$/.exec(first);
  return m?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
}
