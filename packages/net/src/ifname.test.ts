import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { podInterfaceName } from './ifname.js';

describe('podInterfaceName', () => {
  it('is pn + 11 hex of sha1("namespace.pod"), the name the CNI plugin has always created', () => {
    expect(podInterfaceName('default', 'web-0')).toBe('pn0d7763386da');
    const hex = createHash('sha1').update('x.a').digest('hex');
    expect(podInterfaceName('x', 'a')).toBe(`pn${hex.slice(0, 11)}`);
  });
  it('fits the kernel limit of 15 characters', () => {
    expect(podInterfaceName('a'.repeat(63), 'b'.repeat(253))).toHaveLength(13);
  });
});
