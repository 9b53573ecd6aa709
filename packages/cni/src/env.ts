// The CNI_* environment (SPEC.md section 2, "Parameters"), parsed into one request per command.
import { CniError, CniErrorCode } from './errors.js';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

export interface PodRef {
  namespace: string;
  name: string;
}

export interface AttachmentEnv {
  containerId: string;
  /** Path to the container's network namespace; optional for DEL. */
  netns: string | undefined;
  ifname: string;
  args: Record<string, string>;
  pod: PodRef | undefined;
  path: string[];
}

export type CniRequest =
  | ({ type: 'ADD' } & AttachmentEnv & { netns: string })
  | ({ type: 'CHECK' } & AttachmentEnv & { netns: string })
  | ({ type: 'DEL' } & AttachmentEnv)
  | { type: 'VERSION' }
  | { type: 'STATUS'; path: string[] }
  | { type: 'GC'; path: string[] };

/** Parses CNI_ARGS: `K1=V1;K2=V2`. */
export function parseCniArgs(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!s) return out;
  for (const part of s.split(';')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) {
      throw new CniError(CniErrorCode.InvalidEnv, `CNI_ARGS has an entry without KEY=VALUE: "${part}"`);
    }
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

const IFNAME = /^[^\s/:]{1,15}$/;

/** Reads the request from the environment; missing or bad variables give code 4 naming each one. */
export function parseEnv(env: NodeJS.ProcessEnv): CniRequest {
  const command = env.CNI_COMMAND;
  if (!command) throw new CniError(CniErrorCode.InvalidEnv, 'CNI_COMMAND is not set');
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new CniError(
      CniErrorCode.InvalidEnv,
      `CNI_COMMAND "${command}" is not a CNI command (expected one of ${COMMANDS.join(', ')})`,
    );
  }
  const path = (env.CNI_PATH ?? '').split(':').filter((p) => p !== '');
  const cmd = command as CniCommand;
  if (cmd === 'VERSION') return { type: 'VERSION' };
  if (cmd === 'STATUS' || cmd === 'GC') return { type: cmd, path };

  const missing: string[] = [];
  if (!env.CNI_CONTAINERID) missing.push('CNI_CONTAINERID');
  if (!env.CNI_IFNAME) missing.push('CNI_IFNAME');
  if (cmd !== 'DEL' && !env.CNI_NETNS) missing.push('CNI_NETNS');
  if (missing.length > 0) {
    throw new CniError(
      CniErrorCode.InvalidEnv,
      `${cmd} needs ${missing.join(', ')} in the environment, and ${missing.length === 1 ? 'it is' : 'they are'} not set`,
    );
  }
  const ifname = env.CNI_IFNAME!;
  if (!IFNAME.test(ifname)) {
    throw new CniError(
      CniErrorCode.InvalidEnv,
      `CNI_IFNAME "${ifname}" is not a valid interface name (1-15 characters, no space, "/" or ":")`,
    );
  }
  const args = parseCniArgs(env.CNI_ARGS);
  const ns = args.K8S_POD_NAMESPACE;
  const name = args.K8S_POD_NAME;
  const pod = ns && name ? { namespace: ns, name } : undefined;
  const base: AttachmentEnv = {
    containerId: env.CNI_CONTAINERID!,
    netns: env.CNI_NETNS || undefined,
    ifname,
    args,
    pod,
    path,
  };
  if (cmd === 'DEL') return { type: 'DEL', ...base };
  return { type: cmd, ...base, netns: env.CNI_NETNS! };
}
