// Failure injection for the real-process tests: PODNET_CNI_FAILPOINT=<name>:<marker file>. When
// ADD reaches <name>, the plugin creates the marker file and waits (at most 60 s) until the test
// deletes it; meanwhile the test can stop the API server or break the namespace. Unset, it costs
// nothing.
import { existsSync, writeFileSync } from 'node:fs';
import type { FailpointName } from './plugin.js';

export function failpointFromEnv(
  env: NodeJS.ProcessEnv,
): ((name: FailpointName) => Promise<void>) | undefined {
  const spec = env.PODNET_CNI_FAILPOINT;
  if (!spec) return undefined;
  const colon = spec.indexOf(':');
  const point = spec.slice(0, colon);
  const marker = spec.slice(colon + 1);
  if (colon <= 0 || !marker) return undefined;
  return async (name) => {
    if (name !== point) return;
    writeFileSync(marker, String(process.pid));
    const deadline = Date.now() + 60_000;
    while (existsSync(marker) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  };
}
