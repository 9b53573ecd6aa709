import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { shebangNodeFlags, waitUntil } from './sh.js';

describe('shebangNodeFlags', () => {
  const flagsOf = (text: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'podnet-lab-sh-'));
    try {
      writeFileSync(join(dir, 'cli.js'), text);
      return shebangNodeFlags(join(dir, 'cli.js'));
    } finally {
      rmSync(dir, { recursive: true });
    }
  };
  it("reads the node flags of an env -S line, or of node's own path", () => {
    expect(flagsOf('#!/usr/bin/env -S node --max-semi-space-size=4\n// x\n')).toEqual([
      '--max-semi-space-size=4',
    ]);
    expect(flagsOf('#!/usr/bin/env -S node --a=1 --b\n')).toEqual(['--a=1', '--b']);
    expect(flagsOf('#!/usr/local/bin/node --c\n')).toEqual(['--c']);
  });
  it('gives none without flags or without a #! line', () => {
    expect(flagsOf('#!/usr/bin/env node\n')).toEqual([]);
    expect(flagsOf('// no shebang\n')).toEqual([]);
  });
  it("reads the agent's entry point (tsc keeps its #! line in dist/cli.js)", () => {
    // The lab runs the agent with these (runner.ts), as the image runs `podnet-agent`.
    expect(shebangNodeFlags(join(import.meta.dirname, '../../agent/src/cli.ts'))).toContain(
      '--max-semi-space-size=4',
    );
  });
});

describe('waitUntil', () => {
  it('stops at once with the error `alive` throws, before checking again', async () => {
    let checks = 0;
    let dead = false;
    const p = waitUntil(
      'a daemon',
      () => {
        checks++;
        dead = true;
        return false;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 1,
        alive: () => {
          if (dead) throw new Error('the daemon exited');
        },
      },
    );
    await expect(p).rejects.toThrow('the daemon exited');
    expect(checks).toBe(1);
  });

  it('returns the first truthy check when `alive` does not throw', async () => {
    let n = 0;
    await expect(
      waitUntil('n to reach 3', () => ++n >= 3 && n, { timeoutMs: 60_000, intervalMs: 1, alive: () => {} }),
    ).resolves.toBe(3);
  });
});
