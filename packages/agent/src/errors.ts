// Typed errors of the agent. Each carries a stable `code` that logs and tests match on.

export type AgentErrorCode =
  | 'AGENT_ERR_CONFIG'
  | 'AGENT_ERR_AUTODETECT'
  | 'AGENT_ERR_NODE'
  | 'AGENT_ERR_SELECTOR'
  | 'AGENT_ERR_STATUS_LISTEN'
  | 'AGENT_ERR_METRICS_LISTEN'
  | 'AGENT_ERR_CNI_TOKEN';

export class AgentError extends Error {
  override readonly name = 'AgentError';
  constructor(
    readonly code: AgentErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Bad configuration: the message names the field, where it came from and the value. */
export class ConfigError extends AgentError {
  constructor(
    readonly field: string,
    readonly source: string,
    message: string,
  ) {
    super('AGENT_ERR_CONFIG', `${field} (from ${source}): ${message}`);
  }
}
