// The heap a remote pod costs in the policy watch (the projection the Pod informer stores), measured
// in a child process with full GCs (src/__fixtures__/policy-memory.mjs, on the built dist/).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('./__fixtures__/policy-memory.mjs', import.meta.url));
const measure = (...args: string[]) =>
  JSON.parse(execFileSync(process.execPath, ['--expose-gc', script, ...args]).toString()) as {
    pods: number;
    bytes_per_remote_pod: number;
  };

describe('policy watch memory', () => {
  it('keeps a remote pod in under 1 KB of heap, less than the whole object', () => {
    const projected = measure('5000');
    const whole = measure('5000', 'whole');
    expect(projected.pods).toBe(5000);
    expect(projected.bytes_per_remote_pod).toBeLessThan(1024);
    expect(projected.bytes_per_remote_pod).toBeLessThan(whole.bytes_per_remote_pod);
  });
});
