// Failure injection for the real-process tests: PODNET_CNI_FAILPOINT=<name>:<marker file>[:throw].
// When ADD reaches <name>, the plugin creates the marker file and waits (at most 60 s) until the
// test deletes it; meanwhile the test can look at what ADD has done so far, stop the API server or
// break the namespace. With `:throw`, the point then fails as an unreachable API server would (code
// 11): `allocate-response-lost:<marker>:throw` is an allocation the server stored whose answer never
// arrived. Unset, it costs nothing.
import { existsSync, writeFileSync } from 'node:fs';
import { CniError, CniErrorCode } from './errors.js';
import type { FailpointName } from './plugin.js';

export function failpointFromEnv(
  env: NodeJS.ProcessEnv,
): ((name: FailpointName) => Promise<void>) | undefined {
  const spec = env.PODNET_CNI_FAILPOINT;
  if (!spec) return undefined;
  const [point, marker, action] = spec.split(':');
  if (!point || !marker) return undefined;
  return async (name) => {
    if (name !== point) return;
    writeFileSync(marker, String(process.pid));
    const deadline = Date.now() + 60_000;
    while (existsSync(marker) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (action === 'throw') {
      throw new CniError(
        CniErrorCode.TryAgainLater,
        `failpoint ${name}: the datastore's answer was lost (connection reset)`,
      );
    }
  };
}
