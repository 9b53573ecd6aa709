// @podnet/ipam — block IPAM (Calico's model) over the Kubernetes API.
//
//   const ipam = new Ipam({ kubeconfigPath, logger });          // or { client } or { datastore }
//   const r = await ipam.allocate({ handle: 'podnet.<containerID>', node: 'node-1',
//     ipv4: true, ipv6: false, attrs: { namespace, pod, containerID } });
//   r.ipv4 → { address: '10.244.1.5', cidr: '10.244.1.5/32', block: '10.244.1.0/26', pool, borrowed }
//   await ipam.releaseByHandle('podnet.<containerID>');        // idempotent; returns what it freed
//   await ipam.releaseIp('10.244.1.5');                         // undefined when it was not allocated
//   await ipam.blocksForNode('node-1');                         // affine blocks, state, used/free
//   await ipam.borrowedForNode('node-1');                       // addresses from others' blocks (/32s)
//   await ipam.gc({ graceMs });                                 // leaked addresses, empty blocks
//   await ipam.check();                                         // inconsistencies (podnetctl ipam check)
//   await ipam.usage();                                         // pools, blocks per node, utilisation
//   await ipam.transfer(spare, 'podnet.<containerID>', node, blocks, attrs); // a spare to a pod
//   await ipam.sparesOf('node-1'); await ipam.allocatable('node-1', blocks);
//
// allocate() is idempotent per handle: a retried ADD gets the address the handle already holds.
// Errors are IpamError with codes IPAM_ERR_* (errors.ts); datastore failures surface as the
// @podnet/k8s K8sError (K8S_ERR_UNREACHABLE, ...). memoryDatastore() is an in-process fake with the
// same CAS semantics for unit tests of packages that use IPAM.
export {
  type AffinityEvent,
  type AffinityState,
  type AffinityTransition,
  affinityTransition,
} from './affinity.js';
export {
  type BlockState,
  blockAt,
  blockCount,
  blockName,
  blockOf,
  checkPoolsDisjoint,
  ipAt,
  newBlock,
  olderPoolFirst,
  ordinalOf,
  type PoolInfo,
  pickFreeBlock,
  poolInfo,
  poolsForNode,
  type SetAsidePool,
  selectPools,
} from './block.js';
export { type IpamDatastore, kubeDatastore, type ObjectStore } from './datastore.js';
export { IPAM_ERR, IpamError, type IpamErrorCode, isIpamError } from './errors.js';
export {
  type AllocatedAddress,
  type AllocateRequest,
  type AllocateResult,
  type AllocationAttrs,
  type GcOptions,
  type GcReport,
  handleName,
  type Inconsistency,
  Ipam,
  type IpamOptions,
  NODE_LABEL,
  type NodeBlock,
  type ReleasedAddress,
  SPARE_ATTR,
  type Usage,
} from './ipam.js';
export { type MemoryDatastore, MemoryStore, memoryDatastore } from './memory.js';
