import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pluginLogger } from './log.js';

describe('pluginLogger', () => {
  it('writes JSON lines with bindings at or above the level, and nothing below it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'podnet-cni-log-'));
    try {
      const file = join(dir, 'cni.log');
      const log = pluginLogger({ logLevel: 'info', logFile: file }).child({ command: 'ADD' });
      log.debug({ x: 1 }, 'hidden');
      log.info({ handle: 'podnet.c1.eth0' }, 'allocated');
      const lines = readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({
        level: 30,
        component: 'cni',
        command: 'ADD',
        handle: 'podnet.c1.eth0',
        msg: 'allocated',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('creates no log file while nothing reaches the level', () => {
    const dir = mkdtempSync(join(tmpdir(), 'podnet-cni-log-'));
    try {
      const file = join(dir, 'cni.log');
      pluginLogger({ logLevel: 'warn', logFile: file }).info({}, 'below the level');
      expect(() => readFileSync(file)).toThrow(/ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
