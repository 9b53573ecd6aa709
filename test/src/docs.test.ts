// The project's documentation lives in the repository: no file points at a design document
// outside it (the design notes and style guide the project was written from, which users do not
// have), and every relative markdown link resolves.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const files = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' })
  .split('\n')
  .filter((f) => f && !f.endsWith('package-lock.json') && existsSync(join(ROOT, f)));
const text = (f: string) => readFileSync(join(ROOT, f), 'utf8');

describe('docs', () => {
  it('nothing points outside the repository for documentation', () => {
    const outside = /\.\.\/shared\b|\bDESIGN\.md\b|\bSTYLE\.md\b/;
    const self = 'test/src/docs.test.ts';
    const hits = files
      .filter((f) => f !== self && /\.(ts|mts|mjs|js|json|md|ya?ml|sh|conf|txt)$/.test(f))
      .flatMap((f) =>
        text(f)
          .split('\n')
          .flatMap((l, i) => (outside.test(l) ? [`${f}:${i + 1}: ${l.trim()}`] : [])),
      );
    expect(hits).toEqual([]);
  });

  it('every relative link in the markdown resolves', () => {
    const broken: string[] = [];
    for (const f of files.filter((x) => x.endsWith('.md')))
      for (const m of text(f).matchAll(/\]\(([^)\s#]+)(#[^)]*)?\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        if (!existsSync(normalize(join(ROOT, dirname(f), target)))) broken.push(`${f}: ${target}`);
      }
    expect(broken).toEqual([]);
  });

  it('the pages the README and architecture promise exist', () => {
    for (const p of ['architecture.md', 'install.md', 'tor.md', 'troubleshooting.md', 'metrics.md'])
      expect(existsSync(join(ROOT, 'docs', p)), `docs/${p}`).toBe(true);
  });
});
