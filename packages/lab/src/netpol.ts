// The NetworkPolicy conformance world of the lab (test/src/netpol.test.ts): namespaces x, y, z with
// pods a, b, c each, spread over the nodes, every pod serving TCP and UDP on ports 80 and 81 (the
// lab's echo). A probe asks every pod from every other pod on every port, protocol and address
// family at once, and gives the observed matrix; the expected one comes from a predicate written
// from the Kubernetes documentation. Both print as grids, mismatches marked.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatTarget } from './echo.js';
import { LabError, LabErrorCode } from './errors.js';
import type { Lab } from './runner.js';
import { mapLimit, nsExec, sleep, waitUntil } from './sh.js';

export const NETPOL_NAMESPACES = ['x', 'y', 'z'] as const;
export const NETPOL_PODS = ['a', 'b', 'c'] as const;
export const NETPOL_PORTS = [80, 81] as const;

export interface NetpolPod {
  namespace: string;
  name: string;
  /** `x/a`. */
  key: string;
  netns: string;
  node: string;
  ipv4: string;
  ipv6?: string;
}

export interface Probe {
  port: number;
  proto: 'tcp' | 'udp';
  family: 4 | 6;
}

/** Every (port, protocol, family) a matrix covers, in print order. */
export function probes(families: readonly (4 | 6)[]): Probe[] {
  return families.flatMap((family) =>
    NETPOL_PORTS.flatMap((port) => (['tcp', 'udp'] as const).map((proto) => ({ port, proto, family }))),
  );
}

/** `from` may reach `to` on `p`. */
export type Allowed = (from: NetpolPod, to: NetpolPod, p: Probe) => boolean;

/** Source → target → probe → allowed, keyed `x/a>y/b tcp/80 v4`. */
export type Matrix = Map<string, boolean>;

/** The key of one cell: `x/a>y/b tcp/80 v4`. */
export const matrixKey = (from: string, to: string, p: Probe) =>
  `${from}>${to} ${p.proto}/${p.port} v${p.family}`;

/** The namespaces' labels: every namespace `ns: <name>`; y also `team: blue`. */
export function namespaceLabels(ns: string): Record<string, string> {
  return { ns, ...(ns === 'y' ? { team: 'blue' } : {}) };
}

/**
 * The pods' container ports: serve-80-tcp … serve-81-udp on every pod, and `web`, which is TCP 80
 * on pods a and TCP 81 on pods b and c (a named port meaning different numbers per pod).
 */
export function containerPorts(pod: string) {
  return [
    ...NETPOL_PORTS.flatMap((port) =>
      (['TCP', 'UDP'] as const).map((protocol) => ({
        name: `serve-${port}-${protocol.toLowerCase()}`,
        containerPort: port,
        protocol,
      })),
    ),
    { name: 'web', containerPort: pod === 'a' ? 80 : 81, protocol: 'TCP' },
  ];
}

export class NetpolWorld {
  readonly pods: NetpolPod[] = [];
  private readonly podLabels = new Map<string, Record<string, string>>();

  constructor(
    readonly lab: Lab,
    readonly opts: { probeTimeoutMs: number; waitMs: number; lifetimeS: number },
  ) {}

  pod(key: string): NetpolPod {
    const p = this.pods.find((x) => x.key === key);
    if (!p) throw new LabError(LabErrorCode.usage, `no pod ${key} in the netpol world`);
    return p;
  }

