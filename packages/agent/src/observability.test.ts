// deploy/observability/: every metric the alert rules and the Grafana dashboard reference is one the
// agent registers (with _bucket/_sum/_count only on histograms); promtool parses the rules and
// every dashboard query, and runs the rules' unit tests (podnet-alerts.test.yaml).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { agentRegistry } from './__fixtures__/registry.js';

const DIR = join(import.meta.dirname, '..', '..', '..', 'deploy', 'observability');
const RULES = join(DIR, 'podnet-alerts.yaml');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
}
const rules = (parseYaml(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap(
  (g) => g.rules,
);

interface Panel {
  title: string;
  type: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}
const dashboard = JSON.parse(readFileSync(join(DIR, 'podnet-dashboard.json'), 'utf8')) as {
  panels: Panel[];
  templating: { list: { name: string; query?: unknown; definition?: string }[] };
};
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const dashboardExprs = panels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
);

/** Grafana's variables, as a Prometheus query would see them. */
const unTemplate = (e: string) => e.replace(/\$__rate_interval/g, '5m').replace(/\$instance/g, '.*');

/** The podnet_* names an expression reads (label values in quotes are not names). */
const namesIn = (expr: string) =>
  [...expr.replace(/"[^"]*"/g, '""').matchAll(/\bpodnet_[a-z0-9_]+\b/g)].map((m) => m[0]);

const registered = new Map(
  agentRegistry(false)
    .getMetricsAsArray()
    .map((m) => [(m as unknown as { name: string }).name, m.constructor.name.toLowerCase()]),
);

function exists(name: string): boolean {
  if (registered.has(name)) return true;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return !!m && registered.get(m[1]!) === 'histogram';
}

// promtool: the build scripts/fetch-tools.sh extracts from Debian's prometheus package (installing
// that package would start a Prometheus server), else one on PATH.
const FETCHED = join(
  import.meta.dirname,
  '..',
  '..',
  '..',
  'node_modules',
  '.cache',
  'promtool-debian',
  'promtool',
);
const PROMTOOL = existsSync(FETCHED) ? FETCHED : 'promtool';
const promtool = spawnSync(PROMTOOL, ['--version']).status === 0;
const tmp = mkdtempSync(join(tmpdir(), 'podnet-obs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function runPromtool(args: string[]) {
  const r = spawnSync(PROMTOOL, args, { cwd: DIR, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('deploy/observability', () => {
  it('references only metrics the agent registers', () => {
    const refs = [
      ...rules.map((r) => ({ where: `alert ${r.alert ?? r.record}`, expr: r.expr })),
      ...dashboardExprs.map((d) => ({ where: `panel "${d.panel}"`, expr: d.expr })),
      ...dashboard.templating.list.map((v) => ({ where: `variable ${v.name}`, expr: v.definition ?? '' })),
    ];
    const missing = refs.flatMap((r) =>
      namesIn(r.expr)
        .filter((n) => !exists(n))
        .map((n) => `${r.where}: ${n}`),
    );
    expect(missing).toEqual([]);
    // The four alerts and the dashboard's topics are all there.
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining([
        'PodnetBGPSessionDown',
        'PodnetIPPoolNearlyFull',
        'PodnetAgentNotReady',
        'PodnetKernelRouteErrors',
      ]),
    );
    const read = new Set(refs.flatMap((r) => namesIn(r.expr)));
    for (const n of [
      'podnet_bgp_peer_established',
      'podnet_bgp_prefixes_received',
      'podnet_route_reconcile_seconds_bucket',
      'podnet_ipam_pool_used_addresses',
    ])
      expect(read.has(n), n).toBe(true);
  });

  it('would catch a metric that does not exist', () => {
    expect(
      namesIn('rate(podnet_route_reconcile_seconds_bucket[5m]) + podnet_no_such{peer="podnet_x"}').filter(
        (n) => !exists(n),
      ),
    ).toEqual(['podnet_no_such']);
    expect(exists('podnet_route_errors_total_bucket')).toBe(false);
  });

  describe.skipIf(!promtool)('promtool (from Debian package prometheus)', () => {
    it('checks the alert rules', () => {
      const r = runPromtool(['check', 'rules', RULES]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain(`SUCCESS: ${rules.length} rules found`);
    });

    it("passes the rules' unit tests: each alert fires after its `for:` and not before", () => {
      const r = runPromtool(['test', 'rules', 'podnet-alerts.test.yaml']);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain('SUCCESS');
    });

    it('parses every dashboard query (as recording rules)', () => {
      const file = join(tmp, 'dashboard-rules.yaml');
      const records = dashboardExprs.map((d, i) => ({
        record: `podnet:dashboard:${i}`,
        expr: unTemplate(d.expr),
      }));
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules: records }] }));
      const r = runPromtool(['check', 'rules', file]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain(`SUCCESS: ${records.length} rules found`);
      // and a broken one fails, so the check is real
      writeFileSync(
        file,
        JSON.stringify({ groups: [{ name: 'x', rules: [{ record: 'x', expr: 'sum by (le (x)' }] }] }),
      );
      expect(runPromtool(['check', 'rules', file]).code).not.toBe(0);
    });
  });

  it.runIf(!promtool)(
    'needs promtool: run scripts/fetch-tools.sh (extracts it from Debian package prometheus)',
    () => {
      expect.fail('promtool not found: the rules and queries are not parsed');
    },
  );
});
