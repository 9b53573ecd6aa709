// The runner's record of what it created, so `down` (and the next `up`) can remove exactly that.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ProcessRecord {
  service: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat when started: a pid is only ours while this still matches. */
  startTime: string;
  argv: string[];
  log: string;
}

export interface PodRecord {
  name: string;
  namespace: string;
  node: string;
  ns: string;
  containerId: string;
  ipv4?: string;
  ipv6?: string;
}

export interface LabState {
  version: 1;
  prefix: string;
  composeFile: string;
  repoRoot: string;
  profiles: string[];
  only: string[];
  startedAt: string;
  namespaces: string[];
  processes: ProcessRecord[];
  pods: PodRecord[];
  apiSocket?: string;
  token: string;
  /** The host's loopback port forwarded to the lab's API server (hostKubeconfig), if any. */
  apiHostPort?: number;
  /** KUBECONFIG mode: the outside API server's kubeconfig. */
  kubeconfig?: string;
  /** The network model the lab was brought up with (x-podnet.models; absent: the default). */
  model?: string;
}

export const stateFile = (dir: string) => join(dir, 'state.json');

export function readState(dir: string): LabState | undefined {
  const f = stateFile(dir);
  if (!existsSync(f)) return undefined;
  try {
    return JSON.parse(readFileSync(f, 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

export function writeState(dir: string, state: LabState): void {
  mkdirSync(dir, { recursive: true });
  const tmp = `${stateFile(dir)}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, stateFile(dir));
}

/** The start time of a live process, or undefined when there is no such process. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces; fields after the closing parenthesis are plain.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const st = rest[19];
    const state = rest[0];
    return st && state !== 'Z' ? st : undefined;
  } catch {
    return undefined;
  }
}

export const isOurs = (p: ProcessRecord) => processStartTime(p.pid) === p.startTime;
