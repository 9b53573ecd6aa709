// Reads the local agent's /status endpoint (podnet-agent --status-listen).
import type { AgentStatus } from '@podnet/agent';
import { CtlError } from './errors.js';

export const DEFAULT_AGENT_URL = 'http://127.0.0.1:9099';

export async function fetchAgentStatus(url: string, timeoutMs = 5000): Promise<AgentStatus> {
  const target = `${url.replace(/\/$/, '')}/status`;
  let res: Response;
  try {
    res = await fetch(target, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new CtlError(
      'CTL_ERR_AGENT',
      `cannot reach the podnet agent at ${url} (${why}).\n` +
        'Is podnet-agent running on this node? Check `kubectl -n podnet-system get pods -o wide`, ' +
        'or point podnetctl at it with --agent URL (or PODNETCTL_AGENT).',
      1,
      { cause: err },
    );
  }
  if (!res.ok)
    throw new CtlError(
      'CTL_ERR_AGENT',
      `the agent at ${url} answered ${res.status} for /status: ${(await res.text()).trim()}`,
    );
  const body = (await res.json()) as AgentStatus;
  if (body?.version !== 1)
    throw new CtlError(
      'CTL_ERR_AGENT',
      `the agent at ${url} speaks status version ${String(body?.version)}; upgrade podnetctl`,
    );
  return body;
}
