// One lab per scenario file: compose.yaml realised on namespaces with a per-run prefix
// (pnt-s<pid><tag>-) and state dir, torn down in afterAll and, after an interrupted run, on the next
// start. Helpers read the kernel and the API the way an operator would.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  cleanupStaleLabs,
  inSubnet,
  ipToBigInt,
  Lab,
  type LabConfig,
  type PodRecord,
  parseCidr,
} from '@podnet/lab';
import { parse, stringify } from 'yaml';

export const repoRoot = resolve(import.meta.dirname, '..', '..');

/** Removes scenario labs left by runs whose process is gone. */
export const cleanupStaleScenarioLabs = () => cleanupStaleLabs(/^pnt-s(\d+)[a-z]*-/);

/**
 * With KUBECONFIG set (and PODNET_TEST_EMBEDDED unset), scenarios run against that API server,
 * bridged into the lab, instead of the embedded one: the same convention as testkit's testCluster().
 */
const outsideKubeconfig =
  process.env.KUBECONFIG && process.env.PODNET_TEST_EMBEDDED !== '1'
    ? process.env.KUBECONFIG.split(':')[0]
    : undefined;

export function scenarioConfig(tag: string, extra: Partial<LabConfig> = {}): LabConfig {
  return {
    ...(outsideKubeconfig ? { kubeconfig: outsideKubeconfig } : {}),
    repoRoot,
    composeFile: join(repoRoot, 'compose.yaml'),
    stateDir: `/tmp/podnet-scenario-${tag}-${process.pid}`,
    prefix: `pnt-s${process.pid}${tag}-`,
    log: (line) => process.stderr.write(`[lab ${tag}] ${line}\n`),
    ...extra,
  };
}

/** Removes stale labs, then brings the scenario's lab up and returns it (call in beforeAll). */
export async function upScenarioLab(config: LabConfig): Promise<Lab> {
  await cleanupStaleScenarioLabs();
  const lab = new Lab(config);
  await lab.up();
  return lab;
}

/** Takes the scenario's lab down from its state dir, also after an `up` that failed (call in afterAll). */
export const downScenarioLab = (config: LabConfig) => new Lab(config).down({ quiet: true });

export interface KernelRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  type?: string;
  nexthops?: { gateway?: string; dev?: string }[];
}

/** `ip -json route show` inside a namespace (IPv4 or IPv6). */
export function routes(ns: string, family: 4 | 6 = 4): KernelRoute[] {
  const out = execFileSync('ip', [`-${family}`, '-n', ns, '-json', 'route', 'show']).toString();
  return out.trim() ? (JSON.parse(out) as KernelRoute[]) : [];
}

/** Routes in `ns` whose next hop is `gateway` (plain or one of an ECMP route's next hops). */
export function routesVia(ns: string, gateway: string, family: 4 | 6 = 4): KernelRoute[] {
  return routes(ns, family).filter(
    (r) => r.gateway === gateway || r.nexthops?.some((h) => h.gateway === gateway),
  );
}

export function podIp(pod: PodRecord, family: 4 | 6 = 4): string {
  const ip = family === 4 ? pod.ipv4 : pod.ipv6;
  if (!ip) throw new Error(`pod ${pod.name} has no IPv${family} address`);
  return ip;
}

/** Names the failing pairs, so a failed assertion says what is unreachable. */
export function unreachable(probes: { from: string; to: string; ip: string; ok: boolean }[]): string[] {
  return probes.filter((p) => !p.ok).map((p) => `${p.from} → ${p.to} (${p.ip})`);
}

export { Lab };

/** Whether the IPAMBlock holding `ip` marks it allocated (undefined: no block holds it). */
export async function isAllocated(lab: Lab, ip: string): Promise<boolean | undefined> {
  const blocks = await lab.kube.list('/apis/podnet.io/v1alpha1/ipamblocks');
  for (const b of blocks) {
    const spec = b.spec as { cidr?: string; allocations?: (number | null)[] } | undefined;
    if (!spec?.cidr) continue;
    const cidr = parseCidr('spec.cidr', spec.cidr);
    if (!inSubnet(ip, cidr)) continue;
    const ordinal = Number(ipToBigInt(ip) - ipToBigInt(cidr.address));
    return spec.allocations?.[ordinal] != null;
  }
  return undefined;
}

/** A ping of `count` packets every `intervalS` seconds, resolving to transmitted/received. */
export function pingRun(
  ns: string,
  ip: string,
  count: number,
  intervalS: number,
): Promise<{ sent: number; received: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', [
      'netns',
      'exec',
      ns,
      'ping',
      '-n',
      '-q',
      '-c',
      String(count),
      '-i',
      String(intervalS),
      '-W',
      '1',
      ip,
    ]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), (count * intervalS + 10) * 1000);
    child.on('error', reject);
    child.on('exit', () => {
      clearTimeout(timer);
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      if (!m) reject(new Error(`ping ${ip} from ${ns}: no summary in ${JSON.stringify(out)}`));
      else resolve({ sent: Number(m[1]), received: Number(m[2]) });
    });
  });
}

/**
 * A copy of compose.yaml changed by `edit` (on the parsed document, merge keys expanded), written
 * next to the scenario's state; returns its path for `LabConfig.composeFile`.
 */
export interface ComposeDoc {
  services: Record<string, { environment: Record<string, string>; [key: string]: unknown }>;
  [key: string]: unknown;
}

export function composeVariant(tag: string, edit: (doc: ComposeDoc) => void): string {
  const doc = parse(readFileSync(join(repoRoot, 'compose.yaml'), 'utf8'), { merge: true }) as ComposeDoc;
  edit(doc);
  const dir = `/tmp/podnet-scenario-${tag}-${process.pid}-compose`;
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'compose.yaml');
  writeFileSync(file, stringify(doc));
  return file;
}
