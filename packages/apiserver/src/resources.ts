// The resource types the server serves: the built-in core/v1 and apiextensions types, and every
// custom resource a CRD defines. A type is identified by group + plural (its storage key).
import { INSTALL_TYPES } from './install-types.js';

export interface ResourceType {
  group: string; // '' for core
  /** Versions served; the first is the preferred one. */
  versions: string[];
  storageVersion: string;
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
  shortNames: string[];
  categories: string[];
  namespaced: boolean;
  hasStatus: boolean;
  /** Fields accepted in field selectors (beyond metadata.name and metadata.namespace). */
  selectableFields: string[];
  /** OpenAPI v3 schema per version, for custom resources. */
  schemas: Map<string, unknown>;
  builtin: boolean;
  verbs: string[];
  /** Custom resources: each version's additionalPrinterColumns (server-side printing, table.ts). */
  printerColumns?: Map<string, PrinterColumn[]>;
}

/** One of a CRD version's additionalPrinterColumns. */
export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  format?: string;
  description?: string;
  priority?: number;
}

export const typeKey = (group: string, plural: string) => (group ? `${plural}.${group}` : plural);
export const apiVersionOf = (group: string, version: string) => (group ? `${group}/${version}` : version);

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function builtin(
  t: Pick<ResourceType, 'group' | 'plural' | 'singular' | 'kind' | 'namespaced' | 'hasStatus'> &
    Partial<ResourceType>,
  version: string,
): ResourceType {
  return {
    versions: [version],
    storageVersion: version,
    listKind: `${t.kind}List`,
    shortNames: [],
    categories: [],
    selectableFields: [],
    schemas: new Map(),
    builtin: true,
    verbs: ALL_VERBS,
    ...t,
  };
}

export function builtinTypes(): ResourceType[] {
  return [
    ...INSTALL_TYPES.map(([t, v]) => builtin(t, v)),
    builtin(
      {
        group: '',
        plural: 'namespaces',
        singular: 'namespace',
        kind: 'Namespace',
        namespaced: false,
        hasStatus: true,
      },
      'v1',
    ),
    builtin(
      { group: '', plural: 'nodes', singular: 'node', kind: 'Node', namespaced: false, hasStatus: true },
      'v1',
    ),
    builtin(
      {
        group: '',
        plural: 'pods',
        singular: 'pod',
        kind: 'Pod',
        namespaced: true,
        hasStatus: true,
        shortNames: ['po'],
        categories: ['all'],
        selectableFields: [
          'spec.nodeName',
          'spec.restartPolicy',
          'spec.schedulerName',
          'spec.serviceAccountName',
          'spec.hostNetwork',
          'status.phase',
          'status.podIP',
          'status.nominatedNodeName',
        ],
      },
      'v1',
    ),
    builtin(
      {
        group: '',
        plural: 'configmaps',
        singular: 'configmap',
        kind: 'ConfigMap',
        namespaced: true,
        hasStatus: false,
        shortNames: ['cm'],
      },
      'v1',
    ),
    builtin(
      {
        group: '',
        plural: 'events',
        singular: 'event',
        kind: 'Event',
        namespaced: true,
        hasStatus: false,
        shortNames: ['ev'],
      },
      'v1',
    ),
    builtin(
      {
        group: '',
        plural: 'secrets',
        singular: 'secret',
        kind: 'Secret',
        namespaced: true,
        hasStatus: false,
        selectableFields: ['type'],
      },
      'v1',
    ),
    builtin(
      {
        group: '',
        plural: 'services',
        singular: 'service',
        kind: 'Service',
        namespaced: true,
        hasStatus: true,
        shortNames: ['svc'],
        categories: ['all'],
        selectableFields: ['spec.clusterIP', 'spec.type'],
      },
      'v1',
    ),
    builtin(
      {
        group: 'discovery.k8s.io',
        plural: 'endpointslices',
        singular: 'endpointslice',
        kind: 'EndpointSlice',
        namespaced: true,
        hasStatus: false,
      },
      'v1',
    ),
    builtin(
      {
        group: 'coordination.k8s.io',
        plural: 'leases',
        singular: 'lease',
        kind: 'Lease',
        namespaced: true,
        hasStatus: false,
      },
      'v1',
    ),
    builtin(
      {
        group: 'networking.k8s.io',
        plural: 'networkpolicies',
        singular: 'networkpolicy',
        kind: 'NetworkPolicy',
        namespaced: true,
        hasStatus: false,
        shortNames: ['netpol'],
      },
      'v1',
    ),
    builtin(
      {
        group: 'apiextensions.k8s.io',
        plural: 'customresourcedefinitions',
        singular: 'customresourcedefinition',
        kind: 'CustomResourceDefinition',
        namespaced: false,
        hasStatus: true,
        shortNames: ['crd', 'crds'],
        categories: ['api-extensions'],
      },
      'v1',
    ),
  ];
}

