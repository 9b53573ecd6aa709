// A Dataplane over iproute2 (`ip -batch`), used until @podnet/rtnetlink provides veth creation with
// a peer in another namespace. It runs in the node's namespace; the pod side is programmed through
// `nsenter --net=<CNI_NETNS> ip -batch -`. Host sysctls are written to /proc/sys of the plugin's
// own namespace. Each ADD costs two or three short processes.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import {
  type Dataplane,
  emptyObservation,
  type ObservedAttachment,
  type ObservedLink,
  readHostSysctls,
  writeHostSysctls,
} from './dataplane.js';
import { CniError, CniErrorCode } from './errors.js';
import type { AttachmentPlan, PlannedRoute } from './plan.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function runProc(cmd: string, args: string[], input?: string, timeoutMs = 15_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({
        code: code ?? 1,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      });
    });
    if (child.stdin) {
      // `ip` may exit before reading all of its input (an early error): that is not our failure.
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
    }
  });
}

function fail(what: string, r: Run): CniError {
  return new CniError(CniErrorCode.DataplaneFailure, `${what}: ${r.stderr.trim() || `exit ${r.code}`}`);
}

interface IpLink {
  ifname: string;
  address?: string;
  mtu?: number;
  flags?: string[];
  addr_info?: { family: string; local: string; prefixlen: number; scope: string }[];
}

interface IpRoute {
  dst: string;
  gateway?: string;
  scope?: string;
  protocol?: string;
}

function parseJsonArrays<T>(text: string): T[] {
  const out: T[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t.startsWith('[')) out.push(...(JSON.parse(t) as T[]));
  }
  return out;
}

function toLink(l: IpLink): ObservedLink {
  return { name: l.ifname, mac: l.address ?? '', mtu: l.mtu ?? 0, up: (l.flags ?? []).includes('UP') };
}

function normDst(dst: string, v6: boolean): string {
  if (dst === 'default') return v6 ? '::/0' : '0.0.0.0/0';
  return dst.includes('/') ? dst : `${dst}/${v6 ? 128 : 32}`;
}

function routeLine(r: PlannedRoute, dev: string): string {
  return `route replace ${r.dst}${r.gw ? ` via ${r.gw}` : ''} dev ${dev}${r.scope ? ` scope ${r.scope}` : ''}${r.metric !== undefined ? ` metric ${r.metric}` : ''}`;
}

interface IpNeigh {
  dst: string;
  lladdr?: string;
  state?: string[];
}

export class IprouteDataplane implements Dataplane {
  constructor(
    private readonly ipPath = 'ip',
    private readonly nsenterPath = 'nsenter',
  ) {}

  private ip(args: string[], input?: string) {
    return runProc(this.ipPath, args, input);
  }

  private inNetns(netns: string, args: string[], input?: string) {
    return runProc(this.nsenterPath, [`--net=${netns}`, this.ipPath, ...args], input);
  }

  async checkNetns(netns: string): Promise<void> {
    if (!existsSync(netns)) {
      throw new CniError(CniErrorCode.UnknownContainer, `network namespace ${netns} does not exist`);
    }
  }

  async detectMtu(): Promise<number> {
    try {
      const lines = readFileSync('/proc/net/route', 'utf8').split('\n').slice(1);
      for (const line of lines) {
        const f = line.trim().split(/\s+/);
        if (f[1] === '00000000' && f[7] === '00000000' && f[0]) {
          return Number(readFileSync(`/sys/class/net/${f[0]}/mtu`, 'utf8').trim()) || 1500;
        }
      }
    } catch {
      // No IPv4 routing table or interface gone: fall back to Ethernet's MTU.
    }
    return 1500;
  }

  async createLink(plan: AttachmentPlan): Promise<{ podMac: string }> {
    if (!existsSync(plan.netns)) {
      throw new CniError(CniErrorCode.UnknownContainer, `network namespace ${plan.netns} does not exist`);
    }
    const add = `link add ${plan.hostIf} mtu ${plan.mtu} address ${plan.hostMac} type veth peer name ${plan.podIf} mtu ${plan.mtu} netns ${plan.netns}`;
    const r = await this.ip(['-batch', '-'], `${add}\n`);
    if (r.code !== 0) throw fail(`creating veth ${plan.hostIf} with peer ${plan.podIf} in ${plan.netns}`, r);
    // Before the link comes up: IPv6's accept_dad must be set before the link-local address appears.
    writeHostSysctls(plan);
    const r2 = await this.ip(['link', 'set', plan.hostIf, 'up']);
    if (r2.code !== 0) throw fail(`bringing up host interface ${plan.hostIf}`, r2);
    const pod = ['link set lo up', `link set ${plan.podIf} up`, `link show dev ${plan.podIf}`];
    const r3 = await this.inNetns(plan.netns, ['-j', '-batch', '-'], `${pod.join('\n')}\n`);
    if (r3.code !== 0) throw fail(`bringing up ${plan.podIf} in ${plan.netns}`, r3);
    const link = parseJsonArrays<IpLink>(r3.stdout)[0];
    if (!link?.address)
      throw new CniError(CniErrorCode.DataplaneFailure, `could not read the MAC of ${plan.podIf}`);
    return { podMac: link.address };
  }

