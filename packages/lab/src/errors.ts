// Typed errors of the lab with a stable code, so the CLI and the tests can tell them apart.

export const LabErrorCode = {
  composeInvalid: 'LAB_ERR_COMPOSE_INVALID',
  composeSpec: 'LAB_ERR_COMPOSE_SPEC',
  notRoot: 'LAB_ERR_NOT_ROOT',
  missingTool: 'LAB_ERR_MISSING_TOOL',
  missingBuild: 'LAB_ERR_MISSING_BUILD',
  command: 'LAB_ERR_COMMAND',
  timeout: 'LAB_ERR_TIMEOUT',
  api: 'LAB_ERR_API',
  notRunning: 'LAB_ERR_NOT_RUNNING',
  usage: 'LAB_ERR_USAGE',
} as const;
export type LabErrorCode = (typeof LabErrorCode)[keyof typeof LabErrorCode];

export class LabError extends Error {
  override readonly name = 'LabError';
  constructor(
    readonly code: LabErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
