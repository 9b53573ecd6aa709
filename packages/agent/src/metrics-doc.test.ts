// docs/metrics.md lists exactly the metrics podnet registers. The table is checked three ways:
// against the registry the agent builds (cli.ts: createMetrics, the route programmer, the ARP
// responder and the CNI token refresher all register into one), against every `name: 'podnet_…'`
// declared in the packages' sources (so a metric registered elsewhere cannot be missed), and row by
// row for type, labels and help text. PODNET_WRITE_METRICS_DOC=1 rewrites the table from the code.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { agentRegistry } from './__fixtures__/registry.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const DOC = join(ROOT, 'docs', 'metrics.md');
const BEGIN = '<!-- metrics table: generated from the code (packages/agent/src/metrics-doc.test.ts) -->';
const END = '<!-- end of metrics table -->';

interface Row {
  name: string;
  type: string;
  labels: string[];
  help: string;
}

export function registryRows(registry: Registry): Row[] {
  return registry
    .getMetricsAsArray()
    .map((m) => {
      const x = m as unknown as { name: string; help: string; labelNames?: string[]; type?: string };
      // prom-client keeps the type on the instance's get(); its class name says the same.
      const type = (m.constructor.name || '').toLowerCase();
      return { name: x.name, type, labels: [...(x.labelNames ?? [])], help: x.help };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Every `name: 'podnet_…'` in the non-test sources of every package. */
function declaredNames(): Set<string> {
  const out = new Set<string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (e === 'node_modules' || e === 'dist' || e === '__fixtures__') continue;
      if (statSync(p).isDirectory()) walk(p);
      else if (e.endsWith('.ts') && !e.endsWith('.test.ts'))
        for (const m of readFileSync(p, 'utf8').matchAll(/\bname: '(podnet_[a-z0-9_]+)'/g)) out.add(m[1]!);
    }
  };
  for (const pkg of readdirSync(join(ROOT, 'packages'))) {
    const src = join(ROOT, 'packages', pkg, 'src');
    try {
      if (statSync(src).isDirectory()) walk(src);
    } catch {}
  }
  return out;
}

function render(rows: Row[]): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  return [
    '| metric | type | labels | meaning |',
    '| --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| \`${r.name}\` | ${r.type} | ${r.labels.map((l) => `\`${l}\``).join(', ') || '—'} | ${cell(r.help)} |`,
    ),
  ].join('\n');
}

function docRows(md: string): Row[] {
  const i = md.indexOf(BEGIN);
  const j = md.indexOf(END);
  if (i < 0 || j < i) throw new Error(`${DOC}: the markers ${BEGIN} … ${END} are missing`);
  return md
    .slice(i + BEGIN.length, j)
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) => {
      const cells = l
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim());
      return {
        name: cells[0]!.replace(/`/g, ''),
        type: cells[1]!,
        labels: cells[2] === '—' ? [] : cells[2]!.split(',').map((s) => s.trim().replace(/`/g, '')),
        help: cells[3]!.replace(/\\\|/g, '|'),
      };
    });
}

describe('docs/metrics.md', () => {
  const code = registryRows(agentRegistry(false));
  if (process.env.PODNET_WRITE_METRICS_DOC) {
    const md = readFileSync(DOC, 'utf8');
    writeFileSync(
      DOC,
      `${md.slice(0, md.indexOf(BEGIN) + BEGIN.length)}\n\n${render(code)}\n\n${md.slice(md.indexOf(END))}`,
    );
  }

  it('the registry holds every metric the sources declare, and nothing else', () => {
    expect(code.map((r) => r.name)).toEqual([...declaredNames()].sort());
    expect(code.length).toBeGreaterThan(30);
  });

  it('lists exactly the registered metrics, each with its type, labels and help', () => {
    expect(docRows(readFileSync(DOC, 'utf8'))).toEqual(code);
  });

  it("names the process metrics' prefix: every other metric of the agent is podnet_agent_*", () => {
    const own = new Set(code.map((r) => r.name));
    const extra = registryRows(agentRegistry(true)).filter((r) => !own.has(r.name));
    expect(extra.length).toBeGreaterThan(5);
    for (const r of extra) expect(r.name).toMatch(/^podnet_agent_(process|nodejs)_/);
    const md = readFileSync(DOC, 'utf8');
    expect(md).toContain('`podnet_agent_process_*`');
    expect(md).toContain('`podnet_agent_nodejs_*`');
  });
});
