// Placeholder until @podnet/ipam lands: replaced by the IPAM-backed datastore.
import type { PluginConfig } from './config.js';
import type { Datastore } from './datastore.js';
import { CniError, CniErrorCode } from './errors.js';
import type { Log } from './plugin.js';

export async function openKubeDatastore(_cfg: PluginConfig, _log: Log): Promise<Datastore> {
  throw new CniError(
    CniErrorCode.DatastoreFailure,
    'the Kubernetes datastore is not built into this plugin yet',
  );
}
