// @podnet/k8s — the datastore.
//
// - schemas: one zod schema per resource (IPPool, BGPConfiguration, BGPPeer, IPAMBlock,
//   BlockAffinity, IPAMHandle) and the Node annotations; the types are z.infer of them.
// - validate(resource, obj): applies defaults, throws SchemaError naming the failing fields.
// - crd: renderCrdFiles() produces deploy/crds (npm run gen:crds).
// - net / selector: IP/CIDR parsing and label selectors, shared with ipam and the agent.

export * from './client.js';
export * from './crd.js';
export * from './errors.js';
export * from './informer.js';
export * from './install.js';
export * from './lb.js';
export * from './net.js';
export * from './order.js';
export * from './resources.js';
export * from './schemas.js';
export * from './selector.js';
