import { describe, expect, it } from 'vitest';
import { addonInfo } from './index.js';

describe('native addon', () => {
  it('loads the compiled addon and reports the N-API version it was built for', () => {
    expect(addonInfo().napiVersion).toBe(8);
  });
});