  /** Namespaces, pods (round robin over the nodes) and their echo servers on 80 and 81. */
  async up(): Promise<void> {
    const kube = this.lab.kube;
    for (const ns of NETPOL_NAMESPACES)
      await kube.apply('/api/v1/namespaces', {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns, labels: namespaceLabels(ns) },
      } as never);
    const nodes = this.lab.nodes.map((n) => n.name);
    let i = 0;
    for (const ns of NETPOL_NAMESPACES)
      for (const name of NETPOL_PODS) {
        const node = nodes[i++ % nodes.length]!;
        const rec = await this.lab.addPod(node, name, {
          namespace: ns,
          labels: { pod: name },
          ports: containerPorts(name),
        });
        if (!rec.ipv4) throw new LabError(LabErrorCode.command, `pod ${ns}/${name} got no IPv4 address`);
        this.pods.push({
          namespace: ns,
          name,
          key: `${ns}/${name}`,
          netns: rec.ns,
          node,
          ipv4: rec.ipv4,
          ...(rec.ipv6 ? { ipv6: rec.ipv6 } : {}),
        });
      }
    const script = join(this.lab.config.repoRoot, 'packages', 'lab', 'dist', 'echo-cli.js');
    const logs: string[] = [];
    for (const p of this.pods)
      for (const port of NETPOL_PORTS) {
        const log = join(this.lab.config.stateDir, 'echo', `netpol-${p.namespace}-${p.name}-${port}.log`);
        this.lab.spawnDetached(
          `echo-netpol-${p.namespace}-${p.name}-${port}`,
          p.netns,
          [
            process.execPath,
            script,
            'serve',
            '--port',
            String(port),
            '--lifetime-s',
            String(this.opts.lifetimeS),
          ],
          {},
          log,
        );
        logs.push(log);
      }
    await waitUntil(
      'the netpol echo servers to listen',
      () => logs.every((l) => existsSync(l) && readFileSync(l, 'utf8').includes('listening')),
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  }

  families(): (4 | 6)[] {
    return this.pods.every((p) => p.ipv6) ? [4, 6] : [4];
  }

  /** What `allowed` promises for every pair of distinct pods. */
  expected(allowed: Allowed): Matrix {
    const m: Matrix = new Map();
    for (const from of this.pods)
      for (const to of this.pods) {
        if (from === to) continue;
        for (const p of probes(this.families())) m.set(matrixKey(from.key, to.key, p), allowed(from, to, p));
      }
    return m;
  }

  /**
   * Probes every pair on every port, protocol and family once: one prober per source pod (in
   * parallel), each asking all its targets at once with a short timeout.
   */
  async observe(sources: { key: string; netns: string }[] = this.pods): Promise<Matrix> {
    const script = join(this.lab.config.repoRoot, 'packages', 'lab', 'dist', 'echo-cli.js');
    const m: Matrix = new Map();
    await mapLimit(sources, sources.length, async (src) => {
      const asks: { key: string; target: string }[] = [];
      for (const to of this.pods) {
        if (to.key === src.key) continue;
        for (const p of probes(this.families())) {
          const address = p.family === 4 ? to.ipv4 : to.ipv6;
          if (!address) continue;
          asks.push({
            key: matrixKey(src.key, to.key, p),
            target: formatTarget({ proto: p.proto, address, port: p.port }),
          });
        }
      }
      const r = await nsExec(
        src.netns,
        process.execPath,
        [script, 'probe', '--timeout-ms', String(this.opts.probeTimeoutMs), ...asks.map((a) => a.target)],
        { timeoutMs: this.opts.probeTimeoutMs + 30_000 },
      );
      if (r.code !== 0) throw new LabError(LabErrorCode.command, `probe from ${src.key}: ${r.stderr.trim()}`);
      const lines = r.stdout.split('\n').filter(Boolean);
      asks.forEach((a, i) => {
        const res = lines[i] ? (JSON.parse(lines[i]!) as { seen?: string }) : {};
        m.set(a.key, res.seen !== undefined);
      });
    });
    return m;
  }

  /**
   * Probes until the observed matrix equals `expected` or `waitMs` passes (the agents apply a
   * change within their debounce and an `nft` transaction); returns the last observation.
   */
  async waitFor(expected: Matrix, sources?: { key: string; netns: string }[]): Promise<Matrix> {
    const deadline = Date.now() + this.opts.waitMs;
    for (;;) {
      const seen = await this.observe(sources);
      if (mismatches(expected, seen).length === 0 || Date.now() >= deadline) return seen;
      await sleep(200);
    }
  }

  // ---------------------------------------------------------------- objects