const nodeSelectable: Record<string, string[]> = {
  nodes: ['spec.unschedulable'],
  namespaces: ['status.phase'],
};
for (const t of builtinTypes()) nodeSelectable[t.plural] ??= t.selectableFields;

interface CrdVersion {
  name?: unknown;
  served?: unknown;
  storage?: unknown;
  schema?: { openAPIV3Schema?: unknown };
  subresources?: { status?: unknown };
  selectableFields?: { jsonPath?: unknown }[];
  additionalPrinterColumns?: {
    name?: unknown;
    type?: unknown;
    jsonPath?: unknown;
    format?: unknown;
    description?: unknown;
    priority?: unknown;
  }[];
}

/** The ResourceType a (validated) CRD object defines. */
export function typeFromCrd(crd: {
  spec: {
    group: string;
    scope: string;
    names: {
      plural: string;
      singular?: string;
      kind: string;
      listKind?: string;
      shortNames?: string[];
      categories?: string[];
    };
    versions: CrdVersion[];
  };
}): ResourceType {
  const { spec } = crd;
  const served = spec.versions.filter((v) => v.served !== false).map((v) => String(v.name));
  const storage = spec.versions.find((v) => v.storage === true);
  const schemas = new Map<string, unknown>();
  for (const v of spec.versions)
    if (v.schema?.openAPIV3Schema) schemas.set(String(v.name), v.schema.openAPIV3Schema);
  const printerColumns = new Map<string, PrinterColumn[]>();
  for (const v of spec.versions)
    printerColumns.set(
      String(v.name),
      (v.additionalPrinterColumns ?? []).flatMap((c) =>
        typeof c.name === 'string' && typeof c.type === 'string' && typeof c.jsonPath === 'string'
          ? [
              {
                name: c.name,
                type: c.type,
                jsonPath: c.jsonPath,
                ...(typeof c.format === 'string' ? { format: c.format } : {}),
                ...(typeof c.description === 'string' ? { description: c.description } : {}),
                ...(typeof c.priority === 'number' ? { priority: c.priority } : {}),
              },
            ]
          : [],
      ),
    );
  const selectable = new Set<string>();
  for (const v of spec.versions)
    for (const f of v.selectableFields ?? [])
      if (typeof f.jsonPath === 'string') selectable.add(f.jsonPath.replace(/^\./, ''));
  return {
    group: spec.group,
    versions: served,
    storageVersion: String(storage?.name ?? served[0]),
    plural: spec.names.plural,
    singular: spec.names.singular || spec.names.kind.toLowerCase(),
    kind: spec.names.kind,
    listKind: spec.names.listKind || `${spec.names.kind}List`,
    shortNames: spec.names.shortNames ?? [],
    categories: spec.names.categories ?? [],
    namespaced: spec.scope === 'Namespaced',
    hasStatus: spec.versions.some(
      (v) => v.subresources?.status !== undefined && v.subresources.status !== null,
    ),
    selectableFields: [...selectable],
    schemas,
    builtin: false,
    verbs: ALL_VERBS,
    printerColumns,
  };
}

export function supportedFields(t: ResourceType): Set<string> {
  return new Set([
    'metadata.name',
    'metadata.namespace',
    ...t.selectableFields,
    ...(t.builtin ? (nodeSelectable[t.plural] ?? []) : []),
  ]);
}
