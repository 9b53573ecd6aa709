// @podnet/agent: the node agent. The pure core is exported for podnetctl, the lab and tests.

export type { NodeInterface } from './autodetect.js';
export {
  type AutodetectionMethod,
  detectNodeAddress,
  parseAutodetectionMethod,
  routerIdFor,
} from './autodetect.js';
export { compute, DEFAULT_AS_NUMBER, resolveAsNumber, splitPeerIP } from './compute.js';
export { type AgentConfig, helpText, loadConfig, parseDuration } from './config.js';
export { AgentError, ConfigError } from './errors.js';
export type * from './model.js';
export { compileSelector } from './selector.js';
