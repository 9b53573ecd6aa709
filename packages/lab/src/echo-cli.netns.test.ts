// The echo prober's answers reach its caller whole, however many: it prints one line per target and
// exits, and a pipe holds only 64 KiB (the rest waited in the process, and process.exit dropped it).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { formatTarget } from './echo.js';

const ECHO_CLI = join(import.meta.dirname, '..', 'dist', 'echo-cli.js');
// A namespace of its own, named as @podnet/testkit names them (pnt-<tag>-<pid>-<n>), so that a run
// that died leaves nothing its cleanupStale() does not remove. Loopback stays down there: every
// probe fails at once (ENETUNREACH) and no packet is sent.
const NS = `pnt-echo-${process.pid}-0`;

beforeAll(() => {
  execFileSync('ip', ['netns', 'add', NS]);
});
afterAll(() => {
  if (existsSync(`/var/run/netns/${NS}`)) execFileSync('ip', ['netns', 'del', NS]);
});

it('prints an answer for each of 1,500 targets into a pipe its reader empties late', () => {
  const targets = Array.from({ length: 1500 }, (_, i) =>
    formatTarget({ proto: 'tcp', address: '127.0.0.1', port: 1000 + i }),
  );
  // The reader (a shell) sleeps 2 s before reading: by then the prober has every answer, and the
  // old one had exited, dropping what the pipe could not hold.
  const out = execFileSync(
    'sh',
    [
      '-c',
      'ip netns exec "$NS" "$NODE" "$CLI" probe --timeout-ms 200 "$@" | (sleep 2; cat)',
      'sh',
      ...targets,
    ],
    {
      encoding: 'utf8',
      timeout: 20_000,
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, NS, NODE: process.execPath, CLI: ECHO_CLI },
    },
  );
  const lines = out.split('\n').filter(Boolean);
  expect(lines.length).toBe(1500);
  expect(JSON.parse(lines[1499] ?? '{}')).toMatchObject({ port: 2499, error: 'ENETUNREACH' });
});
