// The default IPPools and the `default` BGPConfiguration, created by the agent at start-up when
// absent. deploy/ cannot ship them: kubectl maps every object of one apply to a resource before
// it creates any, so custom resources of CRDs created in that same apply are refused.
//
// Create only, never update: an object that exists (made by an operator, or by another node's
// agent a moment earlier: 409 AlreadyExists) is left exactly as it is. A default pool is created
// only while no IPPool exists at all, so a cluster that brings its own pools gets no second one.
import type { BGPConfigurationInput, IPPoolInput, KubeClient } from '@podnet/k8s';
import { BGPCONFIGURATION, IPPOOL, isK8sError, K8S_ERR } from '@podnet/k8s';
import type { Logger } from 'pino';
import type { AgentConfig } from './config.js';

export const DEFAULT_POOL_NAMES = { 4: 'default-ipv4', 6: 'default-ipv6' } as const;
export const DEFAULT_BGP_CONFIGURATION = 'default';

export type DefaultsConfig = Pick<
  AgentConfig,
  | 'defaultIpv4PoolCidr'
  | 'defaultIpv4PoolBlockSize'
  | 'defaultIpv6PoolCidr'
  | 'defaultIpv6PoolBlockSize'
  | 'defaultAsNumber'
  | 'defaultNodeToNodeMesh'
>;

export interface DefaultsResult {
  /** `Kind/name` of each object this call created. */
  created: string[];
  /** `Kind/name` of each default that was there already (or created by another agent meanwhile). */
  existing: string[];
}

/** The pools the configuration asks for (none, one per family, or both). */
export function defaultPools(config: DefaultsConfig): IPPoolInput[] {
  const pools: IPPoolInput[] = [];
  const families = [
    [4, config.defaultIpv4PoolCidr, config.defaultIpv4PoolBlockSize],
    [6, config.defaultIpv6PoolCidr, config.defaultIpv6PoolBlockSize],
  ] as const;
  for (const [family, cidr, blockSize] of families) {
    if (cidr === undefined) continue;
    pools.push({ metadata: { name: DEFAULT_POOL_NAMES[family] }, spec: { cidr, blockSize } });
  }
  return pools;
}

/**
 * Creates the default IPPools (only when no IPPool exists) and the `default` BGPConfiguration
 * (only when absent). Throws on any API error other than AlreadyExists; a later call resumes.
 */
export async function ensureDefaultObjects(
  client: KubeClient,
  config: DefaultsConfig,
  log: Logger,
): Promise<DefaultsResult> {
  const result: DefaultsResult = { created: [], existing: [] };
  const create = async (kind: string, name: string, fn: () => Promise<unknown>, detail: object) => {
    try {
      await fn();
      result.created.push(`${kind}/${name}`);
      log.info({ kind, name, ...detail }, `created the default ${kind} ${name}`);
    } catch (err) {
      if (!isK8sError(err, K8S_ERR.ALREADY_EXISTS)) throw err;
      result.existing.push(`${kind}/${name}`);
      log.info({ kind, name }, `${kind} ${name} exists already; left as it is`);
    }
  };

  const pools = defaultPools(config);
  if (pools.length > 0) {
    // Invalid pools count too: they are the operator's, and a default beside them would be a surprise.
    const list = await client.resource(IPPOOL).list();
    const names = [...list.items.map((p) => p.metadata.name), ...list.invalid.map((p) => p.name)];
    if (names.length > 0) {
      log.info({ ipPools: names }, 'IPPools exist; no default pool created');
      for (const p of pools)
        if (names.includes(p.metadata.name)) result.existing.push(`IPPool/${p.metadata.name}`);
    } else {
      for (const p of pools)
        await create('IPPool', p.metadata.name, () => client.resource(IPPOOL).create(p), {
          cidr: p.spec.cidr,
          blockSize: p.spec.blockSize,
        });
    }
  }

  const bgp: BGPConfigurationInput = {
    metadata: { name: DEFAULT_BGP_CONFIGURATION },
    spec: { asNumber: config.defaultAsNumber, nodeToNodeMesh: config.defaultNodeToNodeMesh },
  };
  await create(
    'BGPConfiguration',
    DEFAULT_BGP_CONFIGURATION,
    () => client.resource(BGPCONFIGURATION).create(bgp),
    {
      asNumber: config.defaultAsNumber,
      nodeToNodeMesh: config.defaultNodeToNodeMesh,
    },
  );
  return result;
}

/**
 * Runs ensureDefaultObjects until it succeeds (the API server may be unreachable, or the CRDs not
 * served yet, when the agent starts), waiting `retryMs` between attempts. Never blocks start-up.
 */
export function startDefaultObjects(
  client: KubeClient,
  config: DefaultsConfig,
  log: Logger,
  retryMs: number,
): { done: Promise<DefaultsResult | undefined>; stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  const done = (async () => {
    for (let attempt = 1; !stopped; attempt++) {
      try {
        return await ensureDefaultObjects(client, config, log);
      } catch (err) {
        log.warn(
          { err, attempt, retryMs },
          'cannot create the default IPPool/BGPConfiguration yet; retrying',
        );
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, retryMs);
      });
    }
    return undefined;
  })();
  return {
    done,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      wake?.();
    },
  };
}