  async applyPolicy(namespace: string, name: string, spec: Record<string, unknown>): Promise<void> {
    await this.lab.kube.apply(`/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies`, {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name, namespace },
      spec,
    } as never);
  }

  async deleteAllPolicies(): Promise<void> {
    for (const ns of NETPOL_NAMESPACES)
      for (const np of await this.lab.kube.list(
        `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`,
      )) {
        const name = (np.metadata as { name: string }).name;
        await this.lab.kube.delete(`/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/${name}`);
      }
  }

  private async mergePatch(path: string, body: unknown): Promise<void> {
    const r = await this.lab.kube.request('PATCH', path, body, 'application/merge-patch+json');
    if (r.status !== 200)
      throw new LabError(
        LabErrorCode.api,
        `PATCH ${path} answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`,
      );
  }

  /** Replaces a namespace's own labels (kubernetes.io/metadata.name stays, the server keeps it). */
  async setNamespaceLabels(ns: string, labels: Record<string, string>): Promise<void> {
    const cur = (await this.lab.kube.get(`/api/v1/namespaces/${ns}`))?.metadata as
      | { labels?: Record<string, string> }
      | undefined;
    const patch: Record<string, string | null> = {};
    for (const k of Object.keys(cur?.labels ?? {})) if (k !== 'kubernetes.io/metadata.name') patch[k] = null;
    Object.assign(patch, labels);
    await this.mergePatch(`/api/v1/namespaces/${ns}`, { metadata: { labels: patch } });
  }

  async setPodLabels(key: string, labels: Record<string, string>): Promise<void> {
    const p = this.pod(key);
    const old = this.podLabels.get(key) ?? { pod: p.name };
    const patch: Record<string, string | null> = {};
    for (const k of Object.keys(old)) patch[k] = null;
    Object.assign(patch, labels);
    await this.mergePatch(`/api/v1/namespaces/${p.namespace}/pods/${p.name}`, {
      metadata: { labels: patch },
    });
    this.podLabels.set(key, labels);
  }

  /** Every namespace and pod back to its original labels. */
  async resetLabels(): Promise<void> {
    for (const ns of NETPOL_NAMESPACES) await this.setNamespaceLabels(ns, namespaceLabels(ns));
    for (const key of [...this.podLabels.keys()]) await this.setPodLabels(key, { pod: this.pod(key).name });
    this.podLabels.clear();
  }
}

/** Cells where the observation differs from the expectation (`x/a>y/b tcp/80 v4: expected …`). */
export function mismatches(expected: Matrix, seen: Matrix): string[] {
  const out: string[] = [];
  for (const [k, want] of expected) {
    const got = seen.get(k);
    if (got !== want)
      out.push(
        `${k}: expected ${want ? 'allowed' : 'denied'}, saw ${got === undefined ? 'nothing' : got ? 'allowed' : 'denied'}`,
      );
  }
  return out;
}

/**
 * One grid per (protocol/port, family): rows are sources, columns targets; `.` allowed, `X` denied,
 * `-` not probed. With `against`, a differing cell is printed in brackets.
 */
export function renderMatrix(
  m: Matrix,
  pods: readonly string[],
  families: readonly (4 | 6)[],
  against?: Matrix,
): string {
  const out: string[] = [];
  const w = Math.max(...pods.map((p) => p.length)) + 1;
  for (const p of probes(families)) {
    out.push(`${p.proto}/${p.port} IPv${p.family}`);
    out.push(`${''.padEnd(w)} ${pods.map((t) => t.padStart(w)).join('')}`);
    for (const from of pods) {
      const row = pods.map((to) => {
        const k = matrixKey(from, to, p);
        const v = m.get(k);
        const c = v === undefined ? '-' : v ? '.' : 'X';
        const differs = against && against.get(k) !== undefined && against.get(k) !== v;
        return (differs ? `[${c}]` : c).padStart(w);
      });
      out.push(`${from.padEnd(w)} ${row.join('')}`);
    }
  }
  return out.join('\n');
}