  async configure(plan: AttachmentPlan): Promise<void> {
    if (plan.hostRoutes.length > 0) {
      const host = plan.hostRoutes.map((dst) => `route replace ${dst} dev ${plan.hostIf} scope link`);
      const r = await this.ip(['-batch', '-'], `${host.join('\n')}\n`);
      if (r.code !== 0) throw fail(`routing to ${plan.hostIf}`, r);
    }
    const pod = [
      ...plan.podAddresses.map(
        (a) => `addr replace ${a} dev ${plan.podIf}${a.includes(':') ? ' nodad' : ''}`,
      ),
      ...(plan.podNeighbours ?? []).map(
        (n) => `neigh replace ${n.ip} lladdr ${n.lladdr} dev ${plan.podIf} nud permanent`,
      ),
      ...plan.podRoutes.map((r) => routeLine(r, plan.podIf)),
    ];
    if (pod.length === 0) return;
    const r = await this.inNetns(plan.netns, ['-batch', '-'], `${pod.join('\n')}\n`);
    if (r.code !== 0) throw fail(`configuring ${plan.podIf} in ${plan.netns}`, r);
  }

  async remove(target: { hostIf: string; netns: string | undefined; podIf: string }): Promise<void> {
    const r = await this.ip(['link', 'del', target.hostIf]);
    const hostGone = r.code === 0 || /Cannot find device|does not exist/.test(r.stderr);
    if (!hostGone) throw fail(`deleting host interface ${target.hostIf}`, r);
    if (r.code !== 0 && target.netns && existsSync(target.netns)) {
      // The host end is gone but the pod end may remain (e.g. an earlier partial ADD).
      const p = await this.inNetns(target.netns, ['link', 'del', target.podIf]);
      if (p.code !== 0 && !/Cannot find device|does not exist/.test(p.stderr)) {
        throw fail(`deleting ${target.podIf} in ${target.netns}`, p);
      }
    }
  }

  async observe(plan: AttachmentPlan): Promise<ObservedAttachment> {
    const seen = emptyObservation(plan);
    const h = await this.ip(['-j', 'link', 'show', 'dev', plan.hostIf]);
    if (h.code === 0) {
      const l = parseJsonArrays<IpLink>(h.stdout)[0];
      if (l) seen.hostLink = toLink(l);
      const r4 = await this.ip(['-j', '-4', 'route', 'show', 'dev', plan.hostIf]);
      const r6 = await this.ip(['-j', '-6', 'route', 'show', 'dev', plan.hostIf]);
      for (const r of parseJsonArrays<IpRoute>(r4.stdout))
        if (r.scope === 'link') seen.hostRoutes.push(normDst(r.dst, false));
      for (const r of parseJsonArrays<IpRoute>(r6.stdout))
        if (r.protocol !== 'kernel') seen.hostRoutes.push(normDst(r.dst, true));
      seen.hostSysctls = readHostSysctls(plan);
    }
    if (!seen.netnsExists) return seen;
    const a = await this.inNetns(plan.netns, ['-j', 'addr', 'show', 'dev', plan.podIf]);
    if (a.code !== 0) return seen;
    const l = parseJsonArrays<IpLink>(a.stdout)[0];
    if (!l) return seen;
    seen.podLink = toLink(l);
    seen.podAddresses = (l.addr_info ?? [])
      .filter((i) => i.scope !== 'link' && i.scope !== 'host')
      .map((i) => `${i.local}/${i.prefixlen}`);
    const r = await this.inNetns(plan.netns, ['-j', '-4', 'route', 'show', 'dev', plan.podIf]);
    const r6 = await this.inNetns(plan.netns, ['-j', '-6', 'route', 'show', 'dev', plan.podIf]);
    for (const x of parseJsonArrays<IpRoute>(r.stdout)) {
      seen.podRoutes.push({
        dst: normDst(x.dst, false),
        ...(x.gateway ? { gw: x.gateway } : {}),
        ...(x.scope === 'link' ? { scope: 'link' as const } : {}),
      });
    }
    for (const x of parseJsonArrays<IpRoute>(r6.stdout)) {
      if (x.protocol === 'kernel') continue;
      seen.podRoutes.push({ dst: normDst(x.dst, true), ...(x.gateway ? { gw: x.gateway } : {}) });
    }
    const nb = await this.inNetns(plan.netns, ['-j', 'neigh', 'show', 'dev', plan.podIf]);
    for (const x of parseJsonArrays<IpNeigh>(nb.stdout)) {
      seen.podNeighbours.push({
        ip: x.dst,
        lladdr: x.lladdr ?? '',
        permanent: (x.state ?? []).includes('PERMANENT'),
      });
    }
    return seen;
  }
}
