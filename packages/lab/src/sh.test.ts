import { describe, expect, it } from 'vitest';
import { waitUntil } from './sh.js';

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
