import { describe, expect, it } from 'vitest';
import { rehearse } from './warmup.js';

describe('rehearse (the snapshot warm-up)', () => {
  it('runs ADD and DEL through IPAM against its own fake API and leaves no allocation behind', async () => {
    const r = await rehearse();
    expect(r.allocated).toHaveLength(3);
    expect(new Set(r.allocated).size).toBe(3);
    for (const a of r.allocated) expect(a).toMatch(/^10\.255\.0\.\d+$/);
    // At least: pools, node, blocks, handle, block per ADD; the first ADD also claims a block.
    expect(r.requests).toBeGreaterThan(15);
    expect(r.left).toBe(0);
  });
});
