// Scenarios bring a whole lab up (one per file) on this 2-core machine: files run one after
// another, with generous timeouts for the waits inside them.
import { defineConfig } from 'vitest/config';

/**
 * Scenarios that cannot pass yet because a dependency is incomplete. Each stays runnable by hand
 * (`npx vitest run src/<file>` in test/, or `npm run lab -- scenario <name>`) and is listed with the
 * reason in test/README.md. Remove an entry as soon as it passes.
 */
const pending = [
  // The agent does not exchange IPv6 blocks yet: mesh sessions carry IPv4 only and its IPv6
  // session to the ToR fails with "bind EINVAL <node IPv4>" (IPv6 peer bound to the IPv4 address).
  'src/dualstack.test.ts',
  // Flaky (passes most runs, lost 1 of 150 pings per flow in some): on restart the agent deletes
  // every proto-80 route of the node and re-adds it 30-100 ms later (`ip monitor route` shows all
  // "Deleted" at one timestamp), and re-adds the route to another node's block only 1-2 s later.
  'src/graceful-restart.test.ts',
];

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    exclude: process.env.PODNET_SCENARIOS_ALL === '1' ? [] : pending,
    testTimeout: 120_000,
    hookTimeout: 240_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
