// The lab's network models (compose.yaml `x-podnet.models`): flat, island, isolated. A model is a
// few settings of the API objects the lab writes (IPPool fields, the ToR BGPPeers' export filters);
// everything else in the topology is the same. Pure: parsing, the objects' fields, and what the
// model promises for each kind of traffic (the expectations the lab prints beside what it saw).
import { LabError, LabErrorCode } from './errors.js';

export interface NetworkModel {
  name: string;
  description: string;
  /** IPPool.spec.natOutgoing of every lab pool: pod traffic leaving every pool is masqueraded. */
  natOutgoing: boolean;
  /** IPPool.spec.isolated of every lab pool: pods exchange traffic with the cluster only. */
  isolated: boolean;
  /**
   * Whether the nodes advertise the pod blocks to the ToR. When false, the ToR BGPPeers carry
   * export filters rejecting every pool prefix (the sessions stay up, e.g. for service ranges).
   */
  podRoutesToTor: boolean;
}

export const DEFAULT_MODEL = 'flat';

/** Today's lab: what a compose file without `x-podnet.models` runs. */
export const FLAT: NetworkModel = {
  name: 'flat',
  description: 'pods routable from the whole network, nothing translated',
  natOutgoing: false,
  isolated: false,
  podRoutesToTor: true,
};

type Dict = Record<string, unknown>;
const isDict = (v: unknown): v is Dict => typeof v === 'object' && v !== null && !Array.isArray(v);

function invalid(field: string, value: unknown, why: string): never {
  throw new LabError(LabErrorCode.composeInvalid, `compose: ${field} = ${JSON.stringify(value)}: ${why}`);
}

function bool(field: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') invalid(field, v, 'expected true or false');
  return v;
}

const knownKeys = new Set(['description', 'natOutgoing', 'isolated', 'podRoutesToTor']);

/** `x-podnet.models` → the models by name, in file order (just flat when the file has none). */
export function parseModels(x: unknown): NetworkModel[] {
  if (x === undefined) return [FLAT];
  if (!isDict(x)) invalid('x-podnet.models', x, 'expected a map of model name to settings');
  const out: NetworkModel[] = [];
  for (const [name, def] of Object.entries(x)) {
    const f = `x-podnet.models.${name}`;
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(name)) invalid(f, name, 'a model name is 1-31 of [a-z0-9-]');
    const d = def === null ? {} : def;
    if (!isDict(d)) invalid(f, def, 'expected {natOutgoing, isolated, podRoutesToTor, description}');
    for (const k of Object.keys(d)) {
      if (!knownKeys.has(k))
        invalid(`${f}.${k}`, d[k], `unknown field (known: ${[...knownKeys].join(', ')})`);
    }
    const description = d.description === undefined ? name : d.description;
    if (typeof description !== 'string') invalid(`${f}.description`, description, 'expected a string');
    const m: NetworkModel = {
      name,
      description,
      natOutgoing: bool(`${f}.natOutgoing`, d.natOutgoing, false),
      isolated: bool(`${f}.isolated`, d.isolated, false),
      podRoutesToTor: bool(`${f}.podRoutesToTor`, d.podRoutesToTor, true),
    };
    // The agent treats such a pool as isolated (fails closed); a lab model should say what it means.
    if (m.isolated && m.natOutgoing)
      invalid(`${f}.natOutgoing`, true, 'isolated pools are never translated: set one of the two');
    out.push(m);
  }
  if (out.length === 0) invalid('x-podnet.models', x, 'names no model');
  return out;
}

/** The model called `name`; a clear error listing the known ones otherwise. */
export function selectModel(models: readonly NetworkModel[], name: string | undefined): NetworkModel {
  const wanted = name ?? (models.some((m) => m.name === DEFAULT_MODEL) ? DEFAULT_MODEL : models[0]?.name);
  const m = models.find((x) => x.name === wanted);
  if (!m) {
    throw new LabError(
      LabErrorCode.usage,
      `--model ${JSON.stringify(name)}: no such model in x-podnet.models (have: ${models.map((x) => x.name).join(', ')})`,
    );
  }
  return m;
}

export interface PoolFields {
  natOutgoing: boolean;
  /** Only written when true, so the other models run against CRDs without the field. */
  isolated?: true;
}

/** The IPPool spec fields a model sets on every lab pool. */
export function modelPoolFields(model: NetworkModel): PoolFields {
  return { natOutgoing: model.natOutgoing, ...(model.isolated ? { isolated: true as const } : {}) };
}

export interface ExportFilter {
  cidr: string;
  ge: number;
  le: number;
  action: 'Reject';
}

/**
 * BGPPeer.spec.exportFilters for the ToR peer of one address family: none when the model routes
 * pods through the ToR, else a rejection of each pool of that family and everything inside it
 * (its blocks and borrowed /32s or /128s).
 */
export function torExportFilters(
  model: NetworkModel,
  pools: readonly { cidr: string }[],
  family: 4 | 6,
): ExportFilter[] {
  if (model.podRoutesToTor) return [];
  return pools
    .filter((p) => p.cidr.includes(':') === (family === 6))
    .map((p) => ({
      cidr: p.cidr,
      ge: Number(p.cidr.split('/')[1]),
      le: family === 4 ? 32 : 128,
      action: 'Reject' as const,
    }));
}

/** The kinds of traffic a model's table covers, in the order it prints them. */
export const TRAFFIC = [
  'pod→pod same node',
  'pod→pod cross node',
  'node→pod',
  'pod→external',
  'external→pod',
  'external→node',
] as const;
export type Traffic = (typeof TRAFFIC)[number];

/**
 * What the receiver should see as the source: the sender's own address, its node's address
 * (masqueraded), or no connection at all.
 */
export type Expected = 'sender' | 'sender-node' | 'none';

/** The model's promise for one kind of traffic (the same for TCP and UDP, IPv4 and IPv6). */
export function expectedFor(model: NetworkModel, traffic: Traffic): Expected {
  switch (traffic) {
    case 'pod→pod same node':
    case 'pod→pod cross node':
    case 'node→pod':
    case 'external→node':
      return 'sender';
    case 'pod→external':
      // Without translation the reply comes back only if the network routes the pods.
      if (model.isolated) return 'none';
      if (model.natOutgoing) return 'sender-node';
      return model.podRoutesToTor ? 'sender' : 'none';
    case 'external→pod':
      return model.isolated || !model.podRoutesToTor ? 'none' : 'sender';
  }
}
