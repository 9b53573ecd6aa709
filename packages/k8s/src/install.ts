// Installs (or updates) podnet's CRDs through the API and waits until each resource is served.
// Tests install them from deploy/crds; src/crd.test.ts keeps those files equal to the schemas.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { fullClientNode, type KubeClient, toK8sError } from './client.js';
import { allCrds } from './crd.js';
import { K8S_ERR, K8sError } from './errors.js';
import { RESOURCES } from './resources.js';

/** Reads the CRDs of a directory such as deploy/crds (every *.yaml but kustomization.yaml). */
export function loadCrdFiles(dir: string): V1CustomResourceDefinition[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .sort()
    .map((f) => {
      const doc = parse(readFileSync(join(dir, f), 'utf8')) as V1CustomResourceDefinition;
      if (doc?.kind !== 'CustomResourceDefinition')
        throw new K8sError(K8S_ERR.CONFIG, `${join(dir, f)} is not a CustomResourceDefinition`);
      return doc;
    });
}

/**
 * Creates or updates podnet's CRDs (the given ones, e.g. loadCrdFiles('deploy/crds'), or those
 * generated from the schemas) and waits until every podnet resource is served.
 */
export async function installCrds(
  client: KubeClient,
  opts: { timeoutMs?: number; crds?: V1CustomResourceDefinition[] } = {},
): Promise<void> {
  for (const raw of opts.crds ?? (allCrds() as unknown as V1CustomResourceDefinition[])) {
    // client-node serialises its typed models by their own field names (`_default`,
    // `x_kubernetes_preserve_unknown_fields`): a plain object's `default:` and `x-kubernetes-*`
    // keys would be dropped on the wire. loadYaml maps the wire names onto the model first.
    const crd = fullClientNode().loadYaml<V1CustomResourceDefinition>(JSON.stringify(raw));
    const name = crd.metadata!.name!;
    try {
      await client.extensions.createCustomResourceDefinition({ body: crd });
    } catch (err) {
      const e = toK8sError(err, `create CRD ${name}`);
      if (e.code !== K8S_ERR.ALREADY_EXISTS) throw e;
      for (let i = 0; ; i++) {
        try {
          const cur = await client.extensions.readCustomResourceDefinition({ name });
          await client.extensions.replaceCustomResourceDefinition({
            name,
            body: { ...crd, metadata: { ...crd.metadata, resourceVersion: cur.metadata?.resourceVersion } },
          });
          break;
        } catch (err2) {
          const e2 = toK8sError(err2, `update CRD ${name}`);
          if (e2.code !== K8S_ERR.CONFLICT || i >= 5) throw e2;
        }
      }
    }
  }
  // A real API server serves a new CRD only once it is Established; a list proves it is.
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (const r of RESOURCES) {
    for (;;) {
      try {
        await client.custom.listClusterCustomObject({
          group: r.group,
          version: r.version,
          plural: r.plural,
          limit: 1,
        });
        break;
      } catch (err) {
        if (Date.now() > deadline)
          throw new K8sError(
            K8S_ERR.UNREACHABLE,
            `CRD ${r.plural}.${r.group} not served after install`,
            undefined,
            {
              cause: err,
            },
          );
        await new Promise((res) => setTimeout(res, 200));
      }
    }
  }
}
