// @podnet/nft: podnet's nf_tables layer (see README.md).
export { canonicalElement, elementResult, verdictText } from './elements.js';
export { NFT_ERROR_CODES, NftError, type NftErrorCode } from './errors.js';
export { type CliOptions, type NftExecutor, nftCli } from './exec.js';
export * from './model.js';
export { type NetlinkOptions, NfNetlink } from './netlink.js';
export {
  type BatchPart,
  decodeReplies,
  type ElementChange,
  type EncodedBatch,
  encodeElementBatch,
  encodeGetGen,
  type NfnlReply,
} from './nfnl.js';
export {
  compareRules,
  diffModels,
  type ElementUpdate,
  type NftCounters,
  NftTable,
  type SyncResult,
} from './nft.js';
export { type Observed, type ObservedChain, type ObservedSet, parseListing } from './observed.js';
export { renderPatch } from './patch.js';
export {
  compare,
  type Drift,
  NAME_RE,
  renderElements,
  renderFull,
  renderRule,
  type SetDelta,
  structureKey,
  type ValidTable,
  validate,
} from './render.js';
