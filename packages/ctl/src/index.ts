// @podnet/ctl: podnetctl. The commands and formatters are exported for the lab and tests.
export { DEFAULT_AGENT_URL, fetchAgentStatus } from './agent-status.js';
export { type CtlIo, runCtl, USAGE } from './cli-main.js';
export {
  type CheckProblem,
  type CommandResult,
  findLeaks,
  ipamCheck,
  ipamRelease,
  ipamShow,
  nodeStatus,
  type RouteRow,
  routes,
} from './commands.js';
export { CtlError, type CtlErrorCode } from './errors.js';
export { type Column, formatAge, formatPercent, type OutputFormat, render, renderTable } from './format.js';
export { dumpPodnetRoutes, type KernelRouteView, PODNET_ROUTE_PROTOCOL } from './kernel.js';
