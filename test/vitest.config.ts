// Scenarios bring a whole lab up (one per file) on this 2-core machine: files run one after
// another, with generous timeouts for the waits inside them.
import { defineConfig } from 'vitest/config';

/**
 * Scenarios that cannot pass yet because a dependency is incomplete. Each stays runnable by hand
 * (`npx vitest run src/<file>` in test/, or `npm run lab -- scenario <name>`) and is listed with the
 * reason in test/README.md. Remove an entry as soon as it passes.
 */
const pending = [
  // Flaky (passed 6 of 7 runs; the failing one lost 1 of 150 pings on each flow): on its first
  // reconcile after a restart the agent deletes every proto-80 route of the node at one instant
  // (`ip monitor route`) and re-adds the pod /32s ~15 ms later, other nodes' blocks 0.1-1.5 s later.
  'src/graceful-restart.test.ts',
  // The IPAM GC releases a node's empty IPv4 block (blocks.test.ts passes) but not its empty IPv6
  // block: node-c's fd00:244::100/122 stays affine and routed 60 s after its last pod went.
  'src/blocks-dualstack.test.ts',
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
